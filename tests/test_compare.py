"""The A/B decision: significance corrected over the gated tests AND a noise floor, in the
metric's worse direction; overheads against the run's own native cell; broken cells fail."""

import json

import pandas as pd
import pytest

from bench import compare
from bench.compare import Thresholds, compare_frames, compare_samples, direction, load_thresholds
from bench.errors import UserError
from bench.results import load_frame, read_environment

# Ten values spread 1% around 1.0, and the same shifted: Mann-Whitney separates them fully
BASE = [0.990, 0.992, 0.994, 0.996, 0.998, 1.002, 1.004, 1.006, 1.008, 1.010]
FULLY_SEPARATED_P = 1.0825088224469026e-05  # two-sided exact p of 10 vs 10, no overlap


def rows(cell, runtime, kind, metric, values, warmup=False, main=None, error=None, **tags):
    """Records of one cell as load_frame gives them, tags flattened to tag.<name>."""
    workload = cell.split("@")[0]
    return [{"run": "r", "scenario": "s", "cell": cell, "workload": workload, "runtime": runtime,
             "kind": kind, "rep": rep, "warmup": warmup, "metric": metric, "value": value,
             "unit": "1", "t": 0.0, "image": "i", "error": error, "tag.main_metric": main,
             **{f"tag.{name}": v for name, v in tags.items()}}
            for rep, value in enumerate(values)]


def cpu_run(native_scale=1.0, runc_scale=1.0, runc_values=BASE, **extra):
    """A cells run: cpu on native and runc, events/s its main metric."""
    metric = "workload.events_per_s"
    return pd.DataFrame(
        rows("cpu@native", "native", "native", metric, [1000 * v * native_scale for v in BASE],
             main=metric)
        + rows("cpu@runc", "docker", "docker", metric,
               [980 * v * runc_scale for v in runc_values], main=metric)
        + rows("cpu@runc", "docker", "docker", "startup.ready_s", [0.3] * len(runc_values),
               main=metric))


def by_key(changes):
    return {(c.cell, c.metric): c for c in changes}


# Every metric cvbench records, and the direction the gate reads it in: a new metric
# must be added here, with the direction that is better for it.
DIRECTIONS = {
    -1: ["startup.ready_s", "startup.exit_s", "startup.create_s", "startup.start_s",
         "startup.spawn_s", "startup.overlay_s", "startup.vmm_s", "startup.guest_uptime_s",
         "startup.libvirt_s", "startup.agent_start_s", "startup.guest_kernel_s",
         "cpu.total_seconds",
         "mem.cgroup_bytes", "mem.cgroup_peak_bytes", "mem.pss_bytes", "mem.pss_peak_bytes",
         "mem.uss_bytes", "mem.rss_bytes", "cpu.seconds", "cpu.engine_seconds",
         "workload.ns_per_syscall", "workload.cpu_s_per_kevent", "workload.lat_p50_s",
         "workload.lat_p99_s", "workload.get_p50_s", "workload.get_p99_s", "workload.set_p50_s",
         "workload.set_p99_s", "workload.rtt_p50_s", "workload.rtt_p99_s",
         "density.kth_ready_s", "density.all_ready_s", "density.concurrent_ready_median_s",
         "density.mem_available_drop_per_instance_bytes", "density.pss_per_instance_bytes",
         "density.cgroup_per_instance_bytes", "alloc.pss_bytes", "alloc.cgroup_bytes",
         "storage.instance_disk_bytes", "storage.instance_disk_after_write_bytes",
         "storage.first_write_s", "storage.second_write_s", "startup.restore_s",
         "startup.incoming_s", "warm.snapshot_s", "warm.snapshot_bytes",
         "warm.pss_after_ready_bytes", "warm.cgroup_after_ready_bytes", "burst.ready_s",
         "burst.all_ready_s", "burst.manager_cpu_per_launch_s"],
    +1: ["workload.events_per_s", "workload.bytes_per_s", "workload.iops",
         "workload.processes_per_s", "workload.host_to_guest_bytes_per_s",
         "workload.guest_to_host_bytes_per_s", "workload.get_ops_per_s",
         "workload.set_ops_per_s", "workload.round_trips_per_s", "density.reached_n",
         "burst.launches_per_s"],
    None: ["workload.exit_code", "workload.time_s", "workload.events", "workload.syscalls",
           "workload.bytes", "kernel.shared_with_host", "density.host_processes",
           "density.background_drift_bytes", "storage.full_copy_bytes", "storage.full_copy_s",
           "alloc.paid_fraction", "aggressor.running", "aggressor.cpu_seconds",
           "aggressor.oom_kills", "aggressor.host_processes", "workload.net",
           "startup.prepare_s"],
}


@pytest.mark.parametrize("expected, metric", [(d, m) for d, ms in DIRECTIONS.items() for m in ms])
def test_direction_of_every_metric(expected, metric):
    assert direction(metric) == expected


def test_every_recorded_metric_has_a_pinned_direction(golden):
    pinned = {m for ms in DIRECTIONS.values() for m in ms}
    recorded = set()
    for records in golden.glob("*/records.jsonl"):
        recorded |= {json.loads(line)["metric"] for line in records.read_text().splitlines()}
    assert recorded and recorded <= pinned, recorded - pinned


def test_a_full_separation_is_significant_and_a_small_one_under_the_floor():
    slower = [v * 1.2 for v in BASE]
    change = compare_samples("c", "startup.ready_s", "s", BASE, slower, Thresholds())
    assert change.p_value == pytest.approx(FULLY_SEPARATED_P)
    assert change.change == pytest.approx(0.2)
    assert (change.ci_low, change.ci_high) == pytest.approx((0.1892, 0.2109), abs=1e-4)  # seeded
    (judged,) = compare.holm([change], Thresholds())
    assert judged.verdict == "regression"
    (faster,) = compare.holm([compare_samples("c", "startup.ready_s", "s", BASE,
                                              [v * 0.8 for v in BASE], Thresholds())], Thresholds())
    assert faster.verdict == "improvement"
    (lower,) = compare.holm([compare_samples("c", "workload.events_per_s", "1/s", BASE,
                                             [v * 0.8 for v in BASE], Thresholds())], Thresholds())
    assert lower.verdict == "regression"
    slightly = compare_samples("c", "startup.ready_s", "s", BASE, [v * 1.03 for v in BASE],
                               Thresholds())
    assert slightly.p_value < 0.001
    assert compare.holm([slightly], Thresholds())[0].verdict == "unchanged"
    assert compare.holm([slightly], Thresholds(min_change=0.02))[0].verdict == "regression"


def test_three_against_three_can_never_be_significant():
    """Mann-Whitney's smallest two-sided p for 3 vs 3 is 0.1."""
    change = compare_samples("c", "startup.ready_s", "s", [1, 1.01, 1.02], [2, 2.01, 2.02], Thresholds())
    assert change.p_value == pytest.approx(0.1)
    assert compare.holm([change], Thresholds(alpha=0.05))[0].verdict == "unchanged"


def test_holm_corrects_for_every_gated_test():
    """p = 0.0047 (8 vs 8, the samples overlapping by three values) passes alone at 0.05 but
    not beside 20 other gated tests (Holm: 0.05 / 21 = 0.0024 for the smallest): the family,
    not the test, is held at alpha."""
    base = [1.00, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06, 1.07]
    new = [1.041 + 0.01 * i for i in range(8)]
    one = compare_samples("c", "startup.ready_s", "s", base, new, Thresholds())
    assert one.p_value == pytest.approx(0.004662004662004662)
    thresholds = Thresholds(alpha=0.05, min_change=0.01)
    assert compare.holm([one], thresholds)[0].verdict == "regression"
    quiet = compare_samples("d", "startup.ready_s", "s", BASE, BASE, thresholds)
    judged = compare.holm([one] + [quiet] * 20, thresholds)
    assert judged[0].verdict == "unchanged" and "Holm over 21 gated tests" in judged[0].reason
    # An ungated metric is judged on its own, and can only ever be "changed"
    ungated = compare.holm([compare_samples("c", "startup.exit_s", "s", base, new, thresholds,
                                            gated=False)] + [quiet] * 20, thresholds)
    assert ungated[0].verdict == "changed"


def test_host_drift_cancels_in_the_overhead_and_a_runtime_change_does_not():
    base = cpu_run()
    drift = cpu_run(native_scale=0.7, runc_scale=0.7)  # the whole host 30% slower
    found = by_key(compare_frames(base, drift, Thresholds()))
    runc = found[("cpu@runc", "workload.events_per_s")]
    assert runc.basis == "native" and runc.change == pytest.approx(0.0, abs=1e-9)
    assert runc.verdict == "unchanged"
    assert found[("cpu@native", "workload.events_per_s")].verdict == "regression"  # raw
    slower_runc = by_key(compare_frames(base, cpu_run(runc_scale=0.8), Thresholds()))
    runc = slower_runc[("cpu@runc", "workload.events_per_s")]
    assert runc.verdict == "regression" and runc.change == pytest.approx(-0.2)
    assert runc.reason.startswith("overhead -20.0%")
    raw = Thresholds(metrics={"workload.events_per_s": {"basis": "raw"}})
    assert by_key(compare_frames(base, drift, raw))[("cpu@runc", "workload.events_per_s")].verdict \
        == "regression"


def test_only_what_a_cell_is_about_is_gated():
    found = by_key(compare_frames(cpu_run(), cpu_run(), Thresholds()))
    assert found[("cpu@runc", "workload.events_per_s")].gated
    assert not found[("cpu@runc", "startup.ready_s")].gated  # cpu is about its throughput
    noop = pd.DataFrame(rows("noop@runc", "docker", "docker", "startup.ready_s", BASE,
                             main="startup.ready_s")
                        + rows("noop@runc", "docker", "docker", "startup.exit_s", BASE,
                               main="startup.ready_s"))
    found = by_key(compare_frames(noop, noop, Thresholds()))
    assert found[("noop@runc", "startup.ready_s")].gated
    assert not found[("noop@runc", "startup.exit_s")].gated
    gate_exit = Thresholds(metrics={"startup.exit_s": {"gate": True}})
    assert by_key(compare_frames(noop, noop, gate_exit))[("noop@runc", "startup.exit_s")].gated


def test_conditions_are_never_pooled():
    """Density steps at N = 1 and N = 4 are different cells, so are victims beside different
    aggressors: pooled, N = 4's slower starts would hide in N = 1's."""
    def density(scale):
        return pd.DataFrame(rows("density@runc", "docker", "docker", "density.kth_ready_s",
                                 BASE, n=1)
                            + rows("density@runc", "docker", "docker", "density.kth_ready_s",
                                   [v * 4 * scale for v in BASE], n=4))
    gate = Thresholds(metrics={"density.kth_ready_s": {"gate": True}})
    found = by_key(compare_frames(density(1.0), density(1.3), gate))
    assert found[("density@runc [n=1]", "density.kth_ready_s")].verdict == "unchanged"
    assert found[("density@runc [n=4]", "density.kth_ready_s")].verdict == "regression"
    victims = pd.DataFrame(rows("cpu@runc", "docker", "docker", "startup.ready_s", BASE,
                                aggressor="none")
                           + rows("cpu@runc", "docker", "docker", "startup.ready_s", BASE,
                                  aggressor="forkbomb"))
    assert set(by_key(compare_frames(victims, victims, Thresholds()))) == {
        ("cpu@runc", "startup.ready_s"), ("cpu@runc [beside forkbomb]", "startup.ready_s")}


def test_a_cell_that_failed_in_the_new_run_is_a_regression():
    base = cpu_run()
    new = base[base["cell"] != "cpu@runc"]
    new = pd.concat([new, pd.DataFrame(rows("cpu@runc", "docker", "docker", "startup.ready_s",
                                            [None], error="timed out waiting for CVBENCH READY"))])
    broken = [c for c in compare_frames(base, new, Thresholds()) if c.verdict == "regression"]
    assert [(c.cell, c.metric) for c in broken] == [("cpu@runc", "workload.events_per_s"),
                                                    ("cpu@runc", "startup.ready_s")]
    assert {c.reason for c in broken} == {
        "the cell failed in the new run: timed out waiting for CVBENCH READY"}


def test_a_lost_main_metric_and_far_fewer_values_are_regressions():
    base = cpu_run()
    lost = base[base["metric"] != "workload.events_per_s"]
    broken = {c.cell for c in compare_frames(base, lost, Thresholds()) if c.verdict == "regression"}
    assert broken == {"cpu@native", "cpu@runc"}
    fewer = cpu_run(runc_values=BASE[:4])
    change = by_key(compare_frames(base, fewer, Thresholds()))[("cpu@runc", "workload.events_per_s")]
    assert change.verdict == "regression" and change.reason.startswith("4 values against 10")


def test_some_failed_instances_fail_the_gate():
    base = cpu_run()
    new = pd.concat([base, pd.DataFrame(rows("cpu@runc", "docker", "docker", "startup.ready_s",
                                             [None], error="engine error"))])
    broken = [c for c in compare_frames(base, new, Thresholds()) if c.verdict == "regression"]
    assert [(c.cell, c.metric) for c in broken] == [("cpu@runc", "instances")]


def test_one_value_a_side_is_unjudged_not_unchanged():
    one = cpu_run(runc_values=BASE[:1])
    change = by_key(compare_frames(one, one, Thresholds()))[("cpu@runc", "workload.events_per_s")]
    assert change.verdict == "unjudged"


def test_warm_ups_are_left_out():
    base = cpu_run()
    new = pd.concat([base, pd.DataFrame(rows("cpu@runc", "docker", "docker",
                                             "workload.events_per_s", [1.0, 2.0], warmup=True,
                                             main="workload.events_per_s"))])
    assert not [c for c in compare_frames(base, new, Thresholds()) if c.verdict != "unchanged"
                and c.gated]


def test_absolute_bound():
    thresholds = Thresholds(metrics={"mem.pss_bytes": {"max": 0.5}})
    change = compare_samples("c", "mem.pss_bytes", "bytes", BASE, BASE, thresholds)
    assert change.verdict == "regression" and change.reason == "median 1 above the bound 0.5"


def test_thresholds_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('alpha = 0.05\n[metrics."startup.ready_s"]\nmin_change = 0.1\nmax = 2.0\n'
                    'gate = true\nbasis = "raw"\n')
    t = load_thresholds(path)
    assert t.get("startup.ready_s", "min_change") == 0.1 and t.get("cpu.seconds", "min_change") == 0.05
    assert t.alpha == 0.05 and t.get("startup.ready_s", "basis") == "raw"
    path.write_text('[metrics."startup.ready_s"]\nmin_chnage = 0.1\n')
    with pytest.raises(UserError, match=r"t.toml: metrics.startup.ready_s.min_chnage: unknown key"):
        load_thresholds(path)
    path.write_text('[metrics."startup.ready_s"]\nbasis = "host"\n')
    with pytest.raises(UserError, match=r"basis: expected one of native, raw, got 'host'"):
        load_thresholds(path)


def test_shipped_thresholds_load():
    from pathlib import Path

    thresholds = load_thresholds(Path(__file__).parent.parent / "thresholds.toml")
    assert (thresholds.alpha, thresholds.min_change) == (0.05, 0.05)
    assert thresholds.get("startup.ready_s", "min_change") == 0.20


def test_recorded_run_with_a_broken_cell(golden):
    base = load_frame(golden / "run_smoke")
    new = base[base["cell"] != "noop@runsc"]
    changes = compare_frames(base, new, Thresholds())
    broken = [c for c in changes if c.verdict == "regression"]
    # recorded before noop had a main metric: its lost startup time is what fails
    assert [(c.cell, c.metric) for c in broken] == [("noop@runsc", "startup.ready_s")]
    markdown = compare.to_markdown(changes, "a", "b", [])
    assert markdown.startswith("**cvbench compare**: 1 regression(s), 0 improvement(s) over ")
    assert "| noop@runsc | startup.ready_s | — | — | — (n < 3) |" in markdown


def test_refusal_and_environment_differences(golden):
    env = read_environment(golden / "run_smoke")
    assert compare.refusal(env, env) is None
    other = {**env, "image": {"digest": "sha256:other"}}
    assert "different guest images" in compare.refusal(env, other)
    moved = {**env, "host": {**env["host"], "kernel": "7.0"}}
    assert any(d.startswith("kernel:") for d in compare.environment_differences(env, moved))


def test_a_native_clock_moved_refuses_the_comparison(golden):
    """A baseline of before the native clock started at the agent's exec timed cvbench's
    cgroup and mounts too: every ratio over native would move, not the runtimes."""
    from bench.runtimes.native import CLOCK_FROM

    env = read_environment(golden / "run_smoke")
    assert env["runtimes"]["native"]["kind"] == "native" and "clock_from" not in env["runtimes"]["native"]
    new = {**env, "runtimes": {**env["runtimes"],
                               "native": {**env["runtimes"]["native"], "clock_from": CLOCK_FROM}}}
    why = compare.refusal(env, new)
    assert why.startswith("native instances were timed from the launch call (cgroup and mounts "
                          "included) in the base, from exec of the agent") and "--promote-run" in why
    assert compare.refusal(new, new) is None


def test_startup_is_judged_as_an_overhead_and_memory_raw():
    """Measured on this host: noop's startup moved 26 -> 39 ms natively and 264 -> 354 ms in
    runc between two runs of one build. The overhead moved 10.1x -> 9.2x."""
    def noop(scale, runc_pss=14e6):
        return pd.DataFrame(
            rows("noop@native", "native", "native", "startup.ready_s",
                 [0.03 * v * scale for v in BASE], main="startup.ready_s")
            + rows("noop@runc", "docker", "docker", "startup.ready_s",
                   [0.3 * v * scale for v in BASE], main="startup.ready_s")
            + rows("noop@runc", "docker", "docker", "mem.pss_bytes", [runc_pss * v for v in BASE],
                   main="startup.ready_s"))
    found = by_key(compare_frames(noop(1.0), noop(1.4), Thresholds()))
    runc = found[("noop@runc", "startup.ready_s")]
    assert runc.basis == "native" and runc.verdict == "unchanged"
    assert found[("noop@native", "startup.ready_s")].verdict == "regression"
    pss = by_key(compare_frames(noop(1.0), noop(1.0, runc_pss=20e6), Thresholds()))[
        ("noop@runc", "mem.pss_bytes")]
    assert pss.basis == "raw" and pss.verdict == "changed"  # not noop's main metric
