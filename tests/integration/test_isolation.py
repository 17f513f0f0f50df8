"""scenarios/isolation on the real engines, small: the victim measured alone and beside a
fork bomb and a memory hog in every runtime; the limits hold (the bomb stops at the process
limit, the hog is OOM-killed and comes back); a dead aggressor is recorded and the run goes
on; nothing is left behind, also when the run is interrupted beside a fork bomb."""

import json

import pytest

from bench.collect.cgroups import ROOT, cgroup_version

from .helpers import cvbench, interrupt_run, leftovers, records
from .test_sharing import RUNTIMES

pytestmark = pytest.mark.integration
PIDS = 64

SCENARIO = f"""
name = "isolation"
reps = 1
warmup = 0
timeout_s = 180
[mode]
name = "isolation"
aggressors = ["forkbomb", "memhog"]
aggressor_memory_mib = 256
aggressor_pids = {PIDS}
aggressor_warmup_s = 2
[workloads.cpu]
seconds = 1
"""


def _values(rows, runtime, metric, aggressor):
    return [r["value"] for r in rows if r["runtime"] == runtime and r["metric"] == metric
            and r["tags"].get("aggressor") == aggressor]


def test_isolation(tmp_path):
    scenario = tmp_path / "isolation.toml"
    scenario.write_text(SCENARIO + RUNTIMES)
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--out", out, timeout=900)
    print(result.stdout[-4000:], result.stderr[-3000:])
    env = json.loads((out / "environment.json").read_text())
    assert leftovers(env["run"]) == []
    rows = records(out)
    events = "workload.events_per_s"
    for runtime in ("native", "runc", "runsc", "qemu"):
        assert _values(rows, runtime, events, "none")[0] > 0, runtime
    for runtime in ("native", "runc"):
        # the bomb filled its process limit and no more; the victim still ran beside it
        (processes,) = _values(rows, runtime, "aggressor.host_processes", "forkbomb")
        assert PIDS * 0.8 <= processes <= PIDS, processes
        assert _values(rows, runtime, events, "forkbomb")[0] > 0
        # the hog was OOM-killed in its own cgroup, and its loop lived on
        assert _values(rows, runtime, "aggressor.oom_kills", "memhog")[0] >= 1
        assert _values(rows, runtime, "aggressor.running", "memhog") == [1.0]
        assert _values(rows, runtime, events, "memhog")[0] > 0
    # the guest kernel kept both inside the VM: QEMU lived on and so did the victim
    for aggressor in ("forkbomb", "memhog"):
        assert _values(rows, "qemu", "aggressor.running", aggressor) == [1.0]
        assert _values(rows, "qemu", events, aggressor)[0] > 0
    # gVisor's sandbox may die under either (its threads count against the host's limits):
    # then the victim beside it is recorded as skipped, with the reason, and the run went on
    for aggressor in ("forkbomb", "memhog"):
        victim = [r for r in rows if r["runtime"] == "runsc" and r["metric"] == events
                  and r["tags"].get("aggressor") == aggressor]
        assert len(victim) == 1
        assert victim[0]["value"] is not None or "aggressor" in victim[0]["error"]
    assert result.returncode in (0, 1), result.stderr
    assert (out / "figures" / "isolation.png").exists()
    assert "Isolation" in (out / "report.html").read_text()


def _instance_cgroups(run_id: str) -> int:
    base = ROOT / "cvbench" / run_id if cgroup_version() == 2 else ROOT / "pids" / "cvbench" / run_id
    return sum(1 for p in base.iterdir() if p.is_dir()) if base.exists() else 0


def test_interrupted_beside_a_fork_bomb_cleans_up(tmp_path):
    scenario = tmp_path / "isolation.toml"
    scenario.write_text(SCENARIO.replace("seconds = 1", "seconds = 20")
                        .replace('["forkbomb", "memhog"]', '["forkbomb"]') + RUNTIMES)
    out = tmp_path / "run"

    def beside_the_bomb(run_id):
        """a victim beside the fork bomb (two instance cgroups)"""
        return _instance_cgroups(run_id) >= 2

    code, output, run_id = interrupt_run([scenario, "--runtimes", "native,runc"], out,
                                         beside_the_bomb, timeout=300)
    assert code == 130, output
    assert leftovers(run_id) == []
    assert json.loads((out / "environment.json").read_text())["interrupted"] is True


def test_isolation_stops_at_the_memory_floor(tmp_path):
    scenario = tmp_path / "isolation.toml"
    scenario.write_text(SCENARIO.replace("aggressor_pids", "memory_floor_mib = 10000000\naggressor_pids")
                        + RUNTIMES)
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--out", out, "--runtimes", "native", timeout=300)
    assert result.returncode == 1, result.stderr  # recorded as a failure, not a crash
    assert "isolation stopped: MemAvailable" in result.stdout
    rows = records(out)
    # the victim alone ran; no aggressor was started
    assert [r["tags"]["aggressor"] for r in rows if r["metric"] == "workload.events_per_s"] == ["none"]
    assert not any(r["metric"].startswith("aggressor.") for r in rows)
    assert leftovers(json.loads((out / "environment.json").read_text())["run"]) == []
