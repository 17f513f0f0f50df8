"""Statistics on measured values: pure functions, no I/O, no plotting.

Benchmarks here have few repetitions and skewed distributions (a slow first
start, a noisy neighbour), so the centre is the median and its uncertainty is
a percentile bootstrap, which assumes no distribution. Every bootstrap takes a
seed so that a report rebuilt from the same records shows the same numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
# Below 3 values a percentile bootstrap interval is no interval: from one value it collapses
# to a point, from two it covers the truth about half the time. Say "n < 3" instead.
MIN_N_FOR_CI = 3
SEED = 0
MAX_SUGGESTED_REPS = 200

# Iglewicz and Hoaglin: 0.6745 is the 0.75 quantile of the standard normal, which
# makes the MAD comparable to a standard deviation; 1.2533 (sqrt(pi/2)) does the
# same for the mean absolute deviation, used when more than half the values are equal.
_MAD_SCALE = 0.6745
_MEAN_AD_SCALE = 1.253314


@dataclass(frozen=True)
class Summary:
    """Centre and spread of one cell's values; ci_* bound the median."""

    n: int
    median: float
    mean: float
    stdev: float  # sample standard deviation (ddof=1); nan below two values
    cv: float  # stdev / |mean|; nan below two values
    p5: float
    p95: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Ratio:
    """value / baseline as a ratio of medians, with its bootstrap interval; n is the
    smaller of the two sides' counts (the interval is nan when it is below MIN_N_FOR_CI)."""

    ratio: float
    ci_low: float
    ci_high: float
    n: int = 0


def clean(values: Iterable[float | None]) -> np.ndarray:
    """The finite values as a float array: a failed measurement (None, nan) is no value."""
    array = _floats(values)
    return array[np.isfinite(array)]


def _floats(values: Iterable[float | None]) -> np.ndarray:
    """values as a float array, None as nan."""
    if isinstance(getattr(values, "dtype", None), np.dtype) and values.dtype.kind in "fiu":
        return np.array(values, dtype=float)  # numbers already (an array, a Series): no None
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def summary(values: Iterable[float | None], resamples: int = RESAMPLES, seed: int = SEED,
            confidence: float = CONFIDENCE, interval: bool = True) -> Summary:
    """interval=False skips the bootstrap (ci_* nan): for a caller that shows no interval."""
    x = clean(values)
    n = len(x)
    if n == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan)
    median = float(np.median(x))
    mean = float(np.mean(x))
    stdev = float(np.std(x, ddof=1)) if n > 1 else math.nan
    p5, p95 = (float(p) for p in np.percentile(x, [5, 95]))
    ci_low = ci_high = math.nan
    if n >= MIN_N_FOR_CI and interval:
        ci_low, ci_high = _remembered(
            ("median", _key(x), resamples, seed, confidence),
            lambda: _bootstrap_ci(_bootstrap_medians(x, resamples, _rng(seed)), confidence))
    return Summary(n, median, mean, stdev, _cv(stdev, mean), p5, p95, ci_low, ci_high)


def ratio_ci(values: Iterable[float | None], baseline_values: Iterable[float | None],
             resamples: int = RESAMPLES, seed: int = SEED,
             confidence: float = CONFIDENCE) -> Ratio:
    """median(values) / median(baseline_values), each side resampled on its own.

    The two samples come from different instances, so they are not paired. nan
    when either side is empty or the baseline median is zero; the interval is nan
    when either side has fewer than MIN_N_FOR_CI values.
    """
    x, base = clean(values), clean(baseline_values)
    n = min(len(x), len(base))
    if n == 0 or np.median(base) == 0:
        return Ratio(math.nan, math.nan, math.nan, n)
    ratio = float(np.median(x) / np.median(base))
    if n < MIN_N_FOR_CI:
        return Ratio(ratio, math.nan, math.nan, n)

    def interval() -> tuple[float, float]:
        rng = _rng(seed)
        numerators = _bootstrap_medians(x, resamples, rng)
        denominators = _bootstrap_medians(base, resamples, rng)
        usable = denominators != 0  # a zero-median resample has no ratio; drop it, not the interval
        if not usable.any():
            return math.nan, math.nan
        return _bootstrap_ci(numerators[usable] / denominators[usable], confidence)

    ci_low, ci_high = _remembered(("ratio", _key(x), _key(base), resamples, seed, confidence),
                                  interval)
    return Ratio(ratio, ci_low, ci_high, n)


@dataclass(frozen=True)
class Difference:
    """median(values) - median(baseline) with its bootstrap interval (nan below
    MIN_N_FOR_CI on either side); n is the smaller side's count."""

    difference: float
    ci_low: float
    ci_high: float
    n: int = 0


def difference_ci(values: Iterable[float | None], baseline_values: Iterable[float | None],
                  resamples: int = RESAMPLES, seed: int = SEED,
                  confidence: float = CONFIDENCE) -> Difference:
    """The difference of medians of two unpaired samples, each side resampled on its own."""
    x, base = clean(values), clean(baseline_values)
    n = min(len(x), len(base))
    if n == 0:
        return Difference(math.nan, math.nan, math.nan, n)
    difference = float(np.median(x) - np.median(base))
    if n < MIN_N_FOR_CI:
        return Difference(difference, math.nan, math.nan, n)

    def interval() -> tuple[float, float]:
        rng = _rng(seed)
        spread = _bootstrap_medians(x, resamples, rng) - _bootstrap_medians(base, resamples, rng)
        return _bootstrap_ci(spread, confidence)

    ci_low, ci_high = _remembered(
        ("difference", _key(x), _key(base), resamples, seed, confidence), interval)
    return Difference(difference, ci_low, ci_high, n)


def mad_outliers(values: Iterable[float | None], threshold: float = 3.5) -> np.ndarray:
    """Boolean mask, one per input value: True where the modified z-score exceeds threshold.

    A failed measurement (None, nan) is never an outlier. When more than half the
    values are equal the MAD is zero; the mean absolute deviation takes its place,
    and when that is zero too all values are equal and none is an outlier.
    """
    raw = _floats(values)
    mask = np.zeros(len(raw), dtype=bool)
    finite = np.isfinite(raw)
    x = raw[finite]
    if len(x) < 3:  # with two values neither is more "outlying" than the other
        return mask
    deviation = np.abs(x - np.median(x))
    mad = np.median(deviation)
    if mad > 0:
        score = _MAD_SCALE * deviation / mad
    elif (mean_ad := np.mean(deviation)) > 0:
        score = deviation / (_MEAN_AD_SCALE * mean_ad)
    else:
        return mask
    mask[finite] = score > threshold
    return mask


def is_noisy(stats: Summary, cv_threshold: float = 0.05) -> bool:
    """True when the coefficient of variation exceeds the threshold (5%, as Firecracker)."""
    return not math.isnan(stats.cv) and stats.cv > cv_threshold


def suggested_reps(cv: float, target_halfwidth: float = 0.02, confidence: float = CONFIDENCE,
                   *, n: int = 0) -> int:
    """Repetitions for a confidence interval of +-target_halfwidth (relative) around the mean.

    The interval's relative half-width is z * cv / sqrt(reps), so reps = (z * cv / target)^2,
    rounded up; at least one more than the n already measured (else why suggest it), at
    most MAX_SUGGESTED_REPS (a cell that noisy needs a quieter host, not more runs).
    """
    if math.isnan(cv):
        return n + 1
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    needed = math.ceil((z * cv / target_halfwidth) ** 2) if math.isfinite(cv) else math.inf
    return int(min(max(needed, n + 1), MAX_SUGGESTED_REPS))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _bootstrap_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    indices = rng.integers(0, len(x), size=(resamples, len(x)))
    return np.median(x[indices], axis=1, overwrite_input=True)  # x[indices] is a copy already


# A report asks for the same interval several times (the summary table, the workload's
# section, its figure): each is computed once. Seeded, an interval depends on nothing but
# its arguments, so the one remembered is the one that would be computed.
_REMEMBERED: dict = {}
_REMEMBER_AT_MOST = 1024


def _key(x: np.ndarray) -> tuple[int, bytes]:
    return len(x), hashlib.blake2b(x.tobytes(), digest_size=16).digest()


def _remembered(key: tuple, compute: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    if key not in _REMEMBERED:
        if len(_REMEMBERED) >= _REMEMBER_AT_MOST:
            del _REMEMBERED[next(iter(_REMEMBERED))]  # the oldest
        _REMEMBERED[key] = compute()
    return _REMEMBERED[key]


def _bootstrap_ci(estimates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def _cv(stdev: float, mean: float) -> float:
    if math.isnan(stdev):
        return math.nan
    if stdev == 0:
        return 0.0
    return stdev / abs(mean) if mean != 0 else math.inf
