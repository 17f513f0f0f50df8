"""Startup of each runtime as pytest-benchmark rounds, so that --benchmark-autosave,
--benchmark-compare and --benchmark-compare-fail work as pytest-benchmark users expect.

`test_startup` times what its name says: the launch call to the agent's READY line on the
host (what `startup.ready_s` records); the instance is removed before the next round,
outside the timed span. `test_lifecycle` times a whole `noop` instance (launch, READY,
exit, removal) through bench.measure, with READY latency, memory and CPU of the same
instances in extra_info (medians over the rounds); each of those instances is also a
record in the run folder.
"""

import statistics
from pathlib import Path

import pytest

from bench.measure import measure_step
from bench.runtimes import Limits
from bench.scenario import load_scenario
from bench.session import Session
from bench.spec import Cell, Step
from bench.workloads import CATALOGUE

REPO = Path(__file__).parent.parent
ROUNDS = 5
RUNTIMES = ["native", "runc", "runsc", "qemu"]
EXTRA = ("startup.ready_s", "startup.exit_s", "mem.cgroup_bytes", "mem.pss_bytes", "cpu.seconds",
         "cpu.engine_seconds", "cpu.total_seconds", "startup.guest_uptime_s")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    scenario = load_scenario(REPO / "scenarios" / "smoke.toml")
    run = Session(scenario, tmp_path_factory.mktemp("startup") / "run", report=False)
    run.open()
    yield run
    run.close()


def usable(runner, runtime):
    if runtime in runner.unusable:
        pytest.skip(f"{runtime}: {runner.unusable[runtime]}")
    return runner.runtimes[runtime]


@pytest.mark.needs_root
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_startup(benchmark, runner, runtime):
    instance_runtime = usable(runner, runtime)
    scenario = runner.scenario
    live = []

    def launch_to_ready():
        inst = instance_runtime.launch(CATALOGUE["noop"].command({}),
                                       Limits(scenario.cpus, scenario.memory_mib),
                                       runner.instance_name())
        live.append(inst)
        inst.lines.wait_for("READY", inst.t_launch + scenario.timeout_s)

    def remove_previous():  # untimed: exit and removal are not startup
        while live:
            runner.cleanup.release(live.pop().cleanup_token)

    try:
        benchmark.pedantic(launch_to_ready, setup=remove_previous, rounds=ROUNDS,
                           warmup_rounds=1, iterations=1)
    finally:
        remove_previous()


@pytest.mark.needs_root
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lifecycle(benchmark, runner, runtime):
    spec = next(r for r in runner.scenario.runtimes if r.name == usable(runner, runtime).name)
    noop = next(w for w in runner.scenario.workloads if w.name == "noop")
    measured = []

    def lifecycle():
        records = measure_step(runner, Step(Cell(noop, spec), len(measured), False))
        failed = [r.error for r in records if r.error and not r.metric.startswith("mem.")]
        if failed:
            raise RuntimeError(failed[0])
        measured.append(records)

    benchmark.pedantic(lifecycle, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    for metric in EXTRA:
        values = [r.value for records in measured[1:] for r in records  # [1:]: the warm-up
                  if r.metric == metric and r.value is not None]
        if values:
            benchmark.extra_info[metric] = statistics.median(values)
    benchmark.extra_info.update({k: v for k, v in measured[-1][0].tags.items()
                                 if k in ("accel", "emulated", "oci_runtime", "kernel_release")})
