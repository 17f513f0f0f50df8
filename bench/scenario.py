"""Scenario files: TOML in, a validated immutable Scenario out.

Every problem names the file and the dotted key, so a user can fix it at once.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from bench.aggressors import AGGRESSORS, NONE
from bench.errors import UserError
from bench.params import Param
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
    "mode": Param(str, "cells", "which driver runs the scenario: cells (workload x runtime), "
                  "density, storage, allocation or isolation (the workloads are the victims)",
                  choices=("cells", "density", "storage", "allocation", "isolation")),
    "counts": Param(list, [1, 2, 4], "density: how many idle instances to start at once, per step"),
    "memory_floor_mib": Param(int, 2048, "density, isolation: stop before host MemAvailable "
                              "falls below this"),
    "memory_sizes_mib": Param(list, [256, 512, 1024], "allocation: memory each instance is given"),
    "touch_mib": Param(int, 200, "allocation: memory the guest touches and frees"),
    "aggressors": Param(list, list(AGGRESSORS), "isolation: the neighbours each victim runs "
                        f"beside, of {', '.join(AGGRESSORS)} (none, the victim alone, always runs)"),
    "aggressor_cpus": Param(float, 1.0, "isolation: the aggressor's CPU quota"),
    "aggressor_memory_mib": Param(int, 512, "isolation: the aggressor's memory limit"),
    "aggressor_pids": Param(int, 256, "isolation: the aggressor's process limit"),
    "aggressor_warmup_s": Param(float, 2.0, "isolation: the aggressor runs this long before the victim starts"),
}


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    kind: str
    options: dict


@dataclass(frozen=True)
class WorkloadSpec:
    name: str  # as named in the scenario (a workload can appear with several parameter sets)
    workload: str  # catalogue entry
    params: dict
    reps: int | None = None  # this workload's measured repetitions, when not the scenario's
    warmup: int | None = None  # and its warm-ups


OWN = {"reps": Param(int, None, "measured repetitions of this workload (default: the scenario's)"),
       "warmup": Param(int, None, "warm-ups of this workload (default: the scenario's)")}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: str
    text: str
    reps: int
    warmup: int
    order: str
    timeout_s: float
    cpus: float
    memory_mib: int
    sample_hz: float
    allow_partial: bool
    runtimes: tuple[RuntimeSpec, ...]
    workloads: tuple[WorkloadSpec, ...]
    quick: bool = False
    mode: str = "cells"
    counts: tuple = (1, 2, 4)
    memory_floor_mib: int = 2048
    memory_sizes_mib: tuple = (256, 512, 1024)
    touch_mib: int = 200
    aggressors: tuple = tuple(AGGRESSORS)
    aggressor_cpus: float = 1.0
    aggressor_memory_mib: int = 512
    aggressor_pids: int = 256
    aggressor_warmup_s: float = 2.0

    def with_overrides(self, reps=None, runtimes=None, quick=False) -> "Scenario":
        """Command-line overrides: --reps, --runtimes a,b, --quick (1 rep, no warm-up, short sizes)."""
        chosen = self.runtimes
        if runtimes:
            known = {r.name: r for r in self.runtimes}
            unknown = [n for n in runtimes if n not in known]
            if unknown:
                raise UserError(
                    f"--runtimes: {', '.join(unknown)} not in {self.path}",
                    fix=f"choose from {', '.join(known)}",
                )
            chosen = tuple(known[n] for n in runtimes)
        new = replace(self, runtimes=chosen, quick=quick)
        if quick or reps is not None:  # the command line sets every workload's repetitions
            new = replace(new, workloads=tuple(replace(w, reps=None, warmup=None if quick else w.warmup)
                                               for w in new.workloads))
        if quick:
            new = replace(new, reps=1, warmup=0)
        if reps is not None:
            if reps < 1:
                raise UserError("--reps must be at least 1")
            new = replace(new, reps=reps)
        return new

    def reps_of(self, workload: WorkloadSpec) -> int:
        return workload.reps or self.reps

    def warmup_of(self, workload: WorkloadSpec) -> int:
        return self.warmup if workload.warmup is None else workload.warmup


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
            raise UserError(f"{file}: {where}.{key}: unknown key", fix=f"known keys: {known}")
        out[key] = _check(file, f"{where}.{key}", spec[key], value)
    return out


def load_scenario(path: str | Path) -> Scenario:
    from bench.runtimes import KINDS

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

    top = {k: v for k, v in data.items() if k not in ("runtimes", "workloads")}
    settings = {k: p.default for k, p in TOP_LEVEL.items()}
    settings.update(_params(file, "scenario", top, TOP_LEVEL))
    if settings["name"] is None:
        settings["name"] = path.stem
    for key in ("reps", "cpus", "memory_mib", "timeout_s", "sample_hz"):
        if settings[key] <= 0:
            raise UserError(f"{file}: {key}: must be positive, got {settings[key]}")
    if settings["warmup"] < 0:
        raise UserError(f"{file}: warmup: must be 0 or more")
    for key in ("counts", "memory_sizes_mib"):
        values = settings[key]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                 for v in values):
            raise UserError(f"{file}: {key}: expected a list of positive integers, got {values!r}")
        settings[key] = tuple(values)
    unknown = [a for a in settings["aggressors"] if a not in AGGRESSORS]
    if unknown:
        raise UserError(f"{file}: aggressors: unknown aggressor {unknown[0]!r}",
                        fix=f"choose from {', '.join(AGGRESSORS)}")
    # The victim alone first: the reference every degradation is taken against
    settings["aggressors"] = (NONE, *dict.fromkeys(a for a in settings["aggressors"] if a != NONE))
    for key in ("aggressor_cpus", "aggressor_memory_mib", "aggressor_pids"):
        if settings[key] <= 0:
            raise UserError(f"{file}: {key}: must be positive, got {settings[key]}")

    runtimes = []
    for name, table in _tables(file, data, "runtimes").items():
        kind = table.get("kind")
        if kind not in KINDS:
            raise UserError(
                f"{file}: runtimes.{name}.kind: unknown runtime kind {kind!r}",
                fix=f"one of {', '.join(KINDS)}",
            )
        spec = KINDS[kind].OPTIONS
        options = {k: p.default for k, p in spec.items()}
        options.update(_params(file, f"runtimes.{name}", table, spec, skip=("kind",)))
        runtimes.append(RuntimeSpec(name, kind, options))

    workloads = []
    # The density, storage and allocation drivers build their own guest commands.
    with_workloads = settings["mode"] in ("cells", "isolation") or "workloads" in data
    tables = _tables(file, data, "workloads") if with_workloads else {}
    for name, table in tables.items():
        base = table.get("workload", name)
        if base not in CATALOGUE:
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
        workloads.append(WorkloadSpec(name, base, params, own.get("reps"), own.get("warmup")))

    return Scenario(
        path=file, text=text, runtimes=tuple(runtimes), workloads=tuple(workloads), **settings
    )


def _tables(file: str, data: dict, key: str) -> dict:
    tables = data.get(key)
    if not isinstance(tables, dict) or not tables:
        raise UserError(f"{file}: {key}: at least one [{key}.NAME] table is required")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise UserError(f"{file}: {key}.{name}: expected a table, got {type(table).__name__}")
    return tables
