"""Published figures, measured here: what a project or a paper published, under which
conditions, this run's number for the same operation, and whether the two can be compared.
Under emulation most say "not comparable", and that is the honest answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.data import emulated_runtimes, in_order, measured
from bench.runtimes import traits_of
from bench.units import number, quantity
from bench.workloads import STARTUP_PROBE, with_role

COMPARABLE = "comparable"
NOT_COMPARABLE = "not comparable"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Published:
    source: str
    figure: str  # what they published, with its number
    conditions: str
    metric: str  # this run's metric for the same operation
    runtimes: Callable[[pd.DataFrame], bool]  # does a runtime (its rows) measure it
    shown: Callable[[float], str]  # this run's median, as the published figure reads
    caveat: str = ""  # how the operation here differs, where it is still comparable
    on_startup_probe: bool = False  # on the startup probe (noop) only
    needs_hardware_vm: bool = False  # an emulated VM says nothing about it


def _side(rows: pd.DataFrame) -> str | None:
    traits = traits_of(rows["kind"].iloc[0])
    return traits.side if traits else None


def _tag(rows: pd.DataFrame, tag: str):
    column = f"tag.{tag}"
    values = rows[column].dropna() if column in rows else []
    return values.iloc[0] if len(values) else None


def _is_vm(rows):
    return _side(rows) == "VM"


def _is_docker_runc(rows):
    return rows["kind"].iloc[0] == "docker" and _tag(rows, "oci_runtime") == "runc"


def _is_bare_process(rows):
    traits = traits_of(rows["kind"].iloc[0])
    return traits is not None and traits.isolation == "process"


def _is_runc(rows):
    return _side(rows) == "container" and _tag(rows, "oci_runtime") == "runc"


def _is_runsc_ptrace(rows):
    return _tag(rows, "gvisor_platform") == "ptrace"


def _microseconds(ns: float) -> str:
    return f"{number(ns / 1000)} µs"


PUBLISHED = (
    Published("Firecracker specification", "boot to init ≤ 125 ms",
              "m5d.metal, 1 vCPU, 128 MiB, a minimal kernel without initrd",
              "startup.guest_kernel_s", _is_vm, lambda v: quantity(v, "s"),
              "the Debian cloud kernel (with its initrd unless initrd = false), from the guest "
              "kernel's start to init (the agent) on the guest's clock: firmware and kernel "
              "load are not in it", on_startup_probe=True, needs_hardware_vm=True),
    Published("LightVM (SOSP 2017)", "docker run ≈ 150 ms", "the paper's 2017 server and Docker",
              "startup.ready_s", _is_docker_runc, lambda v: quantity(v, "s"),
              "launch call to the agent's READY: the container started, not yet removed",
              on_startup_probe=True),
    Published("LightVM (SOSP 2017)", "fork/exec ≈ 1 ms", "the paper's 2017 server and Linux",
              "workload.processes_per_s", _is_bare_process, lambda v: quantity(1 / v, "s"),
              "a shell loop of /bin/true: fork, exec and wait per process"),
    Published("gVisor performance guide", "system call in runc 1.9 µs",
              "gVisor's system call microbenchmark", "workload.ns_per_syscall", _is_runc,
              _microseconds, "dd with 1-byte blocks: a read and a write"),
    Published("gVisor performance guide", "system call in runsc (ptrace) 38 µs",
              "gVisor's system call microbenchmark", "workload.ns_per_syscall", _is_runsc_ptrace,
              _microseconds, "dd with 1-byte blocks: a read and a write"),
)


def published_rows(frame: pd.DataFrame, environment: dict | None = None) -> list[dict]:
    """One row per published figure: this run's median for each runtime that measured the
    same operation, and whether it compares."""
    environment = environment or {}
    emulated = emulated_runtimes(frame, environment)
    in_lab = (environment.get("host") or {}).get("host_shape") == "lab"
    rows = measured(frame)
    out = []
    for entry in PUBLISHED:
        mine = rows[rows["metric"] == entry.metric] if not rows.empty else rows
        if entry.on_startup_probe and not mine.empty:
            mine = mine[mine["workload"].isin(with_role(in_order(mine["workload"]), STARTUP_PROBE))]
        found = []
        for runtime in in_order(mine["runtime"]) if not mine.empty else []:
            values = mine.loc[mine["runtime"] == runtime, "value"].to_numpy(float)
            if entry.runtimes(mine[mine["runtime"] == runtime]):
                found.append((runtime, float(np.median(values)), len(values)))
        if not found:
            verdict = f"{NOT_MEASURED}: no runtime of this run measures {entry.metric} this way"
        elif in_lab:
            verdict = f"{NOT_COMPARABLE}: a lab run, everything under emulation"
        elif entry.needs_hardware_vm and all(r in emulated for r, _, _ in found):
            verdict = f"{NOT_COMPARABLE}: the VM ran emulated (QEMU TCG), not on KVM"
        else:
            verdict = f"{COMPARABLE} in kind: {entry.caveat}; this host is not theirs"
        out.append({"source": entry.source, "figure": entry.figure, "conditions": entry.conditions,
                    "here": [f"{runtime}{' (emulated)' if runtime in emulated else ''}: "
                             f"{entry.shown(value)} (median of {n})" for runtime, value, n in found],
                    "verdict": verdict})
    return out
