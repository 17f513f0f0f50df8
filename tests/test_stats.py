import math

import numpy as np
import pytest

from bench import stats
from bench.stats import Ratio, is_noisy, mad_outliers, ratio_ci, suggested_reps, summary


def test_summary_of_a_fixed_sample():
    s = summary([2, 4, 4, 4, 5, 5, 7, 9])
    assert s.n == 8
    assert s.median == 4.5
    assert s.mean == 5.0
    assert s.stdev == pytest.approx(math.sqrt(32 / 7))
    assert s.cv == pytest.approx(math.sqrt(32 / 7) / 5)
    assert s.p5 == pytest.approx(2.7)  # numpy's linear interpolation
    assert s.p95 == pytest.approx(8.3)
    assert s.ci_low <= s.median <= s.ci_high


def test_median_ci_of_five_values_spans_the_sample():
    # A bootstrap median of 1..5 is 1 with probability P(>=3 of 5 draws are 1) = 5.8%,
    # more than the 2.5% tail, so the 95% interval runs from the minimum to the maximum.
    s = summary([1, 2, 3, 4, 5])
    assert (s.ci_low, s.ci_high) == (1.0, 5.0)


def test_median_ci_matches_the_standard_error_of_a_large_sample():
    # 1..101: median 51, standard error of the median about 101 / (2 sqrt(101)) = 5.0,
    # so the 95% interval is about 51 +- 10.
    s = summary(np.arange(1, 102))
    assert s.median == 51
    assert 39 <= s.ci_low <= 46
    assert 56 <= s.ci_high <= 63


def test_summary_is_deterministic_given_a_seed():
    values = [3.1, 2.7, 3.3, 2.9, 4.0, 3.0, 3.2]
    assert summary(values, seed=7) == summary(values, seed=7)
    assert summary(values) == summary(values)


def test_summary_of_nothing():
    s = summary([])
    assert s.n == 0
    assert math.isnan(s.median) and math.isnan(s.ci_low) and math.isnan(s.cv)
    assert not is_noisy(s)


def test_one_or_two_values_have_no_interval():
    """A bootstrap from one value collapses to a point: no interval, not a zero-width one."""
    s = summary([0.25])
    assert (s.n, s.median, s.mean) == (1, 0.25, 0.25)
    assert math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert math.isnan(s.stdev) and math.isnan(s.cv)
    assert not is_noisy(s)
    two = summary([1.0, 3.0])
    assert two.median == 2.0 and math.isnan(two.ci_low) and math.isnan(two.ci_high)
    three = summary([1.0, 2.0, 3.0])
    assert (three.ci_low, three.ci_high) == (1.0, 3.0)


def test_summary_of_equal_values_has_no_spread():
    s = summary([7.0] * 5)
    assert (s.median, s.stdev, s.cv, s.ci_low, s.ci_high) == (7.0, 0.0, 0.0, 7.0, 7.0)
    assert summary([0.0] * 3).cv == 0.0  # zero mean, zero spread: no division by zero


def test_failed_measurements_are_not_values():
    s = summary([1.0, None, 3.0, float("nan")])
    assert s.n == 2
    assert s.median == 2.0


def test_ratio_of_constant_arrays_is_exact():
    assert ratio_ci([6.0, 6.0, 6.0], [2.0, 2.0, 2.0]) == Ratio(3.0, 3.0, 3.0, 3)


def test_ratio_with_a_side_below_three_values_has_no_interval():
    r = ratio_ci([6.0, 6.0, 6.0], [2.0, 2.0])
    assert (r.ratio, r.n) == (3.0, 2) and math.isnan(r.ci_low) and math.isnan(r.ci_high)


def test_ratio_ci_brackets_the_ratio_of_medians():
    rng = np.random.default_rng(1)
    slow, fast = rng.normal(200, 5, 30), rng.normal(100, 5, 30)
    r = ratio_ci(slow, fast)
    assert r.ratio == pytest.approx(np.median(slow) / np.median(fast))
    assert r.ci_low < r.ratio < r.ci_high
    assert 1.8 < r.ci_low and r.ci_high < 2.2
    assert ratio_ci(slow, fast) == r  # seeded


def test_ratio_without_a_usable_baseline_is_nan():
    for values, baseline in [([], [1.0]), ([1.0], []), ([1.0, 2.0], [0.0, 0.0])]:
        r = ratio_ci(values, baseline)
        assert math.isnan(r.ratio) and math.isnan(r.ci_low) and math.isnan(r.ci_high)


def test_mad_flags_an_obvious_outlier():
    mask = mad_outliers([10.0, 10.1, 9.9, 10.2, 9.8, 50.0])
    assert mask.tolist() == [False] * 5 + [True]


def test_mad_threshold_is_respected():
    values = [10.0, 10.1, 9.9, 10.2, 9.8, 11.0]  # modified z of 11.0 is about 4.7
    assert mad_outliers(values)[-1]
    assert not mad_outliers(values, threshold=5.0)[-1]


def test_mad_when_most_values_are_equal_falls_back_to_mean_deviation():
    # MAD is 0 here; the mean absolute deviation (0.8) gives 5 a score of about 4
    assert mad_outliers([1.0, 1.0, 1.0, 1.0, 5.0]).tolist() == [False] * 4 + [True]


def test_mad_never_flags_equal_values_missing_values_or_tiny_samples():
    assert not mad_outliers([3.0] * 6).any()
    assert mad_outliers([1.0, None, 1.1, 0.9, float("nan"), 9.0]).tolist() == \
        [False, False, False, False, False, True]
    assert not mad_outliers([1.0, 100.0]).any()
    assert mad_outliers([]).tolist() == []


def test_noisy_means_cv_above_the_threshold():
    steady = summary([100.0, 101.0, 99.0, 100.0])
    jumpy = summary([100.0, 130.0, 80.0, 100.0])
    assert not is_noisy(steady)
    assert is_noisy(jumpy)
    assert is_noisy(steady, cv_threshold=0.001)


def test_suggested_reps_against_hand_computed_values():
    # z(95%) = 1.959964: (1.959964 * 0.05 / 0.02)^2 = 24.009 -> 25
    assert suggested_reps(0.05) == 25
    assert suggested_reps(0.10) == 97  # 9.79982^2 = 96.04
    assert suggested_reps(0.10, target_halfwidth=0.05) == 16  # 3.919928^2 = 15.37
    assert suggested_reps(0.05, confidence=0.99) == 42  # z = 2.575829: 6.43957^2 = 41.47


def test_suggested_reps_stays_between_one_more_and_the_cap():
    assert suggested_reps(0.01, n=3) == 4  # 0.96 -> 1, but 3 are already measured
    assert suggested_reps(0.06, n=3) == 35
    assert suggested_reps(0.5) == 200  # 2401 asked for: the host is the problem
    assert suggested_reps(math.inf) == 200
    assert suggested_reps(math.nan, n=2) == 3


def test_an_interval_asked_for_again_is_the_one_computed_afresh(monkeypatch):
    values, baseline = [1.0, 1.4, 1.1, 1.3, 2.0, 1.2], [1.0, 0.9, 1.1, 1.05, 0.95]
    first = (stats.summary(values), stats.ratio_ci(values, baseline),
             stats.difference_ci(values, baseline))
    monkeypatch.setattr(stats, "_REMEMBERED", {})
    assert (stats.summary(values), stats.ratio_ci(values, baseline),
            stats.difference_ci(values, baseline)) == first
    # other values, or another seed, are another interval, not the one remembered
    others = (stats.summary(values, seed=1), stats.ratio_ci(baseline, values),
              stats.summary(values[:-1]))
    monkeypatch.setattr(stats, "_REMEMBERED", {})
    assert (stats.summary(values, seed=1), stats.ratio_ci(baseline, values),
            stats.summary(values[:-1])) == others


def test_a_summary_without_interval_skips_only_the_bootstrap():
    values = [1.0, 1.4, 1.1, 1.3, 2.0, 1.2]
    full, bare = stats.summary(values), stats.summary(values, interval=False)
    assert math.isnan(bare.ci_low) and math.isnan(bare.ci_high)
    assert (bare.n, bare.median, bare.mean, bare.stdev, bare.cv) == (full.n, full.median, full.mean,
                                                                     full.stdev, full.cv)
