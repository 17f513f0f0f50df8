"""Startup of each runtime as pytest-benchmark rounds, so that --benchmark-autosave,
--benchmark-compare and --benchmark-compare-fail work as pytest-benchmark users expect.

The benchmarked call is one whole instance lifecycle of the `noop` workload (launch,
READY, exit, removal). READY latency, memory and CPU of the same instances are in
extra_info, medians over the rounds; every instance is also a record in the run folder.
"""

import statistics
from pathlib import Path

import pytest

from bench.runner import Cell, Runner, Step
from bench.scenario import load_scenario

REPO = Path(__file__).parent.parent
ROUNDS = 5
EXTRA = ("startup.ready_s", "startup.exit_s", "mem.cgroup_bytes", "mem.pss_bytes", "cpu.seconds",
         "cpu.engine_seconds", "cpu.total_seconds", "startup.guest_uptime_s")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    scenario = load_scenario(REPO / "scenarios" / "smoke.toml")
    run = Runner(scenario, tmp_path_factory.mktemp("startup") / "run", report=False)
    run.open()
    yield run
    run.close()


@pytest.mark.needs_root
@pytest.mark.parametrize("runtime", ["native", "runc", "runsc", "qemu"])
def test_startup(benchmark, runner, runtime):
    if runtime in runner.unusable:
        pytest.skip(f"{runtime}: {runner.unusable[runtime]}")
    spec = next(r for r in runner.scenario.runtimes if r.name == runtime)
    noop = next(w for w in runner.scenario.workloads if w.name == "noop")
    measured = []

    def lifecycle():
        records = runner.measure(Step(Cell(noop, spec), len(measured), False))
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
