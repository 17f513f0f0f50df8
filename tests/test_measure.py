"""One instance's lifecycle (bench.measure) with a scripted runtime whose clock readings
are known: the startup and exit arithmetic, and how CPU is charged.

The instance's cgroup is the golden cgroup v1 folder of a Docker container (cpuacct.usage
2.058293179 s) with no process left in it, as after a noop that exited at once."""

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.agent import AgentLine
from bench.collect.cgroups import Cgroup
from bench.collect.engine import EngineCpu
from bench.collect.sampler import GONE
from bench.errors import RuntimeFailure
from bench.measure import measure_step
from bench.runtimes.base import Instance, Runtime, RunContext
from bench.scenario import load_scenario
from bench.session import Session
from bench.spec import Cell, Step

LAUNCH = 5000.0  # host monotonic time of the launch call
READY_AT, DONE_AT, GONE_AT = 5000.25, 5000.5, 5000.75  # reaching the host; seen gone
CGROUP_CPU = 2.058293179
ENGINE_BEFORE_NS, ENGINE_AFTER_NS = 1_000_000_000, 1_320_000_000  # engine spent 0.32 s

SCENARIO = """
name = "lifecycle"
reps = 1
warmup = 0
[runtimes.fake]
kind = "native"
[workloads.noop]
"""


class ScriptedLines:
    """Agent lines with the host arrival times the test chose."""

    def __init__(self, lines: list[AgentLine]):
        self.pending, self.transcript = list(lines), []

    def wait_for(self, event: str, deadline: float) -> AgentLine:
        while self.pending:
            line = self.pending.pop(0)
            self.transcript.append(line)
            if line.event and line.event[0] == event:
                return line
        raise RuntimeFailure(f"output ended before CVBENCH {event}")

    def output_between(self, start: AgentLine, end: AgentLine) -> str:
        i, j = self.transcript.index(start), self.transcript.index(end)
        return "\n".join(line.text for line in self.transcript[i + 1:j])


@dataclass
class ScriptedInstance(Instance):
    on_close: list = field(default_factory=list)

    def wait_gone(self, timeout: float) -> float:
        return GONE_AT

    def close(self) -> None:
        for action in self.on_close:
            action()


class ScriptedRuntime(Runtime):
    kind = "fake"

    def __init__(self, context, cgroup: Cgroup, engine: EngineCpu | None, engine_dir: Path | None):
        super().__init__("fake", {}, context)
        self.cgroup, self.engine, self.engine_dir = cgroup, engine, engine_dir

    def check(self) -> None:
        pass

    lines = [AgentLine(READY_AT, "CVBENCH READY 3.50 6.12.0-guest"), AgentLine(DONE_AT, "CVBENCH DONE 0")]

    def launch(self, command, limits, instance, needs=None, port=None) -> ScriptedInstance:
        lines = ScriptedLines(self.lines)
        inst = ScriptedInstance(name=instance, t_launch=LAUNCH, lines=lines, cgroup=self.cgroup)
        if self.engine_dir is not None:  # the engine's work on it, to its removal
            inst.on_close.append(lambda: (self.engine_dir / "cpuacct.usage")
                                 .write_text(f"{ENGINE_AFTER_NS}\n"))
        return self._register(inst)

    def other_containers(self, inst, since: float, until: float) -> int:
        assert since <= until
        return 1


def _measure(tmp_path, golden, with_engine: bool, workload: str = "noop",
             lines: list | None = None) -> dict[str, dict]:
    (tmp_path / "lifecycle.toml").write_text(SCENARIO.replace("noop", workload))
    scenario = load_scenario(tmp_path / "lifecycle.toml")
    session = Session(scenario, out_dir=tmp_path / "out", report=False)
    session.context = RunContext("test-run", SimpleNamespace(digest="sha256:test"), session.cleanup,
                                 tmp_path)
    session.environment = {"host": {"kernel": "6.1.0-host", "host_shape": "host"}}
    dirs = {c: tmp_path / c / "inst" for c in ("memory", "cpuacct", "pids")}
    for controller, folder in dirs.items():
        shutil.copytree(golden / "cgroup_v1" / controller, folder)
        (folder / "cgroup.procs").write_text("")  # it has exited
    cgroup = Cgroup(1, dirs)
    engine = engine_dir = None
    if with_engine:
        engine_dir = tmp_path / "cpuacct" / "cvbench-engine"
        engine_dir.mkdir()
        (engine_dir / "cpuacct.usage").write_text(f"{ENGINE_BEFORE_NS}\n")
        engine = EngineCpu((Cgroup(1, {"cpuacct": engine_dir}),))
    session.runtimes = {"fake": ScriptedRuntime(session.context, cgroup, engine, engine_dir)}
    if lines is not None:
        session.runtimes["fake"].lines = lines
    step = Step(Cell(scenario.workloads[0], scenario.runtimes[0]), 0, False)
    records = {r.metric: r for r in measure_step(session, step)}
    _measure.failed_cells = set(session.failed_cells)
    return records


@pytest.mark.parametrize("workload, charged", [
    ("noop", "workload.noop"),  # the start was measured: it stays
    ("idle", "workload.idle"),  # its main metric is memory, which does not fail a cell
    ("cpu", "workload.events_per_s"),
])
def test_a_failure_after_ready_is_the_workloads_and_fails_the_cell(tmp_path, golden, workload, charged):
    records = _measure(tmp_path, golden, with_engine=False, workload=workload,
                       lines=[AgentLine(READY_AT, "CVBENCH READY 3.50 6.12.0-guest")])  # no DONE
    assert records["startup.ready_s"].value == pytest.approx(0.25) and records["startup.ready_s"].error is None
    assert records[charged].value is None
    assert records[charged].error == "output ended before CVBENCH DONE"
    assert _measure.failed_cells == {f"{workload}@fake"}


def test_a_failure_before_ready_is_the_starts(tmp_path, golden):
    records = _measure(tmp_path, golden, with_engine=False, workload="idle", lines=[])
    assert records["startup.ready_s"].value is None
    assert records["startup.ready_s"].error == "output ended before CVBENCH READY"
    assert _measure.failed_cells == {"idle@fake"}


def test_ready_and_exit_are_host_times_from_the_launch_call(tmp_path, golden):
    records = _measure(tmp_path, golden, with_engine=False)
    assert records["startup.ready_s"].value == pytest.approx(READY_AT - LAUNCH) == 0.25
    assert records["startup.exit_s"].value == pytest.approx(GONE_AT - LAUNCH) == 0.75
    # the guest's own clock is a separate record, never the startup time
    assert records["startup.guest_uptime_s"].value == 3.5


def test_without_an_engine_total_cpu_is_the_cgroup_cpu(tmp_path, golden):
    records = _measure(tmp_path, golden, with_engine=False)
    assert records["cpu.seconds"].value == CGROUP_CPU
    assert records["cpu.total_seconds"].value == CGROUP_CPU
    assert "cpu.engine_seconds" not in records


def test_engine_cpu_to_removal_joins_the_total_and_sharing_is_tagged(tmp_path, golden):
    records = _measure(tmp_path, golden, with_engine=True)
    assert records["cpu.engine_seconds"].value == pytest.approx(0.32)
    assert records["cpu.total_seconds"].value == pytest.approx(CGROUP_CPU + 0.32)
    assert records["cpu.seconds"].tags["engine_other_containers"] == 1
    assert records["cpu.seconds"].tags["engine_cpu_source"] == "cgroup"


def test_an_instance_gone_before_a_sample_has_null_memory_with_the_reason(tmp_path, golden):
    records = _measure(tmp_path, golden, with_engine=False)
    assert records["mem.pss_bytes"].value is None and records["mem.pss_bytes"].error == GONE
    assert records["mem.cgroup_bytes"].error == GONE  # page cache it left is not its use
    assert records["mem.cgroup_peak_bytes"].value == 4087808  # the kernel's high-water mark
