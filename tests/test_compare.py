"""The A/B decision: significance AND a noise floor, in the metric's worse direction."""

import numpy as np
import pytest

from bench import compare
from bench.compare import Thresholds, compare_frames, compare_samples, direction, load_thresholds
from bench.errors import UserError
from bench.results import load_frame, read_environment

RNG = np.random.default_rng(7)
BASE = list(RNG.normal(1.0, 0.01, 10))


def test_directions():
    assert direction("startup.ready_s") == -1
    assert direction("mem.pss_bytes") == -1
    assert direction("cpu.seconds") == -1
    assert direction("workload.events_per_s") == +1 and direction("workload.iops") == +1
    assert direction("workload.ns_per_syscall") == -1 and direction("workload.lat_p99_s") == -1
    assert direction("workload.exit_code") is None and direction("kernel.shared_with_host") is None


def test_same_distribution_is_unchanged():
    same = list(RNG.normal(1.0, 0.01, 10))
    assert compare_samples("c", "startup.ready_s", "s", BASE, same, Thresholds()).verdict == "unchanged"


def test_slower_startup_is_a_regression_and_faster_an_improvement():
    slower = [v * 1.2 for v in BASE]
    change = compare_samples("c", "startup.ready_s", "s", BASE, slower, Thresholds())
    assert change.verdict == "regression" and change.p_value < 0.01
    assert change.change == pytest.approx(0.2, rel=1e-6) and change.ci_low > 0
    faster = [v * 0.8 for v in BASE]
    assert compare_samples("c", "startup.ready_s", "s", BASE, faster, Thresholds()).verdict == "improvement"


def test_lower_throughput_is_a_regression():
    lower = [v * 0.8 for v in BASE]
    change = compare_samples("c", "workload.events_per_s", "1/s", BASE, lower, Thresholds())
    assert change.verdict == "regression"


def test_significant_but_small_change_is_under_the_floor():
    slightly = [v * 1.03 for v in BASE]
    change = compare_samples("c", "startup.ready_s", "s", BASE, slightly, Thresholds())
    assert change.p_value < 0.01 and change.verdict == "unchanged"
    assert compare_samples("c", "startup.ready_s", "s", BASE, slightly,
                           Thresholds(min_change=0.02)).verdict == "regression"


def test_three_against_three_can_never_be_significant():
    """Mann-Whitney's smallest two-sided p for 3 vs 3 is 0.1: say unchanged, not regression."""
    change = compare_samples("c", "startup.ready_s", "s", [1, 1.01, 1.02], [2, 2.01, 2.02], Thresholds())
    assert change.p_value == pytest.approx(0.1) and change.verdict == "unchanged"


def test_absolute_bound():
    thresholds = Thresholds(metrics={"mem.pss_bytes": {"max": 0.5}})
    change = compare_samples("c", "mem.pss_bytes", "bytes", BASE, BASE, thresholds)
    assert change.verdict == "regression" and "bound" in change.reason


def test_thresholds_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('alpha = 0.05\n[metrics."startup.ready_s"]\nmin_change = 0.1\nmax = 2.0\n')
    t = load_thresholds(path)
    assert t.get("startup.ready_s", "min_change") == 0.1 and t.get("cpu.seconds", "min_change") == 0.05
    assert t.get("startup.ready_s", "alpha") == 0.05
    path.write_text('[metrics."startup.ready_s"]\nmin_chnage = 0.1\n')
    with pytest.raises(UserError, match=r"t.toml: metrics.startup.ready_s.min_chnage: unknown key"):
        load_thresholds(path)


def test_shipped_thresholds_load():
    from pathlib import Path

    assert load_thresholds(Path(__file__).parent.parent / "thresholds.toml").alpha == 0.01


def test_recorded_run_against_itself(golden):
    frame = load_frame(golden / "run_smoke")
    changes = compare_frames(frame, frame, Thresholds())
    assert changes and not [c for c in changes if c.verdict in ("regression", "improvement")]
    markdown = compare.to_markdown(changes, "a", "b", [])
    assert markdown.startswith("**cvbench compare**: 0 regression(s)")


def test_a_cell_that_stopped_working_is_a_regression(golden):
    base = load_frame(golden / "run_smoke")
    new = base[base["cell"] != "noop@runsc"]
    broken = [c for c in compare_frames(base, new, Thresholds()) if c.verdict == "regression"]
    assert [(c.cell, c.metric) for c in broken] == [("noop@runsc", "startup.ready_s")]


def test_refusal_and_environment_differences(golden):
    env = read_environment(golden / "run_smoke")
    assert compare.refusal(env, env) is None
    other = {**env, "image": {"digest": "sha256:other"}}
    assert "different guest images" in compare.refusal(env, other)
    moved = {**env, "host": {**env["host"], "kernel": "7.0"}}
    assert any(d.startswith("kernel:") for d in compare.environment_differences(env, moved))
