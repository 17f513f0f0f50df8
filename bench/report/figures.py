"""The report's figures: one function per figure, DataFrame in, PNG out.

Each function takes the run's frame (as results.load_frame gives it, warm-ups
included: they are dropped here) and a target path, and returns the path, or
None when the run holds no data for that figure. Figures are drawn on the Agg
canvas directly, without pyplot, so no global state or display is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench import stats, units
from bench.report import waterfall
from bench.metrics import lookup
from bench.units import MiB
from bench.report.data import (
    baseline_runtime,
    emulated_runtimes,
    in_order,
    measured,
    memory_workload,
    metric_values,
    phases,
    runtime_label,
    sequential_phases,
)
from bench.workloads import RESTING_FOOTPRINT, STARTUP_PROBE, with_role

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIZE = (8, 4.5)  # inches
DPI = 110
LOG_SPREAD = 10  # a log axis once the slowest runtime is this many times the fastest
# Startup does not depend on the workload: the ones that only start (and rest) show it best
STARTUP_ROLES = (STARTUP_PROBE, RESTING_FOOTPRINT)
MAX_PANELS = 3
REST_COLOUR = "#cccccc"
REST_LABEL = "rest until READY on host"


def startup_figure(frame: pd.DataFrame, path: Path) -> Path | None:
    """startup.ready_s per runtime: box plot, every instance a point, a panel per workload."""
    rows = metric_values(frame, "startup.ready_s")
    if rows.empty:
        return None
    emulated = emulated_runtimes(frame)
    # Startup does not depend on the workload: the ones that only start (and idle) say it
    # best, and a panel per workload of a long scenario would not fit
    workloads = in_order(rows["workload"])
    workloads = with_role(workloads, *STARTUP_ROLES) or workloads[:MAX_PANELS]
    fig, axes = new_figure(len(workloads))
    for ax, workload in zip(axes, workloads):
        runtimes, groups = _groups(rows[rows["workload"] == workload], in_order(frame["runtime"]))
        _box_with_points(ax, groups)
        _runtime_ticks(ax, runtimes, emulated)
        medians = [np.median(g) for g in groups]
        if min(medians) > 0 and max(medians) / min(medians) > LOG_SPREAD:
            log_axis(ax)
        ax.set_title(f"workload {workload}")
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0].set_ylabel("launch call to READY on the host (s)")
    fig.suptitle("Startup time per runtime (each point one instance)")
    return save(fig, path)


def phases_figure(frame: pd.DataFrame, path: Path) -> Path | None:
    """Median startup phases per runtime, stacked in the order they happen, up to READY.

    One row per runtime, each on its own time scale: startups differ by orders of
    magnitude, and on a shared axis the fast runtimes' phases would be invisible.
    """
    rows, labels = measured(frame), phases()
    if "tag.start" in rows:  # a restore's phases are not a boot's (warm_workloads)
        rows = rows[rows["tag.start"] != "warm"]
    if rows.empty or not rows["metric"].isin(labels.values()).any():
        return None
    emulated = emulated_runtimes(frame)
    runtimes = [r for r in in_order(frame["runtime"])
                if ((rows["runtime"] == r) & rows["metric"].isin(labels.values())).any()]
    height = max(SIZE[1], 1.5 + 0.8 * len(runtimes))
    fig = blank(figsize=(SIZE[0], height), dpi=DPI, layout="constrained")
    _on_agg(fig)
    axes = fig.subplots(len(runtimes), 1, squeeze=False)[:, 0]
    colours = dict(zip(labels, palette(len(labels))))
    legend: dict[str, object] = {}
    for ax, runtime in zip(axes, runtimes):
        mine = rows[rows["runtime"] == runtime]
        medians = mine.groupby("metric")["value"].median()
        left = 0.0
        for label, width in phase_segments(medians.to_dict(), mine["kind"].iloc[0]):
            colour = REST_COLOUR if label == REST_LABEL else colours[label]
            legend[label] = ax.barh(0, width, left=left, color=colour, height=0.6)
            left += width
        ready = medians.get("startup.ready_s")
        total = ready if ready is not None else left
        ax.text(left, 0, f"  READY {_seconds(total)}" if ready is not None else "", va="center",
                fontsize=8)
        ax.set_yticks([0], [runtime_label(runtime, emulated)])
        ax.set_xlim(0, max(left, total) * 1.25)
        ax.xaxis.set_major_formatter(formatter(lambda v, _: _seconds(v)))
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time since the launch call (each row on its own scale; medians, "
                        "all workloads)")
    names = [n for n in [*labels, REST_LABEL] if n in legend]  # in the order they happen
    fig.legend([legend[n] for n in names], names, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("Startup phases per runtime")
    return save(fig, path)


def waterfall_figure(frame: pd.DataFrame, path: Path, environment: dict | None = None) -> Path | None:
    """Each runtime's launch-to-READY split into the layers of its stack (report/waterfall):
    a row per runtime, each on its own time scale, as in the phases figure; beside a managed
    runtime, what the manager costs against its bare twin."""
    found = waterfall.waterfalls(frame, environment)
    if not found:
        return None
    costs = {c.managed: c for c in waterfall.manager_costs(found, environment)}
    emulated = emulated_runtimes(frame)
    height = max(SIZE[1], 1.5 + 0.8 * len(found))
    fig = blank(figsize=(SIZE[0], height), dpi=DPI, layout="constrained")
    _on_agg(fig)
    axes = fig.subplots(len(found), 1, squeeze=False)[:, 0]
    colours = dict(zip(waterfall.LAYERS, palette(len(waterfall.LAYERS))))
    legend: dict[str, object] = {}
    for ax, row in zip(axes, found):
        left = 0.0
        for layer in waterfall.LAYERS:
            width = row.layers[layer]
            if width is None:
                continue
            # clocks read apart can leave a few ms below zero: drawn as nothing
            legend[layer] = ax.barh(0, max(width, 0.0), left=left, color=colours[layer], height=0.6)
            left += max(width, 0.0)
        cost = costs.get(row.runtime)
        extra = (f"\n  manager +{_seconds(cost.difference.difference)} vs {cost.bare}"
                 if cost else "")
        ax.text(left, 0, f"  READY {_seconds(row.ready)}{extra}", va="center", fontsize=8)
        ax.set_yticks([0], [f"{runtime_label(row.runtime, emulated)}\n"
                            f"{row.manager or 'no manager'}"], fontsize=8)
        ax.set_xlim(0, max(left, row.ready) * 1.6)
        ax.xaxis.set_major_locator(_max_n_locator(nbins=5))
        ax.xaxis.set_major_formatter(formatter(lambda v, _: _seconds(v)))
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time since the launch call (each row on its own scale; medians of the "
                        "startup workloads)")
    names = [n for n in waterfall.LAYERS if n in legend]
    fig.legend([legend[n] for n in names], names, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle("Startup waterfall: manager, runtime or VMM, guest kernel, init")
    return save(fig, path)


def phase_segments(medians: dict, kind: str) -> list[tuple[str, float]]:
    """(label, seconds) stacked from the launch call: the phases of this kind of runtime
    that follow one another (overlapping ones would run the bar past READY), then the rest
    until READY."""
    segments = [(label, medians[m]) for m, label in sequential_phases(kind) if m in medians]
    ready = medians.get("startup.ready_s")
    covered = sum(width for _, width in segments)
    if ready is not None and ready > covered:
        # What no phase covers: the agent's own start, and the READY line's trip to the host
        segments.append((REST_LABEL, ready - covered))
    return segments


MEMORY_VIEWS = ("mem.cgroup_bytes", "mem.pss_bytes")


def memory_figure(frame: pd.DataFrame, path: Path) -> Path | None:
    """Both memory views per runtime, side by side, for the longest-running workload."""
    workload = memory_workload(frame)
    if workload is None:
        return None
    rows = measured(frame)
    rows = rows[rows["workload"] == workload]
    emulated = emulated_runtimes(frame)
    fig, axes = new_figure(len(MEMORY_VIEWS), sharey=True)
    for ax, metric in zip(axes, MEMORY_VIEWS):
        runtimes, groups = _groups(rows[rows["metric"] == metric], in_order(frame["runtime"]))
        if groups:
            _bars_with_ci(ax, [g / MiB for g in groups])
            _runtime_ticks(ax, runtimes, emulated)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", transform=ax.transAxes)
        ax.set_title(lookup(metric).label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("MiB per instance (median after READY)")
    fig.suptitle(f"Memory per instance, workload {workload}: cgroup working set vs PSS")
    return save(fig, path)


def cpu_figure(frame: pd.DataFrame, path: Path) -> Path | None:
    """workload.events_per_s per runtime with 95% CIs, and its ratio to native."""
    rows = metric_values(frame, "workload.events_per_s")
    if rows.empty:
        return None
    emulated = emulated_runtimes(frame)
    baseline = baseline_runtime(frame)
    workloads = in_order(rows["workload"])
    cells = [(w, r) for w in workloads for r in in_order(frame["runtime"])
             if ((rows["workload"] == w) & (rows["runtime"] == r)).any()]
    values = [_values(rows, w, r) for w, r in cells]
    labels = [runtime_label(r, emulated) if len(workloads) == 1
              else f"{w}@{runtime_label(r, emulated)}" for w, r in cells]
    has_baseline = any(r == baseline for _, r in cells)
    fig, axes = new_figure(2 if has_baseline else 1)
    _bars_with_ci(axes[0], values)
    label_ticks(axes[0], labels)
    axes[0].set_ylabel("events per second (1/s)")
    axes[0].set_title("throughput, median and 95% CI")
    if has_baseline:
        # The baseline's own ratio is 1 by definition: the dashed line stands for it
        compared = [i for i, (_, r) in enumerate(cells) if r != baseline]
        ratios = [stats.ratio_ci(values[i], _values(rows, cells[i][0], baseline)) for i in compared]
        _ratio_panel(axes[1], ratios, [labels[i] for i in compared])
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("CPU throughput per runtime (higher is better)")
    return save(fig, path)


# -- drawing helpers ------------------------------------------------------------------


def blank(**kwargs) -> Figure:
    """A new matplotlib Figure. matplotlib is imported when the first figure is made, not
    with this module: the page's tables need none of it (html.py draws in worker processes)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _on_agg(fig: Figure):
    """The figure on an Agg canvas: no pyplot, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(fig)


def formatter(function):
    """A tick formatter calling function(value, position)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(function)


def _max_n_locator(**kwargs):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(**kwargs)


def new_figure(panels: int, sharey: bool = False):
    fig = blank(figsize=SIZE, dpi=DPI, layout="constrained")
    _on_agg(fig)
    axes = fig.subplots(1, panels, sharey=sharey, squeeze=False)[0]
    return fig, list(axes)


def save(fig: Figure, path: Path) -> Path:
    """The figure as a PNG at path (folders made as needed). A figure without a layout
    engine of its own is laid out tight first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = _on_agg(fig)  # drawn by Agg, whoever made the figure
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    # What savefig writes, less its first pass: with a layout engine savefig draws the
    # figure twice (once to lay it out, once to render), while Agg's own draw lays out
    # and renders in one
    canvas.print_png(path)
    return path


def _groups(rows: pd.DataFrame, order: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """Runtimes with values, in run order, and their values."""
    runtimes = [r for r in order if (rows["runtime"] == r).any()]
    return runtimes, [rows.loc[rows["runtime"] == r, "value"].to_numpy(float) for r in runtimes]


def _values(rows: pd.DataFrame, workload: str, runtime: str | None) -> np.ndarray:
    mine = rows[(rows["workload"] == workload) & (rows["runtime"] == runtime)]
    return mine["value"].to_numpy(float)


def _jitter(n: int, seed: int) -> np.ndarray:
    # Seeded, so a rebuilt figure is the same picture
    return np.random.default_rng(seed).uniform(-0.12, 0.12, n)


def _points(ax, position: int, values: np.ndarray) -> None:
    ax.scatter(position + _jitter(len(values), position), values, s=14, color="black",
               alpha=0.6, zorder=3)


def _box_with_points(ax, groups: list[np.ndarray]) -> None:
    ax.boxplot(groups, positions=range(len(groups)), widths=0.5, showfliers=False,
               medianprops={"color": "tab:orange", "linewidth": 2})
    for position, values in enumerate(groups):
        _points(ax, position, values)


def _bars_with_ci(ax, groups: list[np.ndarray]) -> None:
    summaries = [stats.summary(g) for g in groups]
    medians = [s.median for s in summaries]
    ax.bar(range(len(groups)), medians, width=0.6, color="tab:blue", alpha=0.6)
    ax.errorbar(range(len(groups)), medians, yerr=yerr_of(summaries), fmt="none", ecolor="black",
                capsize=5)
    for position, values in enumerate(groups):
        _points(ax, position, values)
    for position, (median, values) in enumerate(zip(medians, groups)):
        # The value written out, above bar, interval and points: a small bar next to a
        # tall one is otherwise unreadable
        top = np.nanmax([median, summaries[position].ci_high, *values])
        ax.annotate(units.number(median), (position, top), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)  # a lone bar keeps its width
    ax.margins(y=0.1)  # room above the tallest for its value (the bars keep 0 at the bottom)


def _ratio_panel(ax, ratios: list[stats.Ratio], labels: list[str]) -> None:
    positions = range(len(ratios))
    ax.errorbar(positions, [r.ratio for r in ratios], yerr=yerr_of(ratios, centre="ratio"),
                fmt="o", color="tab:blue", ecolor="black", capsize=5)
    ax.axhline(1.0, linestyle="--", color="grey", label="native")
    ax.margins(x=0.2)
    label_ticks(ax, labels)
    ax.set_ylabel("ratio to native (1 = as native)")
    ax.set_title("ratio of medians to native, 95% CI")


def tidy(ax) -> None:
    """A light grid, and a legend where something is labelled."""
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def yerr_of(items, centre: str = "median") -> np.ndarray:
    """Distances from the centre to the CI bounds; 0 where there is no interval."""
    below = [getattr(i, centre) - i.ci_low for i in items]
    above = [i.ci_high - getattr(i, centre) for i in items]
    return np.clip(np.nan_to_num(np.array([below, above])), 0, None)


def log_axis(ax) -> None:
    """A log y axis labelled in plain numbers, minor ticks at 2 and 5 of each decade."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(formatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(formatter(
        lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))


def _runtime_ticks(ax, runtimes: list[str], emulated: set[str]) -> None:
    label_ticks(ax, [runtime_label(r, emulated) for r in runtimes])


def label_ticks(ax, labels: list[str]) -> None:
    # A panel is a fraction of the figure's width: slant labels before they collide
    panels = len(ax.figure.axes)
    long = sum(len(label) + 2 for label in labels) * panels > 60
    ax.set_xticks(range(len(labels)), labels, rotation=20 if long else 0,
                  ha="right" if long else "center")


def palette(n: int) -> list:
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(n)]


def _seconds(value: float) -> str:
    return units.quantity(value, "s")


def workload_figure(frame: pd.DataFrame, workload: str, metric: str, path: Path) -> Path | None:
    """One workload's main metric per runtime (median, 95% CI, every instance a point) and
    its ratio to native with the bootstrap CI."""
    rows = metric_values(frame, metric)
    rows = rows[rows["workload"] == workload] if not rows.empty else rows
    if rows.empty:
        return None
    emulated = emulated_runtimes(frame)
    baseline = baseline_runtime(frame)
    runtimes, groups = _groups(rows, in_order(frame["runtime"]))
    has_baseline = baseline in runtimes and len(runtimes) > 1
    fig, axes = new_figure(2 if has_baseline else 1)
    _bars_with_ci(axes[0], groups)
    _runtime_ticks(axes[0], runtimes, emulated)
    medians = [np.median(g) for g in groups]
    if min(medians) > 0 and max(medians) / min(medians) > LOG_SPREAD:
        log_axis(axes[0])
    unit = rows["unit"].iloc[0]
    axes[0].set_ylabel(f"{metric.removeprefix('workload.')} ({unit})")
    axes[0].set_title("median and 95% CI")
    if has_baseline:
        base = groups[runtimes.index(baseline)]
        compared = [i for i, r in enumerate(runtimes) if r != baseline]
        ratios = [stats.ratio_ci(groups[i], base) for i in compared]
        _ratio_panel(axes[1], ratios, [runtime_label(runtimes[i], emulated) for i in compared])
        spread = [r.ratio for r in ratios if r.ratio > 0]
        if spread and max(max(spread), 1) / min(min(spread), 1) > LOG_SPREAD:
            log_axis(axes[1])
    for ax in axes:
        ax.grid(axis="y", alpha=0.3, which="both")
    fig.suptitle(f"workload {workload}: {metric}")
    return save(fig, path)
