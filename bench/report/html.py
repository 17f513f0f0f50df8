"""report.html: one self-contained page over a results folder (DESIGN.md §6).

Everything shown is computed from records.jsonl and environment.json, so the
page can be rebuilt at any time, also from a partial or interrupted run.
"""

from __future__ import annotations

import datetime
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import pandas as pd

from bench import stats, units
from bench.metrics import key_metrics, lookup
from bench.report import figures, overhead, published, sharing, verdicts, waterfall
from bench.report.contents import with_contents
from bench.report.painter import Painter
from bench.report.templating import template
from bench.report.data import (
    baseline_runtime,
    complete,
    emulated_runtimes,
    in_order,
    interval,
    memory_workload,
    runtime_label,
    split,
)
from bench.results import SKIPPED, aggressor_column, load_frame, read_environment
from bench.workloads import STARTUP_PROBE, roles_of

REPORT = "report.html"
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    draw: Callable[..., Path | None]  # (frame, path[, environment]) -> the PNG, or None
    caption: Callable[[pd.DataFrame], str]
    with_environment: bool = False  # the runtimes' options from environment.json


FIGURES = [
    FigureSpec("startup.png", figures.startup_figure, lambda frame: (
        "Time from the launch call to the agent's READY line reaching the host, per runtime and "
        "workload: each point is one instance, the box spans the quartiles, and the axis turns "
        "logarithmic where runtimes differ more than tenfold.")),
    FigureSpec("startup_phases.png", figures.phases_figure, lambda frame: (
        "Median startup phases per runtime over all workloads, stacked in the order they happen; "
        "grey is the time to READY that no phase covers, and a VM's boot is timed by the guest's "
        "own clock.")),
    FigureSpec("startup_waterfall.png", figures.waterfall_figure, lambda frame: (
        "Each runtime's launch-to-READY split into the layers of its stack, medians of the "
        "startup workloads: the manager's own phases; the runtime or VMM until the agent "
        "starts (on the host's clock where the instance shares the host's kernel; for a VM or "
        "gVisor, until the guest's clock starts, firmware and kernel load included); the guest "
        "kernel until init (guest clock); init until READY reaches the host. Beside a managed "
        "runtime: what its manager costs against the same stack without it."), True),
    FigureSpec("memory.png", figures.memory_figure, lambda frame: (
        f"Memory per instance for workload {memory_workload(frame)}, two views side by side: the "
        "cgroup working set (usage less inactive file cache) and the PSS summed over the "
        "instance's host processes (shims, sandbox and VMM included), medians after READY with "
        "95% CIs.")),
    FigureSpec("cpu_throughput.png", figures.cpu_figure, lambda frame: (
        "CPU throughput (sysbench events per second) per runtime with the 95% CI of the median, "
        "and, where the run has a native runtime, the ratio of medians to native with its "
        "bootstrap CI (dashed line: native speed).")),
]


def build_report(directory: Path) -> Path:
    """Write DIR/figures/*.png and DIR/report.html from DIR's records; return the page's path."""
    directory = Path(directory)
    frame = complete(load_frame(directory))
    environment = read_environment(directory)
    # Victims beside an aggressor have the isolation section; every other view shows
    # instances that ran alone.
    alone = frame[aggressor_column(frame) == ""]
    folder = directory / FIGURES_DIR
    # The figures are drawn in worker processes while the tables are computed here; each
    # is put on the page when the painter finishes, before the page is written (painter.py)
    with Painter(alone, frame) as painter:
        drawn = draw_figures(alone, folder, environment, painter)
        context = page_context(alone, environment, drawn)
        context["workloads"] = workload_sections(alone, context, folder, painter)
        context["sections"] = sharing.sections(frame, folder, environment, painter)
        context["verdicts"] = verdicts.all_verdicts(frame, environment)  # isolation needs both
        context["min_n_claim"] = verdicts.MIN_N_CLAIM
        context["published"] = published.published_rows(alone, environment)
        context["waterfall"] = waterfall_rows(alone, environment)
    page = with_contents(template(REPORT).render(**context))
    path = directory / REPORT
    path.write_text(page, encoding="utf-8")
    return path


def waterfall_rows(frame: pd.DataFrame, environment: dict) -> dict:
    """The waterfall as table rows, and what each manager costs against its bare twin."""
    found = waterfall.waterfalls(frame, environment)
    emulated = emulated_runtimes(frame, environment)
    rows = [{"runtime": runtime_label(w.runtime, emulated), "manager": w.manager or "none",
             "layers": [_span(w.layers[layer]) for layer in waterfall.LAYERS],
             "ready": _span(w.ready), "n": w.n, "clock": w.clock,
             "manager_cpu": _manager_cpu(w)} for w in found]
    costs = [{"managed": c.managed, "bare": c.bare, "manager": c.manager,
              "ready_managed": _span(c.ready_managed), "ready_bare": _span(c.ready_bare),
              "difference": _span(c.difference.difference), "n": c.difference.n,
              "ci": _interval(c.difference)}
             for c in waterfall.manager_costs(found, environment)]
    return {"layers": waterfall.LAYERS, "rows": rows, "costs": costs}


def _interval(difference: stats.Difference) -> str:
    if math.isnan(difference.ci_low):
        return f"n = {difference.n}: too few for an interval"
    return f"{_span(difference.ci_low)} to {_span(difference.ci_high)}"


def _span(seconds: float | None) -> str:
    return "—" if seconds is None else units.quantity(seconds, "s")


def _manager_cpu(w: waterfall.Waterfall) -> str:
    if w.manager is None:
        return "— (no manager)"
    if w.manager_cpu_s is None:
        return "not recorded in this run"
    return f"{units.quantity(w.manager_cpu_s, 's')} ({w.manager_cpu_source})"


def draw_figures(frame: pd.DataFrame, folder: Path, environment: dict | None = None,
                 painter: Painter | None = None) -> list[dict]:
    """The figures there is data for; a stale PNG of one there is none for is removed. With
    a painter, the list is filled in when it finishes."""
    painter = painter or Painter(workers=0)
    drawn: list[dict] = []
    for spec in FIGURES:
        target = folder / spec.name

        def place(drawn_at: Path | None, spec: FigureSpec = spec, target: Path = target) -> None:
            if drawn_at is None:
                target.unlink(missing_ok=True)
            else:
                drawn.append({"src": f"{FIGURES_DIR}/{spec.name}", "caption": spec.caption(frame)})

        painter.draw(spec.draw, frame, target, *([environment] if spec.with_environment else []),
                     then=place)
    return drawn


def workload_sections(frame: pd.DataFrame, context: dict, folder: Path,
                      painter: Painter | None = None) -> list[dict]:
    """A section per workload with a main metric, each with its figure (with a painter, put
    in when it finishes); stale figures go."""
    painter = painter or Painter(workers=0)
    emulated = set(context["emulated"]) | emulated_runtimes(frame)
    sections = overhead.workload_sections(frame, context["baseline"], emulated)
    names = {f"workload_{_safe(section['workload'])}.png" for section in sections}
    for stale in folder.glob("workload_*.png") if folder.exists() else []:
        if stale.name not in names:
            stale.unlink()
    for section in sections:
        name = f"workload_{_safe(section['workload'])}.png"

        def place(drawn_at: Path | None, section: dict = section, name: str = name) -> None:
            if drawn_at is None:
                (folder / name).unlink(missing_ok=True)
            else:
                section["figure"] = f"{FIGURES_DIR}/{name}"

        painter.draw(figures.workload_figure, frame, section["workload"], section["main"],
                     folder / name, then=place)
    return sections


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def page_context(frame: pd.DataFrame, environment: dict, drawn: list[dict]) -> dict:
    emulated = emulated_runtimes(frame, environment)
    baseline = baseline_runtime(frame)
    return {
        "run": environment.get("run") or _first(frame["run"]) or "unknown run",
        "scenario": environment.get("scenario") or _first(frame["scenario"]) or "unknown",
        "status": run_status(frame, environment),
        "emulated": [r for r in runtime_order(frame, environment) if r in emulated],
        "unusable": environment.get("unusable_runtimes") or {},
        "failures": failures(frame),
        "skipped": skipped_cells(frame),
        "matrix": overhead.overhead_matrix(frame, baseline, emulated),
        "missing_values": missing_values(frame),
        "missing_cells": missing_cells(frame, environment),
        "baseline": baseline,
        "cells": summary_cells(frame, baseline, emulated),
        "unstable": unstable_cells(frame, emulated),
        "figures": drawn,
        "host": host_rows(environment),
        "runtimes": runtime_rows(environment, runtime_order(frame, environment)),
        "scenario_text": environment.get("scenario_text"),
        "lab": lab_context(environment),
    }


def lab_context(environment: dict) -> dict | None:
    """What the lab stood in for, when the run took place in it (bench/lab)."""
    host = environment.get("host") or {}
    if host.get("host_shape") != "lab":
        return None
    drivers = {r.get("cgroup_driver") for r in (environment.get("runtimes") or {}).values()} - {None}
    return {"cgroup_version": host.get("cgroup_version"), "cgroup_driver": ", ".join(sorted(drivers))}


# -- run state and what went wrong ----------------------------------------------------


def run_status(frame: pd.DataFrame, environment: dict) -> dict:
    warmups = frame[frame["warmup"].eq(True)]
    return {
        "started": utc_text(environment.get("started")),
        "finished": utc_text(environment.get("finished")),
        "interrupted": bool(environment.get("interrupted")),
        "quick": bool(environment.get("quick")),
        "records": len(frame),
        "warmup_instances": len(warmups[["cell", "rep"]].drop_duplicates()),
        "warmup_records": len(warmups),
    }


def failures(frame: pd.DataFrame) -> list[dict]:
    """Per cell, the instances whose startup, CPU or workload measurement failed, and why.

    Memory alone does not fail an instance (runner.py): one can be gone within a sampling
    interval; those gaps are listed by missing_values.
    """
    failed = frame[frame["error"].notna() & ~_is_memory(frame) & ~_is_skipped(frame)]
    out = []
    for cell, rows in failed.groupby("cell", sort=False):
        instances = rows[["rep", "warmup"]].drop_duplicates()
        attempted = frame[(frame["cell"] == cell) & ~frame["warmup"].eq(True)]
        out.append({
            "cell": cell,
            "failed": int((~instances["warmup"].eq(True)).sum()),
            "attempted": attempted["rep"].nunique(),
            "failed_warmups": int(instances["warmup"].eq(True).sum()),
            "errors": list(rows["error"].value_counts(sort=False).items()),
        })
    return out


def missing_values(frame: pd.DataFrame) -> list[dict]:
    """Memory views that could not be read, per cell and metric."""
    missing = frame[frame["error"].notna() & _is_memory(frame)]
    out = []
    for (cell, metric, error), rows in missing.groupby(["cell", "metric", "error"], sort=False):
        out.append({"cell": cell, "metric": metric, "error": error,
                    "instances": len(rows[["rep", "warmup"]].drop_duplicates()),
                    "warmups": int(rows["warmup"].eq(True).sum())})
    return out


def skipped_cells(frame: pd.DataFrame) -> list[dict]:
    """Cells a runtime could not run (a network mode it lacks), with the reason."""
    rows = overhead.skipped(frame)
    return [{"cell": cell, "why": why} for cell, why in
            rows[["cell", "error"]].drop_duplicates().itertuples(index=False)]


def _is_skipped(frame: pd.DataFrame) -> pd.Series:
    return frame["error"].astype(str).str.startswith(SKIPPED)


def _is_memory(frame: pd.DataFrame) -> pd.Series:
    return frame["metric"].astype(str).str.startswith("mem.")


def missing_cells(frame: pd.DataFrame, environment: dict) -> list[str]:
    """Cells the scenario asked for with no record beyond warm-ups (an interrupted run): a
    workload in every runtime, or in those it names."""
    try:
        workloads = tomllib.loads(environment.get("scenario_text") or "").get("workloads", {})
    except tomllib.TOMLDecodeError:
        return []
    seen = set(frame.loc[~frame["warmup"].eq(True), "cell"])
    return [f"{w}@{r}" for w, table in workloads.items() for r in runtime_order(frame, environment)
            if f"{w}@{r}" not in seen and r in table.get("runtimes", [r])]


def runtime_order(frame: pd.DataFrame, environment: dict) -> list[str]:
    """Runtimes in the order the records show them, then any only environment.json knows."""
    known = [*(environment.get("runtimes") or {}), *(environment.get("unusable_runtimes") or {})]
    return list(dict.fromkeys(in_order(frame["runtime"]) + known))


# -- the summary table ------------------------------------------------------------------


def summary_cells(frame: pd.DataFrame, baseline: str | None, emulated: set[str]) -> list[dict]:
    """One entry per cell (workload@runtime) in run order, with a row per key metric it has."""
    counted = frame[~frame["warmup"].eq(True)]
    by_cell = split(counted, "workload", "runtime")
    cells = []
    for workload in in_order(frame["workload"]):
        for runtime in in_order(frame["runtime"]):
            mine = by_cell.get((workload, runtime))
            if mine is None:
                continue
            native = by_cell.get((workload, baseline), counted.iloc[0:0])
            rows = [metric_row(info.name, mine, native, runtime == baseline)
                    for info in key_metrics() if (mine["metric"] == info.name).any()]
            if rows:  # a mode's cell (density@runc) has its own section instead
                restored = "tag.start" in mine and (mine["tag.start"] == "warm").all()
                cells.append({"name": f"{workload}@{runtime_label(runtime, emulated)}"
                                      + (" (restored from a snapshot)" if restored else ""),
                              "rows": rows})
    return cells


def metric_row(metric: str, cell: pd.DataFrame, native: pd.DataFrame, is_baseline: bool) -> dict:
    unit, scale = units.table_unit(lookup(metric).unit)
    values = cell.loc[cell["metric"] == metric, "value"].dropna().to_numpy(float) / scale
    summary = stats.summary(values)
    outliers = int(stats.mad_outliers(values).sum())
    return {
        "metric": metric,
        "label": lookup(metric).label,
        "unit": unit,
        "median": units.number(summary.median),
        "ci": interval(summary.ci_low, summary.ci_high, summary.n, units.number),
        "n": summary.n,
        # Instances, not records: one that failed early left no record of this metric
        "attempts": cell["rep"].nunique(),
        "ratio": _ratio(metric, values, native, scale, is_baseline),
        "cv": "—" if math.isnan(summary.cv) else f"{summary.cv:.1%}",
        "noisy": stats.is_noisy(summary),
        "outliers": outliers,
    }


def _ratio(metric: str, values, native: pd.DataFrame, scale: float, is_baseline: bool) -> str:
    if is_baseline:
        return "baseline"
    if native.empty:
        return "—"
    baseline_values = native.loc[native["metric"] == metric, "value"].dropna().to_numpy(float)
    ratio = stats.ratio_ci(values, baseline_values / scale)
    if math.isnan(ratio.ratio):
        return "—"
    return f"{ratio.ratio:.2f}× {interval(ratio.ci_low, ratio.ci_high, ratio.n)}"


# -- unstable cells ----------------------------------------------------------------------


def unstable_cells(frame: pd.DataFrame, emulated: set[str]) -> list[dict]:
    """Each cell and key metric whose CV is above 5%, with likely causes and the repetitions
    that would bring the 95% CI of its mean to +-2%."""
    counted = frame[~frame["warmup"].eq(True) & frame["value"].notna()]
    failing = set(frame.loc[frame["error"].notna() & ~_is_memory(frame), "runtime"])
    by_metric = split(counted, "workload", "runtime", "metric")
    out = []
    for workload, runtime, metric in product(in_order(counted["workload"]),
                                             in_order(counted["runtime"]),
                                             [info.name for info in key_metrics()]):
        values = by_metric.get((workload, runtime, metric), counted.iloc[0:0])["value"]
        summary = stats.summary(values, interval=False)  # the CV is shown here, no interval
        if not stats.is_noisy(summary):
            continue
        outliers = int(stats.mad_outliers(values).sum())
        out.append({
            "cell": f"{workload}@{runtime_label(runtime, emulated)}",
            "metric": metric,
            "n": summary.n,
            "cv": f"{summary.cv:.1%}",
            "causes": likely_causes(workload, metric, summary.n, runtime in failing, outliers),
            "suggested_reps": stats.suggested_reps(summary.cv, n=summary.n),
        })
    return out


def likely_causes(workload: str, metric: str, n: int, runtime_failed: bool,
                  outliers: int) -> list[str]:
    causes = []
    if n < 5:
        causes.append(f"too few repetitions (n = {n} < 5)")
    if metric.startswith("mem.") and STARTUP_PROBE in roles_of(workload):
        # Memory counts after READY, and a startup probe exits right then: each value is
        # one early sample
        causes.append(f"{workload} exits right after READY, so its memory is one sample or none")
    if not causes:
        causes.append("a noisy host or CPU frequency scaling")
    if runtime_failed:
        causes.append("this runtime had failed instances in the run")
    if outliers:
        causes.append(f"{outliers} outlier{'s' if outliers > 1 else ''} (kept, marked in the "
                      "table and plots)")
    return causes


# -- environment ------------------------------------------------------------------------


def host_rows(environment: dict) -> list[tuple[str, str]]:
    host = environment.get("host") or {}
    image = environment.get("image") or {}
    memory = host.get("memory_bytes")
    rows = [
        ("host", host.get("hostname")),
        ("host shape", {"lab": "the lab (a VM under emulation, standing in for a user's host)",
                        "host": "this machine"}.get(host.get("host_shape"), host.get("host_shape"))),
        ("host is a VM", host.get("under_hypervisor")),
        ("operating system", host.get("os")),
        ("kernel", host.get("kernel")),
        ("CPU", f"{host.get('cpu_model')} × {host.get('cpu_count')}" if host else None),
        ("memory", f"{memory / 2**30:.1f} GiB" if memory else None),
        ("cgroup version", host.get("cgroup_version")),
        ("/dev/kvm present", host.get("kvm_device")),
        ("cvbench", host.get("cvbench")),
        ("Python", host.get("python")),
        ("guest image digest", image.get("digest")),
        ("guest kernel", image.get("kernel_release")),
        ("scenario file", environment.get("scenario_path")),
    ]
    return [(name, "not recorded" if value is None else str(value)) for name, value in rows]


def runtime_rows(environment: dict, order: list[str]) -> list[dict]:
    described = environment.get("runtimes") or {}
    unusable = environment.get("unusable_runtimes") or {}
    rows = []
    for name in order:
        settings = dict(described.get(name) or {})
        accel, why = settings.pop("accel_used", None), settings.pop("accel_reason", None)
        rows.append({
            "name": name,
            "kind": settings.pop("kind", ""),
            "settings": [(k, _setting(v)) for k, v in sorted(settings.items())],
            "accel": accel or "",
            "why": why or "",
            "unusable": unusable.get(name),
        })
    return rows


# -- formatting -------------------------------------------------------------------------


def _setting(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def utc_text(timestamp) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _first(column: pd.Series):
    values = in_order(column)
    return values[0] if values else None
