"""Isolation (mode = "isolation"): how much a victim loses beside a noisy neighbour.

The scenario's workloads are the victims; its `aggressors` the neighbours (bench/aggressors.py).
For each repetition, runtime and aggressor, one aggressor instance of that runtime starts
under its limits (aggressor_cpus, aggressor_memory_mib, aggressor_pids) and runs for
aggressor_warmup_s; then each victim runs beside it, measured exactly as in a cells run,
its records tagged with the aggressor's name. "none", the victim alone, takes its turn in
the same rotation, so a slow drift of the host spreads over both sides (the noisy-neighbour
matrix of Middleware 2016, "Containers and Virtual Machines at Scale").

After each victim the aggressor's side is recorded from the host: the CPU seconds it used
meanwhile, the OOM kills in its cgroup, its host processes, and whether it still ran. An
aggressor that died (its sandbox taken down by the OOM killer, say) is seen as such and the
run goes on; one that died in its warm-up leaves the victims beside it recorded as failed.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack

from bench.aggressors import AGGRESSORS, NONE
from bench.collect.host import mem_available
from bench.console import progress_bar, say, summary_line
from bench.measure import Value, measure_step
from bench.modes.base import Mode, positive
from bench.params import Param
from bench.results import SKIPPED
from bench.runtimes import Limits
from bench.units import MiB
from bench.spec import Cell, Step
from bench.workloads import CATALOGUE



class BelowFloor(Exception):
    """Starting the next pair would take the host below the memory floor."""


class Isolation(Mode):
    name = "isolation"
    needs_workloads = True  # the victims
    OPTIONS = {
        "aggressors": Param(list, list(AGGRESSORS), "the neighbours each victim runs beside, of "
                            f"{', '.join(AGGRESSORS)} (none, the victim alone, always runs)"),
        "aggressor_cpus": Param(float, 1.0, "the aggressor's CPU quota"),
        "aggressor_memory_mib": Param(int, 512, "the aggressor's memory limit"),
        "aggressor_pids": Param(int, 256, "the aggressor's process limit"),
        "aggressor_warmup_s": Param(float, 2.0, "the aggressor runs this long before the victim starts"),
        "memory_floor_mib": Param(int, 2048, "stop before host MemAvailable falls below this"),
    }

    @classmethod
    def checked(cls, options: dict) -> dict:
        unknown = [a for a in options["aggressors"] if a not in AGGRESSORS]
        if unknown:
            raise ValueError(f"aggressors: unknown aggressor {unknown[0]!r}; choose from "
                             f"{', '.join(AGGRESSORS)}")
        positive(options, "aggressor_cpus", "aggressor_memory_mib", "aggressor_pids")
        # The victim alone first: the reference every degradation is taken against
        return {**options, "aggressors": (NONE, *dict.fromkeys(a for a in options["aggressors"]
                                                                 if a != NONE))}

    def run(self, session) -> None:
        scenario, aggressors = session.scenario, self.options["aggressors"]
        usable = session.usable()
        rounds = scenario.warmup + scenario.reps
        total = rounds * len(aggressors) * sum(w.runs_in(spec) for spec, _ in usable
                                               for w in scenario.workloads)
        session.announce(f"victims {', '.join(w.name for w in scenario.workloads)} beside "
                         f"{', '.join(aggressors)}")
        with progress_bar(total) as bar:
            try:
                for rep in range(rounds):
                    for spec, runtime in usable:
                        for aggressor in aggressors:
                            Neighbourhood(session, self.options, spec, runtime, aggressor, rep,
                                          bar).run()
            except BelowFloor as exc:
                say(f"isolation stopped: {exc}; the records so far are kept")
                session.fail("isolation (stopped at the memory floor)")


class Neighbourhood:
    """One aggressor instance (or none) and the victims measured beside it."""

    def __init__(self, session, options: dict, spec, runtime, aggressor: str, rep: int, bar):
        self.session, self.options, self.spec, self.runtime = session, options, spec, runtime
        self.rep, self.bar = rep, bar
        self.aggressor = AGGRESSORS[aggressor]
        self.limits = Limits(options["aggressor_cpus"], options["aggressor_memory_mib"],
                             options["aggressor_pids"])
        self.tags = {"aggressor": aggressor}
        self.instance = None
        self.problem = None  # why the victims beside it cannot be measured

    def run(self) -> None:
        with ExitStack() as beside:
            if self.aggressor.name != NONE:
                self.check_floor()
                self.start_aggressor(beside)
            for victim in self.session.scenario.workloads:
                if victim.runs_in(self.spec):
                    self.measure(victim)

    def check_floor(self) -> None:
        options, headroom = self.options, self.runtime.memory_overhead_mib()
        need = (options["aggressor_memory_mib"] + self.session.scenario.memory_mib + 2 * headroom) * MiB
        available = mem_available()
        if available - need < options["memory_floor_mib"] * MiB:
            raise BelowFloor(f"MemAvailable {available / MiB:.0f} MiB; an aggressor and a victim "
                             f"of {self.spec.name} may take {need / MiB:.0f} MiB, beyond the floor "
                             f"of {options['memory_floor_mib']} MiB")

    def start_aggressor(self, beside: ExitStack) -> None:
        options = self.options
        command = self.aggressor.command(os.cpu_count() or 1, options["aggressor_memory_mib"])
        self.tags.update({key: options[key] for key in
                          ("aggressor_cpus", "aggressor_memory_mib", "aggressor_pids")})
        try:
            self.instance = beside.enter_context(self.runtime.running(
                command, self.limits, self.session.instance_name(), needs=self.aggressor.needs))
            self.instance.wait_ready(self.session.scenario.timeout_s)
            time.sleep(options["aggressor_warmup_s"])
            if self.instance.lines.finished():
                self.problem = (f"aggressor {self.aggressor.name} ended in its warm-up: "
                                f"{self.instance.lines.drain(0.5)[-300:]}")
        except Exception as exc:  # the aggressor's failure is recorded; the run goes on
            self.problem = f"aggressor {self.aggressor.name} did not start: {type(exc).__name__}: {exc}"

    def measure(self, victim) -> None:
        step = Step(Cell(victim, self.spec), self.rep, self.rep < self.session.scenario.warmup)
        label = step.label(f" beside {self.aggressor.name}")
        self.bar.start(label)
        before = self.aggressor_state()
        records = self.failed_victim(step) if self.problem else measure_step(self.session, step, self.tags)
        self.aggressor_records(step, before)
        self.bar.done(summary_line(label, records))

    def failed_victim(self, step: Step) -> list:
        self.session.fail(f"aggressor {self.aggressor.name}@{self.spec.name}")
        workload = CATALOGUE[step.cell.workload.workload]
        main = workload.main_metric(workload.resolve(step.cell.workload.params)) \
            or f"workload.{workload.name}"
        return self.session.save(step, {**self.tags, "main_metric": main},
                                 [Value(main, None, "1", f"{SKIPPED}{self.problem}")])

    # -- the aggressor's side, as the host sees it ----------------------------------------

    def aggressor_state(self) -> dict:
        inst = self.instance
        if inst is None or inst.cgroup is None or not inst.cgroup.exists():
            return {}
        try:
            return {"cpu_s": inst.cgroup.cpu_seconds(), "oom_kills": inst.cgroup.oom_kills(),
                    "processes": len(set(inst.cgroup.pids()))}
        except OSError:  # removed under us: the engine cleaned up a dead sandbox
            return {}

    def aggressor_records(self, step: Step, before: dict) -> None:
        if self.instance is None:
            return
        after = self.aggressor_state()
        running = not self.instance.lines.finished()
        values = [Value("aggressor.running", float(running), "1")]
        if "cpu_s" in before and "cpu_s" in after:
            values.append(Value("aggressor.cpu_seconds", after["cpu_s"] - before["cpu_s"], "s"))
        if after.get("oom_kills") is not None:
            values.append(Value("aggressor.oom_kills", after["oom_kills"], "1"))
        if "processes" in after:
            values.append(Value("aggressor.host_processes", after["processes"], "1"))
        self.session.save(step, self.tags, values)
