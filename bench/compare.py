"""A/B comparison of two runs: which cells got worse, by how much, and how sure we are.

A change is a regression only when it is statistically significant (Mann-Whitney U,
p < alpha) AND larger than a noise floor, in the direction that is worse for the
metric; per-metric floors and absolute bounds come from a thresholds file.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from scipy.stats import mannwhitneyu

from bench import stats
from bench.errors import UserError
from bench.params import Param
from bench.results import aggressor_column

LOWER_IS_BETTER = ("startup.", "mem.", "cpu.")
# Costs per unit of work: less is better, though their names end in neither _s nor _bytes
LOWER_IS_BETTER_WORKLOAD = ("workload.ns_per_syscall", "workload.cpu_s_per_kevent")
# Echoes of the scenario or of the instance rather than performance.
NOT_GATED = ("workload.exit_code", "workload.time_s", "workload.events", "kernel.shared_with_host",
             "workload.syscalls", "workload.bytes")

SETTINGS = {
    "alpha": Param(float, 0.01, "significance level of the Mann-Whitney U test"),
    "min_change": Param(float, 0.05, "relative change below which nothing is a regression"),
}
METRIC_SETTINGS = {
    **SETTINGS,
    "max": Param(float, None, "absolute upper bound on the new median"),
    "min": Param(float, None, "absolute lower bound on the new median"),
}


def direction(metric: str) -> int | None:
    """+1 when higher is better, -1 when lower is better, None when not gated."""
    if metric in NOT_GATED:
        return None
    if metric in LOWER_IS_BETTER_WORKLOAD:
        return -1
    if metric.endswith("_per_s") or metric == "workload.iops":
        return +1
    if metric.startswith(LOWER_IS_BETTER) or metric.endswith(("_s", "_bytes")):
        return -1
    return None


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
    problem = Param(float, None, "").check(value)
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
    change: float  # new/base - 1
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str  # regression, improvement, unchanged, not gated, missing
    reason: str


def _values(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[str, list[float]]]:
    rows = frame[~frame["warmup"].eq(True) & frame["value"].notna()]
    # A victim beside an aggressor is another cell than the victim alone
    aggressor = aggressor_column(rows)
    cells = rows["cell"] + aggressor.map(lambda name: f" beside {name}" if name else "")
    return {key: (group["unit"].iloc[0], group["value"].tolist())
            for key, group in rows.groupby([cells, rows["metric"]], sort=False)}


def compare_frames(base: pd.DataFrame, new: pd.DataFrame, thresholds: Thresholds) -> list[Change]:
    base_values, new_values = _values(base), _values(new)
    changes = []
    for key in dict.fromkeys([*base_values, *new_values]):
        cell, metric = key
        if key not in base_values or key not in new_values:
            changes.append(_missing(cell, metric, base_values.get(key), new_values.get(key)))
            continue
        unit, a = base_values[key]
        _, b = new_values[key]
        changes.append(compare_samples(cell, metric, unit, a, b, thresholds))
    return changes


def _missing(cell: str, metric: str, base, new) -> Change:
    """A cell that started in the base run but not in the new one has broken: a regression.
    Other gaps (a new cell, a memory view that could not be sampled) are reported only."""
    unit = (base or new)[0]
    side = "new" if base else "base"
    broke = metric == "startup.ready_s" and side == "new"
    nan = math.nan
    return Change(cell, metric, unit, len(base[1]) if base else 0, 0, nan, nan, nan, nan, nan, nan,
                  "regression" if broke else "missing",
                  "the cell failed in the new run" if broke else f"no values in the {side} run")


def compare_samples(cell: str, metric: str, unit: str, base: list[float], new: list[float],
                    thresholds: Thresholds) -> Change:
    ratio = stats.ratio_ci(new, base)
    change, low, high = ratio.ratio - 1, ratio.ci_low - 1, ratio.ci_high - 1
    p = _p_value(base, new)
    base_median, new_median = float(pd.Series(base).median()), float(pd.Series(new).median())
    made = lambda verdict, reason: Change(cell, metric, unit, len(base), len(new), base_median,  # noqa: E731
                                          new_median, change, low, high, p, verdict, reason)
    sign = direction(metric)
    bound_max, bound_min = thresholds.get(metric, "max"), thresholds.get(metric, "min")
    if bound_max is not None and new_median > bound_max:
        return made("regression", f"median {new_median:.4g} above the bound {bound_max:.4g}")
    if bound_min is not None and new_median < bound_min:
        return made("regression", f"median {new_median:.4g} below the bound {bound_min:.4g}")
    if sign is None:
        return made("not gated", "not a performance metric")
    alpha, floor = thresholds.get(metric, "alpha"), thresholds.get(metric, "min_change")
    if math.isnan(change) or math.isnan(p) or p >= alpha:
        return made("unchanged", f"p = {p:.3g} (not below {alpha:g})")
    if abs(change) < floor:
        return made("unchanged", f"significant but {abs(change):.1%} is under the {floor:.0%} floor")
    worse = (change > 0) == (sign < 0)
    return made("regression" if worse else "improvement",
                f"{change:+.1%} with p = {p:.3g} (< {alpha:g}), beyond the {floor:.0%} floor")


def _p_value(base: list[float], new: list[float]) -> float:
    """Two-sided Mann-Whitney U: no assumption of normality, exact for small samples."""
    if len(base) < 2 or len(new) < 2:
        return math.nan
    if len(set(base) | set(new)) == 1:
        return 1.0
    return float(mannwhitneyu(base, new, alternative="two-sided").pvalue)


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
    return None


def to_markdown(changes: list[Change], base: str, new: str, notes: list[str]) -> str:
    regressions = [c for c in changes if c.verdict == "regression"]
    improvements = [c for c in changes if c.verdict == "improvement"]
    head = (f"**cvbench compare**: {len(regressions)} regression(s), {len(improvements)} "
            f"improvement(s) over {len(changes)} cell metrics\n\nbase `{base}` -> new `{new}`\n")
    lines = [head, *[f"> {note}" for note in notes], "",
             "| cell | metric | base | new | change [95% CI] | p | verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    order = {"regression": 0, "improvement": 1, "missing": 2, "unchanged": 3, "not gated": 4}
    for c in sorted(changes, key=lambda c: order[c.verdict]):
        mark = {"regression": "**regression**", "improvement": "improvement"}.get(c.verdict, c.verdict)
        lines.append(f"| {c.cell} | {c.metric} | {_num(c.base_median)} | {_num(c.new_median)} | "
                     f"{_pct(c.change)} [{_pct(c.ci_low)}, {_pct(c.ci_high)}] | {_num(c.p_value)} | {mark} |")
    return "\n".join(lines) + "\n"


def to_json(changes: list[Change]) -> str:
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    return json.dumps([{k: clean(v) for k, v in asdict(c).items()} for c in changes], indent=2)


def _num(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4g}"


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.1%}"
