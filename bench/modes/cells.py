"""Cells (the default mode): every workload in every runtime, repetitions interleaved."""

from __future__ import annotations

from bench.console import progress_bar, summary_line
from bench.measure import measure_step
from bench.modes.base import Mode
from bench.spec import Cell, Scenario, Step


def plan(scenario: Scenario) -> list[Step]:
    """Warm-ups first; then runtimes interleaved within each repetition, so a slow drift
    of the host (heat, other load) spreads over all runtimes instead of biasing one.
    A workload with fewer repetitions (or warm-ups) of its own drops out of the later rounds."""
    cells = [Cell(w, r) for w in scenario.workloads for r in scenario.runtimes if w.runs_in(r)]
    warmups = [scenario.warmup_of(c.workload) for c in cells]
    totals = [w + scenario.reps_of(c.workload) for c, w in zip(cells, warmups)]
    if scenario.order == "blocked":
        return [Step(c, i, i < w) for c, w, n in zip(cells, warmups, totals) for i in range(n)]
    rounds = max(totals, default=0)
    return [Step(c, i, i < w) for i in range(rounds)
            for c, w, n in zip(cells, warmups, totals) if i < n]


class Cells(Mode):
    name = "cells"
    needs_workloads = True

    def run(self, session) -> None:
        steps = [s for s in plan(session.scenario) if s.cell.runtime.name in session.runtimes]
        session.announce(f"{len(steps)} instances")
        with progress_bar(len(steps)) as bar:
            for step in steps:
                bar.start(step.label())
                bar.done(summary_line(step.label(), measure_step(session, step)))
