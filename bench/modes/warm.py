"""Warm start (mode = "warm"): an instance restored from a snapshot against a cold start of
the same runtime. Once per runtime, an instance is launched whose agent awaits its workload
(`CVBENCH WAITING`), saved, and removed (warm.snapshot_s, the snapshot's size on disk).
Then, each repetition, a cold start and a restore, in turns: the restored agent
reads its workload only after the restore, so both run the same command from the same
point. Recorded: startup.ready_s (cold), startup.restore_s (restore call to READY), and
memory right after READY, PSS and cgroup working set, for both (tag start). A runtime that
cannot restore here is skipped, with the reason.
"""

from __future__ import annotations

import shutil

from bench.collect.processes import memory_of
from bench.console import say
from bench.measure import Value
from bench.modes.base import Mode
from bench.modes.density import IDLE_COMMAND
from bench.results import SKIPPED
from bench.runtimes import Limits
from bench.spec import Cell, Step

CELL = "warm"
STARTS = {"cold": "startup.ready_s", "warm": "startup.restore_s"}  # launch or restore to READY


class Warm(Mode):
    name = "warm"

    def run(self, session) -> None:
        session.announce("a cold start and a restore from a snapshot per repetition")
        for spec, runtime in session.usable():
            Starts(session, spec, runtime).run()


class Starts:
    """The cold and the warm starts of one runtime."""

    def __init__(self, session, spec, runtime):
        self.session, self.spec, self.runtime = session, spec, runtime
        self.cell = Cell.of_mode(CELL, spec)
        self.limits = Limits(session.scenario.cpus, session.scenario.memory_mib)

    def save(self, rep: int, tags: dict, *values: Value) -> None:
        self.session.save(Step(self.cell, rep, False), {**self.runtime.tags(), **tags}, list(values))

    def run(self) -> None:
        name, scenario = self.spec.name, self.session.scenario
        if why := self.runtime.cannot_restore():
            self.save(0, {}, Value("startup.restore_s", None, "s", SKIPPED + why))
            say(f"  {name}: skipped: {why}")
            return
        try:
            snapshot = self.runtime.snapshot(self.limits, self.session.instance_name(),
                                             scenario.timeout_s)
        except Exception as exc:  # this runtime's cell fails, the run goes on
            self.session.fail(self.cell.name)
            self.save(0, {}, Value("startup.restore_s", None, "s",
                                   f"snapshot failed: {type(exc).__name__}: {exc}"))
            say(f"  {name}: snapshot failed: {exc}")
            return
        self.save(0, snapshot.tags, Value("warm.snapshot_s", snapshot.seconds, "s"),
                  Value("warm.snapshot_bytes", snapshot.size_bytes, "bytes"))
        say(f"  {name}: snapshot in {snapshot.seconds:.2f} s, "
            f"{snapshot.size_bytes / 2**20:.1f} MiB on disk")
        try:
            for rep in range(scenario.reps):
                # in turns, so that neither profits from what the other left warm
                for start in ("cold", "warm") if rep % 2 == 0 else ("warm", "cold"):
                    self.start(rep, start, snapshot)
        finally:  # a VM's saved state is the size of its touched memory: not kept for long
            for path in snapshot.files:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)

    def start(self, rep: int, start: str, snapshot) -> None:
        try:
            values, tags = start_once(self.session, self.runtime, start, snapshot, self.limits)
        except Exception as exc:
            self.session.fail(self.cell.name)
            values, tags = [Value(STARTS[start], None, "s", f"{type(exc).__name__}: {exc}")], {}
        self.save(rep, {**tags, "start": start}, *values)
        shown = values[0]
        say(f"  {self.spec.name} rep {rep} {start}: "
            + (f"READY in {shown.value:.3f} s" if shown.value is not None else shown.error[:300]))


def start_once(session, runtime, start: str, snapshot, limits: Limits) -> tuple[list[Value], dict]:
    """A cold start or a restore, READY, memory read at once: its values and tags."""
    name = session.instance_name()
    running = (runtime.running(IDLE_COMMAND, limits, name) if start == "cold"
               else runtime.restored(snapshot, IDLE_COMMAND, name, session.scenario.timeout_s))
    with running as inst:
        ready = inst.wait_ready(session.scenario.timeout_s)
        mem = memory_of(inst.host_pids())
        working_set = inst.cgroup.memory().working_set if inst.cgroup else None
    values = [Value(STARTS[start], ready.t - inst.t_launch, "s"),
              *(Value(m, s, "s") for m, s in inst.phases.items()),
              Value("warm.pss_after_ready_bytes", None if mem is None else mem.pss, "bytes",
                    None if mem is not None else "no process of the instance could be read"),
              Value("warm.cgroup_after_ready_bytes", working_set, "bytes",
                    None if working_set is not None else "no cgroup")]
    return values, inst.tags
