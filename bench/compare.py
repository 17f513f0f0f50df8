"""A/B comparison of two runs: which cells got worse, by how much, and how sure we are.

What the gate judges, and why:
- Cells are matched on their name and on every tag that defines a condition (the
  aggressor beside a victim, N and k of a density step, the phase and size of an
  allocation), so different conditions are never pooled.
- Gated is what a cell is about: its workload's main metric (noop's is the time to READY,
  idle's the PSS of the instance). Every other metric is compared and shown, never failed
  on; a thresholds file can gate more, or fewer. Each gated test costs the others power
  (below), so the family stays small.
- A container's or VM's metric is judged as its overhead: divided by the median of the
  native cell of the same workload in the same run. Native and the others run
  interleaved, so a host that got slower or busier between the two runs slows both, and
  the ratio cancels that drift; a change of the runtime does not cancel. Memory, which
  does not scale with the host's speed, and the native cells themselves are judged raw.
- A change is a regression when the two-sided Mann-Whitney U test rejects "no change"
  at the family-wise level alpha, corrected for the number of gated tests (Holm), AND
  the median moved beyond the noise floor `min_change` in the metric's worse direction.
  Without the correction some 80 metrics tested at p < 0.01 fail a run compared with a
  rerun of itself about half the time.
- Broken is a regression too: a cell that measured in BASE and failed in NEW, a gated
  metric that NEW lost, or far fewer values than BASE had.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from bench import metrics, stats, units
from bench.errors import UserError
from bench.params import Param
from bench.results import SKIPPED
from bench.runtimes import is_bare_process

# Tags whose values make another condition of the same cell
CONDITION_TAGS = ("aggressor", "n", "k", "phase", "memory_mib", "touch_mib", "start")
# NEW has "far fewer" values when it has less than this share of BASE's
FEWER_VALUES = 0.5

SETTINGS = {
    "alpha": Param(float, 0.01, "family-wise significance level over all gated tests (Holm)"),
    "min_change": Param(float, 0.05, "relative change below which nothing is a regression"),
}
METRIC_SETTINGS = {
    "min_change": SETTINGS["min_change"],
    "max": Param(float, None, "absolute upper bound on the new median"),
    "min": Param(float, None, "absolute lower bound on the new median"),
    "gate": Param(bool, None, "whether a change of this metric can fail the gate"),
    "basis": Param(str, None, "what is compared: native (the overhead, ratio to the run's "
                   "native cell) or raw", choices=("native", "raw")),
}


def direction(metric: str) -> int | None:
    """+1 when higher is better, -1 when lower is better, None when not gated (the
    registry's word: bench/metrics.py)."""
    return metrics.lookup(metric).sign


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01
    min_change: float = 0.05
    metrics: dict[str, dict] = field(default_factory=dict)

    def get(self, metric: str, key: str):
        value = self.metrics.get(metric, {}).get(key)
        return value if value is not None else getattr(self, key, None)


def load_thresholds(path: Path | None) -> Thresholds:
    if path is None:
        return Thresholds()
    file = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{file}: cannot read thresholds: {exc}") from None
    top = {k: v for k, v in data.items() if k != "metrics"}
    for key, value in top.items():
        _check(file, key, SETTINGS, value)
    metrics = data.get("metrics", {})
    for metric, table in metrics.items():
        if not isinstance(table, dict):
            raise UserError(f"{file}: metrics.{metric}: expected a table")
        for key, value in table.items():
            _check(file, f"metrics.{metric}.{key}", METRIC_SETTINGS, value)
    return Thresholds(**top, metrics=metrics)


def _check(file: str, key: str, spec: dict[str, Param], value) -> None:
    name = key.rsplit(".", 1)[-1]
    if name not in spec:
        raise UserError(f"{file}: {key}: unknown key", fix=f"known keys: {', '.join(spec)}")
    problem = spec[name].check(value)
    if problem:
        raise UserError(f"{file}: {key}: {problem}", fix=spec[name].help)


@dataclass(frozen=True)
class Change:
    cell: str
    metric: str
    unit: str
    n_base: int
    n_new: int
    base_median: float
    new_median: float
    change: float  # new/base - 1, of the overhead where basis is "native"
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str  # regression, improvement, unchanged, changed (not gated), not gated, missing
    reason: str
    gated: bool = False
    basis: str = "raw"  # "native": the overhead (value / the run's native median) was compared


@dataclass(frozen=True)
class Sample:
    """One cell's values of one metric in one run, and what the gate needs to know of them."""

    unit: str
    values: list[float]
    workload: str
    runtime: str
    kind: str
    condition: str
    main: bool  # the workload's main metric


def samples(frame: pd.DataFrame) -> dict[tuple[str, str], Sample]:
    """(cell with its condition, metric) -> the measured values, warm-ups left out."""
    rows = frame[~frame["warmup"].eq(True) & frame["value"].notna()].reset_index(drop=True)
    if rows.empty:
        return {}
    condition = _conditions(rows)
    label = rows["cell"] + condition.map(lambda c: f" [{c}]" if c else "")
    main = rows["tag.main_metric"] if "tag.main_metric" in rows else pd.Series("", index=rows.index)
    out = {}
    for (cell, metric), group in rows.groupby([label, rows["metric"]], sort=False):
        first = group.iloc[0]
        out[(cell, metric)] = Sample(first["unit"], group["value"].astype(float).tolist(),
                                     first["workload"], first["runtime"], first["kind"],
                                     condition[group.index[0]],
                                     bool((main[group.index] == metric).any()))
    return out


def _conditions(rows: pd.DataFrame) -> pd.Series:
    """Per record, the condition tags that set it apart: "beside memhog", "n=4, k=2"."""
    parts = []
    for tag in CONDITION_TAGS:
        column = f"tag.{tag}"
        if column not in rows or tag == "memory_mib" and "tag.phase" not in rows:
            continue  # memory_mib is the scenario's limit everywhere but in allocation runs
        values = rows[column].map(lambda v: "" if v is None or v == "none" or v != v else v)
        prefix = "beside " if tag == "aggressor" else f"{tag}="
        parts.append(values.map(lambda v, p=prefix: f"{p}{_tag_text(v)}" if v != "" else ""))
    if not parts:
        return pd.Series("", index=rows.index)
    return pd.concat(parts, axis=1).apply(lambda r: ", ".join(x for x in r if x), axis=1)


def _tag_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def compare_frames(base: pd.DataFrame, new: pd.DataFrame, thresholds: Thresholds) -> list[Change]:
    """Every (cell, metric) of either run, judged; gated tests Holm-corrected together."""
    base_samples, new_samples = samples(base), samples(new)
    changes = []
    for key in dict.fromkeys([*base_samples, *new_samples]):
        cell, metric = key
        a, b = base_samples.get(key), new_samples.get(key)
        is_gated = gated(metric, a or b, thresholds)
        if a is None or b is None:
            changes.append(_missing(cell, metric, a, b, is_gated, _failure(new, cell)))
            continue
        pair = (_reference(base_samples, key, thresholds), _reference(new_samples, key, thresholds))
        references = (base_samples[pair[0]].values, new_samples[pair[1]].values) if all(pair) else None
        changes.append(compare_samples(cell, metric, a.unit, a.values, b.values, thresholds,
                                       is_gated, references))
    changes += _new_failures(base, new, changes)
    return holm(changes, thresholds)


def gated(metric: str, sample: Sample, thresholds: Thresholds) -> bool:
    """Whether a change of metric in sample's cell can fail the gate: its main metric, unless
    the thresholds say otherwise."""
    if direction(metric) is None:
        return False
    chosen = thresholds.get(metric, "gate")
    return sample.main if chosen is None else chosen


def basis(metric: str, thresholds: Thresholds) -> str:
    """native: compared as the overhead over the run's native cell; raw: as measured.
    Memory does not scale with the host's speed: raw unless the thresholds say otherwise."""
    return thresholds.get(metric, "basis") or ("raw" if metric.startswith("mem.") else "native")


def _reference(found: dict[tuple[str, str], Sample], key: tuple[str, str],
               thresholds: Thresholds) -> tuple[str, str] | None:
    """The key of the native cell of the same workload and condition in the same run, where
    key's metric is compared as an overhead; None for a native cell itself, or where the
    run has none."""
    sample, metric = found[key], key[1]
    if is_bare_process(sample.kind) or basis(metric, thresholds) != "native":
        return None
    for other_key, other in found.items():
        if (other_key[1] == metric and is_bare_process(other.kind) and other.workload == sample.workload
                and _but_start(other.condition) == _but_start(sample.condition)):
            return other_key
    return None


def _but_start(condition: str) -> str:
    """A condition less how the instance started: a VM cell restored from a snapshot
    (start=warm) has the same bare-process reference as a booted one."""
    return ", ".join(part for part in condition.split(", ") if not part.startswith("start="))


def _failure(frame: pd.DataFrame, cell: str) -> str | None:
    """The error that ended cell in frame (skips aside), or None."""
    name = cell.split(" [")[0]
    failed = frame[(frame["cell"] == name) & frame["error"].notna()
                   & ~frame["error"].astype(str).str.startswith(SKIPPED)
                   & ~frame["metric"].astype(str).str.startswith("mem.")]
    return str(failed["error"].iloc[0]) if not failed.empty else None


def _missing(cell: str, metric: str, base: Sample | None, new: Sample | None, gated: bool,
             failure: str | None) -> Change:
    """A gated metric BASE had and NEW lost is a regression (the cell failed, or stopped
    measuring it), and so is a lost startup time, which every instance that came up has.
    Other gaps (a new cell, an ungated metric) are reported only."""
    unit = (base or new).unit
    side = "new" if base else "base"
    broke = side == "new" and (gated or metric == "startup.ready_s")
    if broke:
        reason = f"the cell failed in the new run: {failure}" if failure else \
            "the new run has no value of this gated metric"
    else:
        reason = f"no values in the {side} run"
    nan = math.nan
    return Change(cell, metric, unit, len(base.values) if base else 0,
                  len(new.values) if new else 0, nan, nan, nan, nan, nan, nan,
                  "regression" if broke else "missing", reason, gated)


def _new_failures(base: pd.DataFrame, new: pd.DataFrame, changes: list[Change]) -> list[Change]:
    """Cells that failed in some instances of NEW but in none of BASE, where no gated metric
    already says so: a cell that breaks now and then is broken."""
    named = {c.cell.split(" [")[0] for c in changes if c.verdict == "regression"}
    out = []
    for cell in dict.fromkeys(new["cell"]):
        error = _failure(new[~new["warmup"].eq(True)], cell)
        if cell in named or error is None or _failure(base[~base["warmup"].eq(True)], cell):
            continue
        nan = math.nan
        out.append(Change(cell, "instances", "1", 0, 0, nan, nan, nan, nan, nan, nan,
                          "regression", f"instances failed in the new run, none in the base: {error}",
                          True))
    return out


def compare_samples(cell: str, metric: str, unit: str, base: list[float], new: list[float],
                    thresholds: Thresholds, gated: bool = True,
                    references: tuple[list[float], list[float]] | None = None) -> Change:
    """One metric of one cell, before correction for the other tests (holm() does that).

    With references (the native values of BASE and NEW) the values compared are the
    overhead: each run's values divided by its native median."""
    base_median, new_median = float(np.median(base)), float(np.median(new))
    basis = "raw"
    if references is not None and np.median(references[0]) > 0 and np.median(references[1]) > 0:
        base = list(np.asarray(base, float) / np.median(references[0]))
        new = list(np.asarray(new, float) / np.median(references[1]))
        basis = "native"
    ratio = stats.ratio_ci(new, base)
    change, low, high = ratio.ratio - 1, ratio.ci_low - 1, ratio.ci_high - 1
    p = _p_value(base, new)
    made = lambda verdict, reason: Change(cell, metric, unit, len(base), len(new), base_median,  # noqa: E731
                                          new_median, change, low, high, p, verdict, reason,
                                          gated, basis)
    sign = direction(metric)
    bound_max, bound_min = thresholds.get(metric, "max"), thresholds.get(metric, "min")
    if bound_max is not None and new_median > bound_max:
        return made("regression", f"median {new_median:.4g} above the bound {bound_max:.4g}")
    if bound_min is not None and new_median < bound_min:
        return made("regression", f"median {new_median:.4g} below the bound {bound_min:.4g}")
    if sign is None:
        return made("not gated", "not a performance metric")
    if gated and len(new) < FEWER_VALUES * len(base):
        return made("regression", f"{len(new)} values against {len(base)} in the base run: "
                    "instances failed or were lost")
    if math.isnan(p):
        return made("unjudged", f"too few values to test ({len(base)} vs {len(new)}; 2 a side "
                    "at least)")
    return made("unchanged", f"p = {p:.3g}")  # holm() decides the rest


def holm(changes: list[Change], thresholds: Thresholds) -> list[Change]:
    """Holm-Bonferroni over the gated tests, a family per alpha: the k-th smallest p-value
    (from 0) is significant when it and every smaller one are below alpha / (m - k). Then
    a significant change beyond the noise floor is a regression or an improvement; an
    ungated one is only "changed"."""
    alpha = thresholds.alpha
    tested = [i for i, c in enumerate(changes) if c.verdict == "unchanged" and c.gated]
    order = sorted(tested, key=lambda i: changes[i].p_value)
    significant, m = set(), len(order)
    for k, i in enumerate(order):
        if changes[i].p_value >= alpha / (m - k):
            break
        significant.add(i)
    out = list(changes)
    for i, c in enumerate(changes):
        if c.verdict != "unchanged":
            continue
        floor = thresholds.get(c.metric, "min_change")
        meaning = metrics.lookup(c.metric)
        holm_note = f" (Holm over {m} gated tests: below {alpha / max(m, 1):.2g} for the smallest)"
        if not (i in significant if c.gated else c.p_value < alpha):
            out[i] = replace(c, reason=f"p = {c.p_value:.3g}, not significant"
                             + (holm_note if c.gated else ""))
        elif abs(c.change) < floor:
            out[i] = replace(c, reason=f"significant, but {abs(c.change):.1%} is under the "
                             f"{floor:.0%} floor")
        elif meaning.floor is not None and abs(c.new_median - c.base_median) < meaning.floor:
            moved = units.quantity(abs(c.new_median - c.base_median), c.unit)
            out[i] = replace(c, reason=f"significant, but the median moved {moved}, under the "
                             f"absolute floor of {units.quantity(meaning.floor, meaning.unit)}")
        else:
            worse = (c.change > 0) == (direction(c.metric) < 0)
            verdict = ("regression" if worse else "improvement") if c.gated else "changed"
            what = "overhead " if c.basis == "native" else ""
            out[i] = replace(c, verdict=verdict, reason=f"{what}{c.change:+.1%} with p = "
                             f"{c.p_value:.3g}, beyond the {floor:.0%} floor"
                             + (f" (Holm over {m} gated tests)" if c.gated else "; not gated"))
    return out


# Up to this many values a side the exact distribution of U is cheap (20 ms at 60 vs 60)
EXACT_UP_TO = 60


def _p_value(base: list[float], new: list[float]) -> float:
    """Two-sided Mann-Whitney U: no assumption of normality. Exact where there are no ties
    and the samples are small: the normal approximation that scipy would use from 9 values
    on overstates p (1.8e-4 for 10 vs 10 fully apart, exactly 1.1e-5), and the gate's
    corrected level needs the exact one."""
    if len(base) < 2 or len(new) < 2:
        return math.nan
    values = set(base) | set(new)
    if len(values) == 1:
        return 1.0
    exact = len(values) == len(base) + len(new) and max(len(base), len(new)) <= EXACT_UP_TO
    return float(mannwhitneyu(base, new, alternative="two-sided",
                              method="exact" if exact else "asymptotic").pvalue)


def environment_differences(base_env: dict, new_env: dict) -> list[str]:
    """What differs between the two hosts and could explain a change."""
    out = []
    for key in ("cpu_model", "kernel", "cgroup_version", "cpu_count"):
        a, b = base_env.get("host", {}).get(key), new_env.get("host", {}).get(key)
        if a != b:
            out.append(f"{key}: {a} -> {b}")
    accel = lambda env: {n: r.get("accel_used") for n, r in env.get("runtimes", {}).items()  # noqa: E731
                         if r.get("accel_used")}
    if accel(base_env) != accel(new_env):
        out.append(f"VM acceleration: {accel(base_env)} -> {accel(new_env)}")
    return out


def refusal(base_env: dict, new_env: dict) -> str | None:
    """Why two runs should not be compared without --force, or None."""
    if base_env.get("scenario") != new_env.get("scenario"):
        return f"different scenarios: {base_env.get('scenario')} vs {new_env.get('scenario')}"
    a, b = base_env.get("image", {}).get("digest"), new_env.get("image", {}).get("digest")
    if a != b:
        return f"different guest images: {a} vs {b}"
    a, b = native_clock(base_env), native_clock(new_env)
    if a and b and a != b:  # every ratio over native would move
        return (f"native instances were timed from {a} in the base, from {b} in the new run; "
                "make a run of this cvbench the baseline (cvbench regress --promote-run DIR)")
    return None


def native_clock(env: dict) -> str | None:
    """Where a run's native instances started their clock: a run of before clock_from was
    recorded timed them from the launch call, cvbench's cgroup and mounts included."""
    clocks = {r.get("clock_from", "the launch call (cgroup and mounts included)")
              for r in env.get("runtimes", {}).values() if r.get("kind") == "native"}
    return ", ".join(sorted(clocks)) or None


ORDER = {"regression": 0, "improvement": 1, "unjudged": 2, "missing": 3, "changed": 4,
         "unchanged": 5, "not gated": 6}


def to_markdown(changes: list[Change], base: str, new: str, notes: list[str]) -> str:
    regressions = [c for c in changes if c.verdict == "regression"]
    improvements = [c for c in changes if c.verdict == "improvement"]
    gated = sum(c.gated for c in changes)
    head = (f"**cvbench compare**: {len(regressions)} regression(s), {len(improvements)} "
            f"improvement(s) over {gated} gated of {len(changes)} cell metrics\n\n"
            f"base `{base}` -> new `{new}`\n")
    lines = [head, *[f"> {note}" for note in notes], "",
             "| cell | metric | base | new | change [95% CI] | p | verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for c in sorted(changes, key=lambda c: ORDER[c.verdict]):
        mark = {"regression": "**regression**", "improvement": "improvement"}.get(c.verdict, c.verdict)
        lines.append("| " + " | ".join([*row(c), mark]) + " |")
    return "\n".join(lines) + "\n"


def row(c: Change) -> list[str]:
    """The cell, metric, base and new medians, change and p of c, as the markdown and the
    command line's table show them."""
    metric = c.metric + (" (overhead)" if c.basis == "native" else "")
    return [c.cell, metric, units.quantity(c.base_median, c.unit),
            units.quantity(c.new_median, c.unit), change_text(c), units.number(c.p_value)]


def change_text(c: Change) -> str:
    if c.n_base < stats.MIN_N_FOR_CI or c.n_new < stats.MIN_N_FOR_CI:
        return f"{_pct(c.change)} (n < {stats.MIN_N_FOR_CI})"
    return f"{_pct(c.change)} [{_pct(c.ci_low)}, {_pct(c.ci_high)}]"


def to_json(changes: list[Change]) -> str:
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    return json.dumps([{k: clean(v) for k, v in asdict(c).items()} for c in changes], indent=2)


def _pct(value: float) -> str:
    return units.MISSING if math.isnan(value) else f"{value:+.1%}"
