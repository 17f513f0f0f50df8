"""Scenario files: TOML in, a validated immutable Scenario out.

Every problem names the file and the dotted key, so a user can fix it at once.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bench.errors import UserError
from bench.modes import MODES
from bench.params import Param
from bench.runtimes import KINDS
from bench.spec import RuntimeSpec, Scenario, WorkloadSpec
from bench.workloads import CATALOGUE

TOP_LEVEL = {
    "name": Param(str, None, "scenario name, used in record and folder names"),
    "description": Param(str, "", "one line shown in the report"),
    "reps": Param(int, 5, "measured repetitions per cell"),
    "warmup": Param(int, 1, "discarded repetitions per cell, run first"),
    "order": Param(str, "interleaved", "how repetitions are ordered", choices=("interleaved", "blocked")),
    "timeout_s": Param(float, 300.0, "per instance: launch to gone"),
    "cpus": Param(float, 1.0, "CPUs each instance gets, in every runtime"),
    "memory_mib": Param(int, 512, "memory each instance gets, in every runtime"),
    "sample_hz": Param(float, 10.0, "memory/CPU sampling rate"),
    "allow_partial": Param(bool, True, "run the usable runtimes when others are not"),
    "warm_workloads": Param(bool, False, "a VM's cells whose workload measures neither a start "
                            "nor a footprint run in an instance restored from a snapshot where "
                            "the runtime can restore (startup.restore_s, tag start = warm)"),
}


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
OWN = {"runtimes": Param(list, None, "the runtimes this workload runs in (default: all)"),
       "reps": Param(int, None, "measured repetitions of this workload (default: the scenario's)"),
       "warmup": Param(int, None, "warm-ups of this workload (default: the scenario's)")}


def _check(file: str, key: str, param: Param, value):
    problem = param.check(value)
    if problem:
        raise UserError(f"{file}: {key}: {problem}", fix=param.help)
    return value


def _params(file: str, where: str, table: dict, spec: dict[str, Param], skip=()) -> dict:
    out = {}
    for key, value in table.items():
        if key in skip:
            continue
        if key not in spec:
            known = ", ".join(sorted(set(spec) | set(skip))) or "none"
            shown = key if NAME.fullmatch(key) else repr(key)  # a newline, say, shows as \n
            raise UserError(f"{file}: {where}.{shown}: unknown key", fix=f"known keys: {known}")
        out[key] = _check(file, f"{where}.{key}", spec[key], value)
    return out


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{file}: cannot read scenario: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{file}: not valid TOML: {exc}") from None

    mode, mode_options = _mode(file, data.get("mode", "cells"))
    top = {k: v for k, v in data.items() if k not in ("runtimes", "workloads", "mode")}
    for key in top:
        if owner := next((m for m in MODES.values() if key in m.OPTIONS), None):
            raise UserError(f"{file}: {key}: an option of mode {owner.name}, not of the scenario",
                            fix=f"move it under a [mode] table with name = \"{owner.name}\"")
    settings = {k: p.default for k, p in TOP_LEVEL.items()}
    settings.update(_params(file, "scenario", top, TOP_LEVEL))
    if settings["name"] is None:
        settings["name"] = path.stem
    _name(file, "name", settings["name"])
    for key in ("reps", "cpus", "memory_mib", "timeout_s", "sample_hz"):
        if settings[key] <= 0:
            raise UserError(f"{file}: {key}: must be positive, got {settings[key]}")
    if settings["warmup"] < 0:
        raise UserError(f"{file}: warmup: must be 0 or more")
    runtimes = []
    for name, table in _tables(file, data, "runtimes").items():
        kind = table.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            raise UserError(
                f"{file}: runtimes.{name}.kind: unknown runtime kind {kind!r}",
                fix=f"one of {', '.join(KINDS)}",
            )
        spec = KINDS[kind].OPTIONS
        options = {k: p.default for k, p in spec.items()}
        options.update(_params(file, f"runtimes.{name}", table, spec, skip=("kind",)))
        runtimes.append(RuntimeSpec(name, kind, options))

    workloads = []
    # The density, storage and allocation modes build their own guest commands.
    with_workloads = MODES[mode].needs_workloads or "workloads" in data
    tables = _tables(file, data, "workloads") if with_workloads else {}
    for name, table in tables.items():
        base = table.get("workload", name)
        if not isinstance(base, str) or base not in CATALOGUE:
            raise UserError(
                f"{file}: workloads.{name}: unknown workload {base!r}",
                fix=f"one of {', '.join(CATALOGUE)} (or set workload = \"...\")",
            )
        params = _params(file, f"workloads.{name}", table, CATALOGUE[base].params,
                         skip=("workload", *OWN))
        own = _params(file, f"workloads.{name}", {k: v for k, v in table.items() if k in OWN}, OWN)
        for key, least in (("reps", 1), ("warmup", 0)):
            if own.get(key) is not None and own[key] < least:
                raise UserError(f"{file}: workloads.{name}.{key}: must be at least {least}, "
                                f"got {own[key]}")
        only = own.get("runtimes")
        if only is not None:
            known = [r.name for r in runtimes]
            unknown = [r for r in only if r not in known]
            if unknown or not only:
                raise UserError(f"{file}: workloads.{name}.runtimes: "
                                + (f"not runtimes of the scenario: {unknown!r}" if unknown else "empty"),
                                fix=f"choose from {', '.join(known)}")
            only = tuple(only)
        workloads.append(WorkloadSpec(name, base, params, own.get("reps"), own.get("warmup"), only))

    return Scenario(path=file, text=text, runtimes=tuple(runtimes), workloads=tuple(workloads),
                    mode=mode, mode_options=mode_options, **settings)


def _mode(file: str, table) -> tuple[str, dict]:
    """`mode = "NAME"`, or a [mode] table: name = "NAME" and that mode's typed options."""
    table = {"name": table} if isinstance(table, str) else table
    if not isinstance(table, dict):
        raise UserError(f"{file}: mode: expected a mode name or a [mode] table")
    name = table.get("name", "cells")
    if not isinstance(name, str) or name not in MODES:
        raise UserError(f"{file}: mode.name: unknown mode {name!r}", fix=f"one of {', '.join(MODES)}")
    spec = MODES[name].OPTIONS
    options = {k: p.default for k, p in spec.items()}
    options.update(_params(file, "mode", table, spec, skip=("name",)))
    try:
        return name, MODES[name].checked(options)
    except ValueError as exc:  # a mode's own rule: "key: problem"
        raise UserError(f"{file}: mode.{exc}") from None


def _tables(file: str, data: dict, key: str) -> dict:
    tables = data.get(key)
    if not isinstance(tables, dict) or not tables:
        raise UserError(f"{file}: {key}: at least one [{key}.NAME] table is required")
    for name, table in tables.items():
        _name(file, f"{key}.{name}", name)
        if not isinstance(table, dict):
            raise UserError(f"{file}: {key}.{name}: expected a table, got {type(table).__name__}")
    return tables


def _name(file: str, key: str, name: str) -> None:
    """Names become parts of cell names, file names and baseline folders: nothing that could
    climb out of a folder or surprise a shell."""
    if not NAME.fullmatch(name):
        raise UserError(f"{file}: {key}: {name!r} is not a name cvbench can use",
                        fix="letters, digits, '.', '_' and '-', starting with a letter or digit, "
                            "at most 64")
