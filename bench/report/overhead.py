"""The workload part of the report: the overhead matrix and a section per workload.

Each workload's main metric comes from its records (tag main_metric, set by the
runner from the catalogue), so the report needs no copy of the catalogue.
A ratio is always runtime over native; whether that is a slowdown depends on the
metric's direction (more events per second is better, more ns per call is worse).
"""

from __future__ import annotations

import math

import pandas as pd

from bench import stats, units
from bench.metrics import HIGHER, LOWER, lookup
from bench.results import SKIPPED
from bench.report.data import in_order, interval, measured, runtime_label

# Slowdown (>1 worse than native) thresholds and the colour class each band gets
BANDS = ((0.9, "faster"), (1.1, "par"), (2.0, "mild"), (10.0, "large"), (math.inf, "huge"))


def main_metrics(frame: pd.DataFrame) -> dict[str, str]:
    """workload -> its main metric, in run order, for workloads that have one."""
    if frame.empty or "tag.main_metric" not in frame:
        return {}
    tagged = frame[frame["tag.main_metric"].notna()]
    return {w: tagged.loc[tagged["workload"] == w, "tag.main_metric"].iloc[0]
            for w in in_order(tagged["workload"])}


def skipped(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or "error" not in frame:
        return frame.iloc[0:0]
    return frame[frame["error"].astype(str).str.startswith(SKIPPED)]


def slowdown(metric: str, ratio: float) -> float:
    """How many times worse than native: ratio for lower-is-better metrics, 1/ratio else."""
    if math.isnan(ratio) or ratio <= 0:
        return math.nan
    return ratio if lookup(metric).better == LOWER else 1 / ratio


def band(value: float) -> str:
    if math.isnan(value):
        return "none"
    return next(name for limit, name in BANDS if value <= limit)


def _values(rows: pd.DataFrame, workload: str, runtime: str, metric: str):
    mine = rows[(rows["workload"] == workload) & (rows["runtime"] == runtime)
                & (rows["metric"] == metric)]
    return mine["value"].to_numpy(float)


def overhead_matrix(frame: pd.DataFrame, baseline: str | None, emulated: set[str]) -> dict:
    """Rows: workloads; columns: runtimes other than native; each cell the main metric's
    ratio to native with its 95% CI, a colour band by slowdown, or why it is missing."""
    metrics = main_metrics(frame)
    if not metrics or baseline is None:
        return {}
    rows = measured(frame)
    skips = skipped(frame)
    runtimes = [r for r in in_order(frame["runtime"]) if r != baseline]
    table = []
    for workload, metric in metrics.items():
        base = _values(rows, workload, baseline, metric)
        cells = []
        for runtime in runtimes:
            why = skips.loc[(skips["workload"] == workload) & (skips["runtime"] == runtime), "error"]
            values = _values(rows, workload, runtime, metric)
            if not why.empty:
                cells.append({"text": "skipped", "band": "skipped", "title": why.iloc[0]})
            elif len(values) == 0 or len(base) == 0:
                cells.append({"text": "—", "band": "none", "title": "no values"})
            else:
                ratio = stats.ratio_ci(values, base)
                factor = slowdown(metric, ratio.ratio)
                title = (f"{factor:.2f} times worse than native" if factor >= 1
                         else f"{1 / factor:.2f} times better than native")
                caveats = _caveats(rows[(rows["workload"] == workload)
                                        & (rows["runtime"] == runtime)])
                # a number that did not take the path its label says is marked in the cell
                cells.append({"text": f"{ratio.ratio:.2f}×" + (" *" if caveats else ""),
                              "band": band(factor), "ci": interval(ratio.ci_low, ratio.ci_high, ratio.n),
                              "title": "; ".join([title, *caveats])})
        table.append({"workload": workload, "metric": metric,
                      "better": "higher" if lookup(metric).better == HIGHER else "lower", "cells": cells})
    return {"columns": [{"name": r, "label": runtime_label(r, emulated), "emulated": r in emulated}
                        for r in runtimes],
            "rows": table}


def workload_sections(frame: pd.DataFrame, baseline: str | None, emulated: set[str]) -> list[dict]:
    """Per workload with a main metric: each of its metrics per runtime, median, CI, ratio."""
    rows = measured(frame)
    skips = skipped(frame)
    sections = []
    for workload, main in main_metrics(frame).items():
        mine = rows[rows["workload"] == workload]
        # the workload's other measurements; its echoes of the scenario (run time, counts)
        # have no better direction
        metrics = [main] + [m for m in in_order(mine["metric"]) if m.startswith("workload.")
                            and m != main and lookup(m).better is not None]
        table = []
        for metric in metrics:
            unit, scale = units.table_unit(_unit(mine, metric))
            for runtime in in_order(frame["runtime"]):
                values = _values(rows, workload, runtime, metric)
                if len(values) == 0:
                    continue
                summary = stats.summary(values / scale)
                ratio = "baseline" if runtime == baseline else "—"
                if baseline is not None and runtime != baseline:
                    r = stats.ratio_ci(values, _values(rows, workload, baseline, metric))
                    if not math.isnan(r.ratio):
                        ratio = f"{r.ratio:.2f}× {interval(r.ci_low, r.ci_high, r.n)}"
                table.append({"metric": metric, "runtime": runtime_label(runtime, emulated),
                              "unit": unit, "median": units.number(summary.median),
                              "ci": interval(summary.ci_low, summary.ci_high, summary.n,
                                             units.number),
                              "n": summary.n, "ratio": ratio})
        notes = [f"{runtime_label(r, emulated)}: {e}" for r, e in
                 skips.loc[skips["workload"] == workload, ["runtime", "error"]]
                 .drop_duplicates().itertuples(index=False)]
        sections.append({"workload": workload, "main": main, "rows": table, "skipped": notes,
                         "tags": _tag_notes(frame, workload)})
    return sections


# Tags that say how a runtime ran a workload; the disk ones only where it used a disk.
NOTE_TAGS = ("tag.start", "tag.net_path", "tag.gvisor_platform", "tag.disk_backing",
             "tag.disk_cache", "tag.direct_io", "tag.direct_io_fallback", "tag.direct_io_caveat")
DISK_TAGS = ("tag.disk_cache", "tag.direct_io", "tag.direct_io_fallback", "tag.direct_io_caveat")
# QEMU cache modes that open the host file with O_DIRECT: the host page cache is bypassed
UNCACHED = ("none", "directsync")


def disk_caveat(tags: dict) -> str | None:
    """What a disk number labelled direct I/O really measured, derived from its tags
    (tag names without the 'tag.' prefix): None when it went where the label says."""
    if tags.get("direct_io") is not True:
        return None
    cache, platform = tags.get("disk_cache"), tags.get("gvisor_platform")
    if tags.get("disk_backing") and isinstance(cache, str) and cache not in UNCACHED:
        return (f"disk_cache = {cache}: the guest's direct I/O goes through the host's page "
                "cache, not to the disk")
    if isinstance(platform, str):
        return (f"gVisor (platform {platform}) accepts O_DIRECT, but its sentry may serve "
                "file data from its own cache")
    return None


def _caveats(rows: pd.DataFrame) -> list[str]:
    tags = [c for c in rows.columns if c.startswith("tag.")]
    found = {disk_caveat({c.removeprefix("tag."): v for c, v in row.items() if _present(v)})
             for row in rows[tags].drop_duplicates().to_dict("records")}
    return sorted(c for c in found if c)


def _present(value) -> bool:
    return not (isinstance(value, float) and math.isnan(value)) and value is not None


def _tag_notes(frame: pd.DataFrame, workload: str) -> list[str]:
    """How each runtime ran it, where that varies: network path, gVisor platform, disk
    backing, cache mode, direct I/O; and what a direct I/O number really measured."""
    notes = []
    mine = frame[(frame["workload"] == workload) & frame["error"].isna()]
    for runtime in in_order(mine["runtime"]):
        rows = mine[mine["runtime"] == runtime]
        on_disk = "tag.disk_backing" in rows and rows["tag.disk_backing"].notna().any()
        for tag in NOTE_TAGS:
            if tag not in rows or (tag in DISK_TAGS and not on_disk):
                continue
            values = in_order(rows[tag])
            if tag == "tag.start" and values == ["warm"]:
                notes.append(f"{runtime}: restored from a snapshot of the run, not booted "
                             "(warm_workloads): no startup of its own")
            elif values:
                notes.append(f"{runtime}: {tag.removeprefix('tag.')} = "
                             + ", ".join(str(v) for v in values))
        notes += [f"{runtime}: {caveat}" for caveat in _caveats(rows)]
    return notes


def _unit(rows: pd.DataFrame, metric: str) -> str:
    recorded = rows.loc[rows["metric"] == metric, "unit"]
    return recorded.iloc[0] if not recorded.empty else ""
