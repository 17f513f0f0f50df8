"""The isolation scenario's aggressors and its report: losses with their direction, dead
aggressors, the finding and the heatmap, on small frames shaped as load_frame gives them."""

import pandas as pd

from bench.aggressors import AGGRESSORS
from bench.report import isolation
from bench.report.isolation import BEFORE, DURING


def test_aggressors_reuse_the_catalogue_and_never_end():
    cpu = AGGRESSORS["cpu"].command(2, 512)
    assert cpu.startswith("sysbench cpu --threads=2 --time=86400")
    memory = AGGRESSORS["memory"].command(2, 512)  # a quarter of 512 MiB over 2 threads
    assert "--memory-block-size=65536K" in memory and "--memory-oper=write" in memory
    disk = AGGRESSORS["disk"].command(2, 512)
    assert "--rw=randwrite" in disk and "--bs=4k" in disk and AGGRESSORS["disk"].needs.scratch
    assert AGGRESSORS["forkbomb"].command(2, 512) == "perl -e 'fork while 1'"
    memhog = AGGRESSORS["memhog"].command(2, 256)
    assert memhog.startswith("while :; do perl") and " 512; " in memhog  # twice its limit


def rows(runtime, kind, workload, metric, values, aggressor, error=None):
    return [{"run": "r", "scenario": "isolation", "cell": f"{workload}@{runtime}",
             "workload": workload, "runtime": runtime, "kind": kind, "rep": rep, "warmup": False,
             "metric": metric, "value": value, "unit": "", "t": 0.0, "image": "i", "error": error,
             "tag.aggressor": aggressor, "tag.main_metric": metric if metric.startswith("workload.")
             else None} for rep, value in enumerate(values)]


def frame():
    events, rtt = "workload.events_per_s", "workload.rtt_p50_s"
    return pd.DataFrame(
        rows("runc", "docker", "cpu", events, [1000, 1010, 990], "none")
        + rows("runc", "docker", "cpu", events, [500, 505, 495], "cpu")
        + rows("runc", "docker", "rr", rtt, [1e-4, 1.1e-4, 0.9e-4], "none")
        + rows("runc", "docker", "rr", rtt, [2e-4, 2.2e-4, 1.8e-4], "cpu")  # slower: a loss
        + rows("runsc", "docker", "cpu", events, [900, 910, 890], "none")
        + rows("runsc", "docker", "cpu", events, [None], "memhog",
               error="skipped: aggressor memhog ended in its warm-up: CVBENCH READY 0.2 4.4.0")
        + rows("runsc", "docker", "cpu", "aggressor.running", [0.0], "memhog")
        + rows("runc", "docker", "cpu", "aggressor.running", [0.0], "cpu"))


def test_losses_follow_each_metric_direction():
    found = {(x.victim, x.runtime, x.aggressor): x for x in isolation.losses(frame())}
    cpu = found["cpu", "runc", "cpu"]
    assert round(cpu.pct) == 50 and cpu.low <= cpu.pct <= cpu.high and cpu.n_beside == 3
    rr = found["rr", "runc", "cpu"]  # round trips twice as long: half the performance kept
    assert round(rr.pct) == 50
    assert ("cpu", "runsc", "memhog") not in found  # nothing measured beside it


def test_dead_aggressors_before_and_during():
    deaths = isolation.aggressor_deaths(frame())
    assert deaths == {("runsc", "memhog"): BEFORE, ("runc", "cpu"): DURING}
    text = isolation.finding(frame(), emulated=set())
    assert text.startswith("beside its worst neighbour the cpu victim lost runc 50% [")
    assert "the runsc aggressor instance died before the victim under memhog" in text
    assert "the runc aggressor instance died while the victim ran under cpu" in text


def test_heatmap_is_drawn(tmp_path):
    path = isolation.figure(frame(), tmp_path / "isolation.png", emulated=set())
    assert path.exists() and path.stat().st_size > 10_000


def test_no_isolation_records_no_section(tmp_path):
    alone = frame()[frame()["tag.aggressor"] == "none"]
    assert isolation.finding(alone, set()) is None
    assert isolation.figure(alone, tmp_path / "x.png", set()) is None
