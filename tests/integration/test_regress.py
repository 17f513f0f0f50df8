"""The regression gate on real runs: a repeat of the same run passes, a run slowed by a
real noisy neighbour (CPU hogs on every core) fails with exit 1."""

import json
import os
import subprocess

import pytest

from .helpers import cvbench

pytestmark = pytest.mark.integration

GATE = """
name = "gate"
reps = 8
warmup = 1
[runtimes.native]
kind = "native"
[workloads.cpu]
seconds = 1
"""
# A wide floor: only a change as large as the hogs cause may fail this test.
THRESHOLDS = "alpha = 0.01\nmin_change = 0.3\n"


def test_gate_passes_a_repeat_and_catches_a_slowdown(tmp_path):
    scenario, thresholds, store = tmp_path / "gate.toml", tmp_path / "t.toml", tmp_path / "store"
    scenario.write_text(GATE)
    thresholds.write_text(THRESHOLDS)
    args = [scenario, "--store", store, "--thresholds", thresholds]

    first = cvbench("regress", *args, "--out", tmp_path / "a", timeout=300)
    assert first.returncode == 0 and "is now the baseline" in first.stdout, first.stderr

    repeat = cvbench("regress", *args, "--out", tmp_path / "b", timeout=300)
    assert repeat.returncode == 0, repeat.stdout
    assert (tmp_path / "b" / "compare.md").read_text().startswith("**cvbench compare**: 0 regression")

    # Each hog in its own session: with scheduler autogroups, hogs sharing one session
    # would share one CPU share between them and barely touch the instance's cgroup.
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
            for _ in range(4 * os.cpu_count())]
    try:
        slowed = cvbench("regress", *args, "--out", tmp_path / "c", "--promote", timeout=300)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert slowed.returncode == 1, slowed.stdout
    changes = json.loads((tmp_path / "c" / "compare.json").read_text())
    throughput = next(c for c in changes if c["metric"] == "workload.events_per_s")
    assert throughput["verdict"] == "regression" and throughput["change"] < -0.3
    # A run that failed the gate never becomes the baseline, --promote or not
    assert "not promoted" in slowed.stdout
    baseline = next(store.glob("*/gate"))
    assert (baseline / "records.jsonl").read_text() == (tmp_path / "a" / "records.jsonl").read_text()
    by_hand = cvbench("regress", scenario, "--store", store, "--promote-run", tmp_path / "c")
    assert by_hand.returncode == 0 and "promoted" in by_hand.stdout, by_hand.stderr
    assert (baseline / "records.jsonl").read_text() == (tmp_path / "c" / "records.jsonl").read_text()
