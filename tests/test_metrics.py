"""The metric registry (bench/metrics.py) and the number formatter (bench/units.py): what
each metric means, pinned to what the gate did before the registry existed."""

import json

import pytest

from bench import metrics, units
from bench.metrics import HIGHER, LOWER, MetricInfo, lookup
from bench.workloads import CATALOGUE, LONG_LIVED, RESTING_FOOTPRINT, STARTUP_PROBE, roles_of


@pytest.mark.parametrize("name, better, gated", [
    ("startup.ready_s", LOWER, True),
    ("mem.pss_bytes", LOWER, True),
    ("cpu.total_seconds", LOWER, True),
    ("workload.events_per_s", HIGHER, True),
    ("workload.iops", HIGHER, True),
    ("workload.ns_per_syscall", LOWER, True),
    ("workload.cpu_s_per_kevent", LOWER, True),
    ("density.reached_n", HIGHER, True),
    ("workload.exit_code", None, False),
    ("workload.time_s", None, False),
    ("kernel.shared_with_host", None, False),
    ("aggressor.cpu_seconds", None, False),
    ("aggressor.running", None, False),
    ("storage.full_copy_s", LOWER, False),  # the host's disk, contrasted with: not gated
    ("workload.net", None, False),  # what the runner records when net failed
])
def test_known_metrics(name, better, gated):
    info = lookup(name)
    assert name in metrics.registered()
    assert (info.better, info.gated) == (better, gated)


def test_units_and_labels_of_known_metrics():
    assert lookup("startup.ready_s").unit == "s"
    assert lookup("mem.cgroup_bytes").unit == "bytes"
    assert lookup("mem.cgroup_bytes").label == "cgroup working set"
    assert lookup("workload.host_to_guest_bytes_per_s").unit == "bytes/s"
    assert lookup("workload.get_p99_s").label == "redis GET latency, 99th percentile"


def test_sign_is_what_the_gate_reads():
    assert lookup("startup.ready_s").sign == -1
    assert lookup("workload.events_per_s").sign == +1
    assert lookup("storage.full_copy_s").sign is None
    assert lookup("workload.exit_code").sign is None


@pytest.mark.parametrize("name, sign", [
    ("workload.new_thing_per_s", +1), ("workload.new_latency_s", -1),
    ("mem.new_view", -1), ("density.new_bytes", -1), ("aggressor.new_rate_per_s", None),
    ("workload.new_count", None),
])
def test_an_unregistered_name_is_guessed_as_before(name, sign):
    assert name not in metrics.registered()
    assert lookup(name).sign == sign


def test_key_metrics_of_the_summary_table_in_order():
    assert [m.name for m in metrics.key_metrics()] == [
        "startup.ready_s", "startup.exit_s", "mem.cgroup_bytes", "mem.pss_bytes", "cpu.seconds",
        "workload.events_per_s"]


def test_a_metric_registered_twice_must_mean_the_same():
    metrics.register(lookup("startup.ready_s"))  # the same: fine
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register(metrics.higher("startup.ready_s", "s", "faster?"))
    with pytest.raises(ValueError, match="cannot be gated"):
        MetricInfo("workload.x", "1", None, "x")


def test_every_recorded_metric_is_registered(golden):
    recorded = set()
    for records in golden.glob("*/records.jsonl"):
        recorded |= {json.loads(line)["metric"] for line in records.read_text().splitlines()}
    assert recorded and recorded <= set(metrics.registered()), recorded - set(metrics.registered())


def test_every_workload_registers_its_main_metric():
    for workload in CATALOGUE.values():
        params = workload.resolve({})
        main = workload.main_metric(params)
        assert lookup(main).gated, workload.name
        assert main in metrics.registered(), workload.name


def test_roles_by_catalogue_name():
    assert roles_of("noop") == (STARTUP_PROBE,)
    assert roles_of("idle") == (RESTING_FOOTPRINT,)
    assert roles_of("cpu") == (LONG_LIVED,)
    assert roles_of("disk") == ()
    assert roles_of("noop-again") == ()  # a scenario's own name: no catalogue entry


@pytest.mark.parametrize("value, text", [
    (12345.6, "12,346"), (123.45, "123.5"), (1.2345, "1.23"), (0.012345, "0.0123"),
    (0.0, "0"), (-2.5, "-2.50"), (float("nan"), "—"), (None, "—"),
])
def test_number(value, text):
    assert units.number(value) == text


@pytest.mark.parametrize("value, unit, text", [
    (0.0261, "s", "26.1 ms"), (1.5, "s", "1.50 s"), (0.0, "s", "0 s"),
    (4096, "bytes", "4.00 KiB"), (700 * 2**20, "bytes", "700.0 MiB"),
    (3 * 2**30, "bytes", "3.00 GiB"), (512, "bytes", "512.0 bytes"),
    (41025284341.76, "bytes/s", "38.2 GiB/s"), (2444.29, "1/s", "2,444 1/s"),
    (3.0, "1", "3.00"), (35.2, "ns", "35.2 ns"), (float("nan"), "s", "—"),
])
def test_quantity(value, unit, text):
    assert units.quantity(value, unit) == text


def test_table_unit():
    assert units.table_unit("bytes") == ("MiB", 2**20)
    assert units.table_unit("bytes/s") == ("MiB/s", 2**20)
    assert units.table_unit("s") == ("s", 1)


def test_the_report_finds_workloads_by_role():
    import pandas as pd

    from bench.report.data import memory_workload
    from bench.workloads import with_role

    assert with_role(["cpu", "noop", "disk", "idle"], STARTUP_PROBE, RESTING_FOOTPRINT) == [
        "noop", "idle"]
    rows = [{"workload": w, "runtime": "native", "kind": "native", "rep": 0, "warmup": False,
             "metric": m, "value": v}
            for w, m, v in [("cpu", "mem.pss_bytes", 1.0), ("idle", "mem.pss_bytes", 2.0),
                            ("cpu", "startup.exit_s", 9.0), ("idle", "startup.exit_s", 5.0)]]
    assert memory_workload(pd.DataFrame(rows)) == "idle"  # resting beats long-lived
    assert memory_workload(pd.DataFrame(rows[:1] + rows[2:3])) == "cpu"
    # a scenario's own name for idle has no role: the long-lived cpu is taken
    renamed = [dict(r, workload="rest") if r["workload"] == "idle" else r for r in rows]
    assert memory_workload(pd.DataFrame(renamed)) == "cpu"
    # no roles at all: the workload whose instances took longest to exit
    renamed = [dict(r, workload={"idle": "rest", "cpu": "busy"}[r["workload"]]) for r in rows]
    assert memory_workload(pd.DataFrame(renamed)) == "busy"
