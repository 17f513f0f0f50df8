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

from bench.aggressors import AGGRESSORS, NONE
from bench.modes import mem_available
from bench.runner import SKIPPED, Cell, Step, progress_bar, step_label
from bench.runtimes import Limits
from bench.workloads import CATALOGUE

MiB = 2**20


class BelowFloor(Exception):
    """Starting the next pair would take the host below the memory floor."""


def run_isolation(runner) -> None:
    scenario = runner.scenario
    specs = [s for s in scenario.runtimes if s.name in runner.runtimes]
    rounds = scenario.warmup + scenario.reps
    total = rounds * len(specs) * len(scenario.aggressors) * len(scenario.workloads)
    print(f"run {runner.run_id}: isolation, victims {', '.join(w.name for w in scenario.workloads)}"
          f" beside {', '.join(scenario.aggressors)}; {scenario.reps} reps over "
          f"{', '.join(s.name for s in specs)} -> {runner.out_dir}", flush=True)
    with progress_bar(total) as bar:
        try:
            for rep in range(rounds):
                for spec in specs:
                    for aggressor in scenario.aggressors:
                        Neighbourhood(runner, spec, aggressor, rep, bar).run()
        except BelowFloor as exc:
            print(f"isolation stopped: {exc}; the records so far are kept", flush=True)
            runner.failed_cells.add("isolation (stopped at the memory floor)")


class Neighbourhood:
    """One aggressor instance (or none) and the victims measured beside it."""

    def __init__(self, runner, spec, aggressor: str, rep: int, bar):
        self.runner, self.spec, self.rep, self.bar = runner, spec, rep, bar
        self.aggressor = AGGRESSORS[aggressor]
        self.runtime = runner.runtimes[spec.name]
        scenario = runner.scenario
        self.limits = Limits(scenario.aggressor_cpus, scenario.aggressor_memory_mib,
                             scenario.aggressor_pids)
        self.tags = {"aggressor": aggressor}
        self.instance = None
        self.problem = None  # why the victims beside it cannot be measured

    def run(self) -> None:
        try:
            if self.aggressor.name != NONE:
                self.check_floor()
                self.start_aggressor()
            for victim in self.runner.scenario.workloads:
                self.measure(victim)
        finally:
            if self.instance is not None:
                self.runner.cleanup.release(self.instance.cleanup_token)

    def check_floor(self) -> None:
        scenario = self.runner.scenario
        headroom = self.spec.options.get("memory_headroom_mib", 0) if self.spec.kind == "qemu" else 0
        need = (scenario.aggressor_memory_mib + scenario.memory_mib + 2 * headroom) * MiB
        available = mem_available()
        if available - need < scenario.memory_floor_mib * MiB:
            raise BelowFloor(f"MemAvailable {available / MiB:.0f} MiB; an aggressor and a victim "
                             f"of {self.spec.name} may take {need / MiB:.0f} MiB, beyond the floor "
                             f"of {scenario.memory_floor_mib} MiB")

    def start_aggressor(self) -> None:
        scenario = self.runner.scenario
        command = self.aggressor.command(os.cpu_count() or 1, scenario.aggressor_memory_mib)
        self.tags.update({"aggressor_cpus": scenario.aggressor_cpus,
                          "aggressor_memory_mib": scenario.aggressor_memory_mib,
                          "aggressor_pids": scenario.aggressor_pids})
        try:
            self.instance = self.runtime.launch(command, self.limits, self.runner.instance_name(),
                                                needs=self.aggressor.needs)
            self.instance.lines.wait_for("READY", self.instance.t_launch + scenario.timeout_s)
            time.sleep(scenario.aggressor_warmup_s)
            if self.instance.lines.finished():
                self.problem = (f"aggressor {self.aggressor.name} ended in its warm-up: "
                                f"{self.instance.lines.drain(0.5)[-300:]}")
        except Exception as exc:  # the aggressor's failure is recorded; the run goes on
            self.problem = f"aggressor {self.aggressor.name} did not start: {type(exc).__name__}: {exc}"

    def measure(self, victim) -> None:
        step = Step(Cell(victim, self.spec), self.rep, self.rep < self.runner.scenario.warmup)
        label = step_label(step, f" beside {self.aggressor.name}")
        self.bar.start(label)
        before = self.aggressor_state()
        if self.problem:
            records = [self.failed_victim(step)]
            self.runner.store.append(records)
        else:
            records = self.runner.measure(step, self.tags)
        self.runner.store.append(self.aggressor_records(step, before))
        self.bar.done(self.runner._summary_line(label, records))

    def failed_victim(self, step: Step):
        self.runner.failed_cells.add(f"aggressor {self.aggressor.name}@{self.spec.name}")
        workload = CATALOGUE[step.cell.workload.workload]
        main = workload.main_metric(workload.resolve(step.cell.workload.params)) \
            or f"workload.{workload.name}"
        return self.runner._record(step, {**self.tags, "main_metric": main}, main, None, "1",
                                   error=f"{SKIPPED}{self.problem}")

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

    def aggressor_records(self, step: Step, before: dict) -> list:
        if self.instance is None:
            return []
        after = self.aggressor_state()
        running = not self.instance.lines.finished()
        values = [("aggressor.running", float(running), "1")]
        if "cpu_s" in before and "cpu_s" in after:
            values.append(("aggressor.cpu_seconds", after["cpu_s"] - before["cpu_s"], "s"))
        if after.get("oom_kills") is not None:
            values.append(("aggressor.oom_kills", after["oom_kills"], "1"))
        if "processes" in after:
            values.append(("aggressor.host_processes", after["processes"], "1"))
        return [self.runner._record(step, self.tags, metric, value, unit)
                for metric, value, unit in values]
