"""What a scenario asks for: its runtimes, workloads and settings; the cells they make and
the steps (one instance each) that run them. Pure data: the loader is bench/scenario.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bench.errors import UserError


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
    runtimes: tuple[str, ...] | None = None  # the runtimes it runs in (None: every one)

    def runs_in(self, runtime) -> bool:
        """In this runtime (a RuntimeSpec or a Runtime: its name)?"""
        return self.runtimes is None or runtime.name in self.runtimes


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
    warm_workloads: bool = False  # VM cells that measure no start start from a snapshot
    mode: str = "cells"
    mode_options: dict = field(default_factory=dict)  # the [mode] table, typed

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

    def cells_of(self, runtime: RuntimeSpec) -> list["Cell"]:
        """A runtime's cells: one per workload that runs in it, or the one cell of a mode
        that builds its own guest commands."""
        if not self.workloads:
            return [Cell.of_mode(self.mode, runtime)]
        return [Cell(w, runtime) for w in self.workloads if w.runs_in(runtime)]

    def reps_of(self, workload: WorkloadSpec) -> int:
        return workload.reps or self.reps

    def warmup_of(self, workload: WorkloadSpec) -> int:
        return self.warmup if workload.warmup is None else workload.warmup


@dataclass(frozen=True)
class Cell:
    workload: WorkloadSpec
    runtime: RuntimeSpec

    @property
    def name(self) -> str:
        return f"{self.workload.name}@{self.runtime.name}"

    @classmethod
    def of_mode(cls, mode: str, runtime: RuntimeSpec) -> "Cell":
        """The one cell of a mode that builds its own guest commands: '<mode>@<runtime>'."""
        return cls(WorkloadSpec(mode, mode, {}), runtime)


@dataclass(frozen=True)
class Step:
    cell: Cell
    rep: int  # counts warm-ups too: rep < warmup means a warm-up
    warmup: bool

    def label(self, suffix: str = "") -> str:
        return f"{self.cell.name}{suffix} rep {self.rep}" + (" (warm-up)" if self.warmup else "")
