"""Report sections of startup under pressure: bursts of launches, density until something
gives, warm starts from snapshots. A finding and a figure each, computed from the records;
nothing here measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.report.data import complete, in_order, metric_values, runtime_label
from bench.report.figures import DPI, blank, formatter, log_axis, save, tidy, yerr_of
from bench.results import SKIPPED
from bench.units import MiB, quantity

LIMIT = "density-limit"  # the workload column of density's grow records (its cell)
SERIAL_BELOW = 1.5  # effective parallelism under this at K >= 4: the launches queue


# -- burst --------------------------------------------------------------------------------------

BURST_CAPTION = (
    "Left: READY latency of each of K instances launched at the same moment, a thread each "
    "through the runtime's own API: p50 (solid) and p99 (dashed) over every instance of every "
    "repetition, one line per runtime. Right: launch of the burst to its last READY, median "
    "over repetitions with 95% CI where there are several; dotted, K times one launch alone "
    "(K = 1): a runtime whose launches queue follows it.")


def burst_rows(frame: pd.DataFrame, runtime: str, k: int, metric: str) -> np.ndarray:
    rows = metric_values(frame, metric)
    return rows.loc[(rows["runtime"] == runtime) & (rows["tag.k"] == k), "value"].to_numpy(float)


def parallelism(frame: pd.DataFrame, runtime: str, k: int) -> float | None:
    """K times one launch alone (median READY at K = 1), over the time until all K were
    READY: 1 when launches queue one behind the other, K when they cost nothing together."""
    one, together = burst_rows(frame, runtime, 1, "burst.ready_s"), burst_rows(frame, runtime, k,
                                                                               "burst.all_ready_s")
    if not len(one) or not len(together):
        return None
    return k * float(np.median(one)) / float(np.median(together))


def burst_finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    ready = metric_values(frame, "burst.ready_s")
    if ready.empty:
        return None
    parts, queued = [], []
    for r in in_order(ready["runtime"]):
        k = int(ready.loc[ready["runtime"] == r, "tag.k"].max())
        latency = burst_rows(frame, r, k, "burst.ready_s")
        text = (f"{runtime_label(r, emulated)} K={k}: READY p50 "
                f"{quantity(np.percentile(latency, 50), 's')}, p99 "
                f"{quantity(np.percentile(latency, 99), 's')}, all in "
                f"{quantity(np.median(burst_rows(frame, r, k, 'burst.all_ready_s')), 's')}")
        cpu = burst_rows(frame, r, k, "burst.manager_cpu_per_launch_s")
        if len(cpu):
            text += f", manager CPU {quantity(np.median(cpu), 's')} per launch"
        found = parallelism(frame, r, k)
        if found is not None:
            text += f", {found:.1f} launches' worth at once"
            if k >= 4 and found < SERIAL_BELOW:
                queued.append(runtime_label(r, emulated))
        parts.append(text)
    text = "; ".join(parts)
    if queued:
        text += (f". Launches barely overlap in {', '.join(queued)} (under {SERIAL_BELOW:g} "
                 "launches' worth at once): a burst there costs nearly what its launches one "
                 "after the other do. Launches that need the CPU cannot overlap beyond the "
                 "host's CPU count")
    return text + "." + _stopped(frame, "burst.all_ready_s")


def burst_figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    ready = metric_values(frame, "burst.ready_s")
    fig = blank(figsize=(10, 4.5), dpi=DPI)
    left, right = fig.subplots(1, 2)
    for r in in_order(ready["runtime"]):
        mine = ready[ready["runtime"] == r]
        ks = sorted(set(mine["tag.k"].astype(int)))
        p50 = [np.percentile(burst_rows(frame, r, k, "burst.ready_s"), 50) for k in ks]
        p99 = [np.percentile(burst_rows(frame, r, k, "burst.ready_s"), 99) for k in ks]
        (line,) = left.plot(ks, p50, "-o", ms=4, label=runtime_label(r, emulated))
        left.plot(ks, p99, "--", color=line.get_color())
        summaries = [stats.summary(burst_rows(frame, r, k, "burst.all_ready_s")) for k in ks]
        right.errorbar(ks, [s.median for s in summaries], yerr=yerr_of(summaries), fmt="-o", ms=4,
                       capsize=3, color=line.get_color(), label=runtime_label(r, emulated))
        one = burst_rows(frame, r, 1, "burst.ready_s")
        if len(one):  # the launches one after the other
            right.plot(ks, [k * np.median(one) for k in ks], ":", color=line.get_color(), lw=1)
    sizes = sorted(set(ready["tag.k"].astype(int)))
    for ax, title in ((left, "READY latency: p50 solid, p99 dashed"),
                      (right, "launch to the last READY")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(k) for k in sizes])
        log_axis(ax)
        ax.set_xlabel("K instances launched at once")
        ax.set_ylabel("s (log)")
        ax.set_title(title)
        tidy(ax)
    return save(fig, path)


# -- density until something gives ---------------------------------------------------------------

LIMIT_CAPTION = (
    "Idle instances added one at a time, all kept up, until a stop rule fired. Left: host "
    "memory per instance at each N: PSS of all their host processes / N (solid), host "
    "MemAvailable drop / N (dashed; caches dropped once, before the first) and cgroup working "
    "set / N (dotted). Right: READY of the N-th launch, with the latency rule's limit "
    "(horizontal, 3x one instance alone by default: two launches in a row above it stop the run).")

LIMIT_VIEWS = (("density.pss_per_instance_bytes", "-"),
               ("density.mem_available_drop_per_instance_bytes", "--"),
               ("density.cgroup_per_instance_bytes", ":"))


def limit_records(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["workload"] == LIMIT] if "workload" in frame else frame.iloc[0:0]


def limit_finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    rows = limit_records(frame)
    reached = metric_values(rows, "density.reached_n")
    if reached.empty:
        return None
    pss = metric_values(rows, "density.pss_per_instance_bytes")
    parts = []
    for r in in_order(reached["runtime"]):
        for _, stop in reached[reached["runtime"] == r].iterrows():
            n = int(stop["value"])
            mine = pss[(pss["runtime"] == r) & (pss["rep"] == stop["rep"]) & (pss["tag.n"] == n)]
            at = f", {quantity(mine['value'].iloc[0], 'bytes')} PSS each" if len(mine) else ""
            parts.append(f"{runtime_label(r, emulated)} reached N={n}{at}, stopped by "
                         f"{stop.get('tag.stop_rule', '?')} ({stop.get('tag.stop_reason', '')})")
    return "; ".join(parts) + "."


def limit_figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    rows = limit_records(frame)
    fig = blank(figsize=(10, 4.5), dpi=DPI)
    left, right = fig.subplots(1, 2)
    colours: dict[str, str] = {}
    for metric, style in LIMIT_VIEWS:
        values = metric_values(rows, metric)
        for r in in_order(values["runtime"]):
            mine = values[(values["runtime"] == r) & (values["rep"] == 0)].sort_values("tag.n")
            (line,) = left.plot(mine["tag.n"], mine["value"] / MiB, style, color=colours.get(r),
                                label=runtime_label(r, emulated) if style == "-" else None)
            colours.setdefault(r, line.get_color())
    ready = metric_values(rows, "density.kth_ready_s")
    for r in in_order(ready["runtime"]):
        mine = ready[(ready["runtime"] == r) & (ready["rep"] == 0)].sort_values("tag.n")
        (line,) = right.plot(mine["tag.n"], mine["value"], "-o", ms=3, color=colours.get(r),
                             label=runtime_label(r, emulated))
        target = mine["tag.latency_target_s"].dropna() if "tag.latency_target_s" in mine else []
        if len(target):
            right.axhline(target.iloc[0], color=line.get_color(), ls="--", lw=0.8)
    left.set_yscale("symlog", linthresh=1)  # a MemAvailable drop can be 0 or below
    left.yaxis.set_major_formatter(formatter(lambda v, _: f"{v:g}"))
    left.set_ylabel("MiB per instance")
    left.set_title("memory per instance: PSS, MemAvailable drop, cgroup")
    log_axis(right)
    right.set_ylabel("s (log)")
    right.set_title("READY of the N-th (dashed: the latency rule)")
    for ax in (left, right):
        ax.set_xlabel("N idle instances up")
        tidy(ax)
    return save(fig, path)


# -- warm start ------------------------------------------------------------------------------------

WARM_CAPTION = (
    "Left: a cold start (launch to READY) against a restore from a snapshot (restore call to "
    "READY) of the same runtime, medians with 95% CI where there are several, each point an "
    "instance; logarithmic. Right: PSS of the instance's host processes right after READY. "
    "The restored agent reads its workload only after the restore.")

STARTS = (("startup.ready_s", "cold", "#4c72b0"), ("startup.restore_s", "warm", "#dd8452"))
CELL = "warm"  # the warm mode's cell, warm@RUNTIME (bench/modes/warm.py)


def _warm(frame: pd.DataFrame, runtime: str, metric: str, start: str | None = None) -> np.ndarray:
    rows = metric_values(frame, metric)
    rows = rows[(rows["runtime"] == runtime) & (rows["workload"] == CELL)]
    if start is not None and "tag.start" in rows:
        rows = rows[rows["tag.start"] == start]
    return rows["value"].to_numpy(float)


def _warm_mode(frame: pd.DataFrame) -> pd.DataFrame:
    """The warm mode's records: cells of a run with warm_workloads restore too, but they
    measure their workload, not cold against warm."""
    return frame[frame["workload"] == CELL] if not frame.empty else frame


def warm_finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    frame = _warm_mode(frame)
    restored = metric_values(frame, "startup.restore_s")
    skipped = _skipped(frame, "startup.restore_s")
    if restored.empty and not skipped:
        return None
    parts = []
    for r in in_order(restored["runtime"]):
        cold, warm = _warm(frame, r, "startup.ready_s"), _warm(frame, r, "startup.restore_s")
        text = f"{runtime_label(r, emulated)}: restore {quantity(np.median(warm), 's')}"
        if len(cold):
            text += f" against {quantity(np.median(cold), 's')} cold ({_speedup(cold, warm)})"
        size = _warm(frame, r, "warm.snapshot_bytes")
        if len(size):
            text += f", snapshot {quantity(size[0], 'bytes')}"
        pss_cold = _warm(frame, r, "warm.pss_after_ready_bytes", "cold")
        pss_warm = _warm(frame, r, "warm.pss_after_ready_bytes", "warm")
        if len(pss_cold) and len(pss_warm):
            text += (f", PSS after READY {quantity(np.median(pss_warm), 'bytes')} restored vs "
                     f"{quantity(np.median(pss_cold), 'bytes')} cold")
        parts.append(text)
    text = "; ".join(parts)
    if skipped:
        text += ("; " if text else "") + "not restored: " + "; ".join(skipped)
    return text + "."


def warm_figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    frame = _warm_mode(frame)
    runtimes = in_order(metric_values(frame, "startup.restore_s")["runtime"])
    if not runtimes:
        return None
    fig = blank(figsize=(10, 4.5), dpi=DPI)
    left, right = fig.subplots(1, 2)
    for ax, pick in ((left, lambda r, metric, start: _warm(frame, r, metric)),
                     (right, lambda r, metric, start: _warm(frame, r, "warm.pss_after_ready_bytes",
                                                            start) / MiB)):
        for offset, (metric, start, colour) in zip((-0.2, 0.2), STARTS):
            for i, r in enumerate(runtimes):
                values = pick(r, metric, start)
                if not len(values):
                    continue
                s = stats.summary(values)
                ax.bar(i + offset, s.median, width=0.4, color=colour,
                       label=start if i == 0 else None, yerr=yerr_of([s]))
                ax.plot(np.full(len(values), i + offset), values, "k.", ms=4)
        ax.set_xticks(range(len(runtimes)), [runtime_label(r, emulated) for r in runtimes],
                      rotation=15, ha="right")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    log_axis(left)
    left.set_ylabel("s to READY (log)")
    left.set_title("cold start vs restore")
    right.set_ylabel("MiB")
    right.set_title("PSS right after READY")
    return save(fig, path)


def _speedup(cold: np.ndarray, warm: np.ndarray) -> str:
    ratio = float(np.median(cold) / np.median(warm))
    if abs(np.log(ratio)) < np.log(1.1):  # within 10%: no gain worth a snapshot
        return "about the same"
    return f"{ratio:.1f}x faster" if ratio > 1 else f"{1 / ratio:.1f}x slower"


# -- helpers -------------------------------------------------------------------------------------


def _skipped(frame: pd.DataFrame, metric: str) -> list[str]:
    """'runtime: why' for each runtime whose metric was skipped or failed, in run order."""
    rows = complete(frame)
    rows = rows[(rows["metric"] == metric) & rows["value"].isna() & rows["error"].notna()]
    return [f"{r}: {str(why).removeprefix(SKIPPED).rstrip('.')}"
            for r, why in dict(zip(rows["runtime"], rows["error"])).items()]


def _stopped(frame: pd.DataFrame, metric: str) -> str:
    found = _skipped(frame, metric)
    return (" Stopped before the largest K: " + "; ".join(found) + ".") if found else ""

