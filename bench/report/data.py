"""Selections from a run's records that both the figures and the page need."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from bench.runtimes import KINDS, is_bare_process, traits_of
from bench.stats import MIN_N_FOR_CI
from bench.workloads import LONG_LIVED, RESTING_FOOTPRINT, with_role


def phases() -> dict[str, str]:
    """Each kind's startup phases, in the order they happen (DESIGN.md §5.3): what a phase
    covers, every kind's own label once -> its metric."""
    return {label: metric for kind in KINDS.values() for metric, label in kind.traits.phases}


def sequential_phases(kind: str) -> tuple[tuple[str, str], ...]:
    """(metric, label) of the phases a kind of runtime goes through one after another."""
    traits = traits_of(kind)
    return traits.phases if traits else ()


# Where an instance's memory settles, best first: at rest, else busy for seconds.
MEMORY_ROLES = (RESTING_FOOTPRINT, LONG_LIVED)


COLUMNS = ("run", "scenario", "cell", "workload", "runtime", "kind", "rep", "warmup", "metric",
           "value", "unit", "t", "image", "error")


def complete(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every record column, even when records.jsonl is empty."""
    missing = [c for c in COLUMNS if c not in frame]
    return frame.assign(**{c: None for c in missing}) if missing else frame


def measured(frame: pd.DataFrame) -> pd.DataFrame:
    """Values that count: no warm-ups, no failed measurements."""
    if frame.empty or "value" not in frame:
        return frame.iloc[0:0]
    return frame[~frame["warmup"].eq(True) & frame["value"].notna()]


def metric_values(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = measured(frame)
    return rows[rows["metric"] == metric] if not rows.empty else rows


def in_order(column: pd.Series) -> list:
    """Distinct values in order of first appearance: the order the scenario ran them."""
    if isinstance(column.dtype, pd.StringDtype):  # hashed in C, not value by value in Python
        return list(pd.unique(column.dropna()))
    return list(dict.fromkeys(column.dropna()))


def split(frame: pd.DataFrame, *columns: str) -> dict:
    """frame's rows per distinct value of columns (a tuple of values for several), each part in
    frame's order: one pass over the frame, not a comparison over all of it per value."""
    if frame.empty:
        return {}
    return dict(list(frame.groupby(list(columns) if len(columns) > 1 else columns[0], sort=False)))


def map_distinct(column: pd.Series, function: Callable) -> pd.Series:
    """column.map(function), calling function once per distinct value: a run has a handful of
    kinds and runtimes, and up to 100k records."""
    codes, distinct = pd.factorize(column, use_na_sentinel=False)
    mapped = pd.Series(distinct).map(function).take(codes)
    mapped.index, mapped.name = column.index, column.name
    return mapped


def emulated_runtimes(frame: pd.DataFrame, environment: dict | None = None) -> set[str]:
    """Runtimes whose VM ran under software emulation: tagged so, or TCG per environment.json."""
    found = set()
    if "tag.emulated" in frame:
        flagged = frame[frame["tag.emulated"].eq(True)]
        found |= set(flagged["runtime"])
    for name, settings in ((environment or {}).get("runtimes") or {}).items():
        if isinstance(settings, dict) and settings.get("accel_used") == "tcg":
            found.add(name)
    return found


def runtime_label(runtime: str, emulated: set[str]) -> str:
    return f"{runtime} (emulated)" if runtime in emulated else runtime


def baseline_runtime(frame: pd.DataFrame) -> str | None:
    """The first runtime that is a bare process: the reference every ratio is taken against."""
    if frame.empty or "kind" not in frame:
        return None
    native = frame[map_distinct(frame["kind"], is_bare_process)]
    return native["runtime"].iloc[0] if not native.empty else None


def memory_workload(frame: pd.DataFrame) -> str | None:
    """The workload whose instances live longest, among those with memory values."""
    rows = measured(frame)
    if rows.empty:
        return None
    with_memory = in_order(rows.loc[rows["metric"].isin(["mem.cgroup_bytes", "mem.pss_bytes"]),
                                    "workload"])
    for role in MEMORY_ROLES:
        if found := with_role(with_memory, role):
            return found[0]
    exits = rows[(rows["metric"] == "startup.exit_s") & rows["workload"].isin(with_memory)]
    if not exits.empty:
        return exits.groupby("workload")["value"].median().idxmax()
    return with_memory[0] if with_memory else None


def interval(low: float, high: float, n: int,
             number: Callable[[float], str] = lambda v: f"{v:.2f}") -> str:
    """A 95% CI as "[low, high]"; "n < 3" where too few values make one meaningless."""
    if n < MIN_N_FOR_CI:
        return f"n < {MIN_N_FOR_CI}"
    if math.isnan(low) or math.isnan(high):
        return "—"
    return f"[{number(low)}, {number(high)}]"
