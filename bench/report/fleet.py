"""The fleet's page (cvbench run --cluster): its hosts side by side, how each one's run
ended, the overhead matrix and the claims per host, and how much each metric varies from
host to host. Each host's own folder under hosts/ keeps its full single-host report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats, units
from bench.metrics import key_metrics, lookup
from bench.report import figures, overhead, verdicts
from bench.report.contents import with_contents
from bench.report.templating import template
from bench.report.data import (
    baseline_runtime,
    complete,
    emulated_runtimes,
    in_order,
    measured,
)
from bench.results import load_frame, read_environment

REPORT = "report.html"
FIGURE = "figures/fleet_startup.png"
# Host medians differ beyond each host's own noise when a Kruskal-Wallis test over the
# hosts' values says so at this level; with fewer values per host it is not asked.
ALPHA = 0.01
MIN_N_PER_HOST = 3


def is_fleet(environment: dict) -> bool:
    return "fleet" in environment


def build_fleet_report(directory: Path) -> Path:
    from bench.report.html import utc_text, host_rows

    directory = Path(directory)
    environment = read_environment(directory)
    frame = complete(load_frame(directory))
    if "host" not in frame:
        frame["host"] = None
    fleet = environment["fleet"]
    names = list(fleet["hosts"])
    per_host = {name: frame[frame["host"] == name] for name in names}
    host_envs = environment.get("hosts") or {}
    by_name = {name: dict(host_rows(host_envs.get(name) or {})) for name in names}
    properties = [p for p, _ in host_rows({}) if p != "scenario file"]
    context = {
        "run": fleet["run"], "scenario": environment.get("scenario"),
        "started": utc_text(fleet.get("started")), "finished": utc_text(fleet.get("finished")),
        "interrupted": fleet.get("interrupted"), "records": len(frame),
        "hosts": [{"name": n, **fleet["hosts"][n],
                   "report": (directory / "hosts" / n / REPORT).exists()} for n in names],
        "properties": [(p, [by_name[n][p] for n in names]) for p in properties],
        "matrix": side_by_side_matrix(per_host, host_envs),
        "claims": claims_by_host(per_host, host_envs),
        "spread": host_spread(frame, names),
        "figure": spread_figure(frame, [n for n in names if len(per_host[n])], directory / FIGURE),
        "emulated": sorted({f"{r} on {n}" for n, rows in per_host.items()
                            for r in emulated_runtimes(rows, host_envs.get(n))}),
    }
    path = directory / REPORT
    page = template("fleet.html").render(names=names, **context)
    path.write_text(with_contents(page), encoding="utf-8")
    return path


def side_by_side_matrix(per_host: dict[str, pd.DataFrame], host_envs: dict) -> dict:
    """Rows: (workload, runtime); columns: hosts; each cell the host's own overhead-matrix
    cell, the ratio to its own native (bench/report/overhead.py)."""
    cells: dict[tuple[str, str], dict[str, dict]] = {}
    metrics: dict[str, dict] = {}
    for name, rows in per_host.items():
        emulated = emulated_runtimes(rows, host_envs.get(name))
        matrix = overhead.overhead_matrix(rows, baseline_runtime(rows), emulated)
        for row in matrix.get("rows", []):
            metrics.setdefault(row["workload"], {"metric": row["metric"], "better": row["better"]})
            for column, cell in zip(matrix["columns"], row["cells"]):
                cells.setdefault((row["workload"], column["label"]), {})[name] = cell
    if not cells:
        return {}
    return {"rows": [{"workload": w, "runtime": r, **metrics[w],
                      "cells": [cells[(w, r)].get(n, {"text": "—", "band": "none",
                                                      "title": "not measured on this host"})
                                for n in per_host]}
                     for w, r in cells]}


def claims_by_host(per_host: dict[str, pd.DataFrame], host_envs: dict) -> list[dict]:
    """Per claim, each host's verdict and why (bench/report/verdicts.py on its records)."""
    found: dict[str, list] = {}
    for name, rows in per_host.items():
        for verdict in verdicts.all_verdicts(rows, host_envs.get(name)):
            found.setdefault(verdict.claim, []).append(verdict)
    return [{"claim": claim, "verdicts": found_for} for claim, found_for in found.items()]


def host_spread(frame: pd.DataFrame, names: list[str]) -> list[dict]:
    """For each cell and key metric measured on two hosts or more: each host's median, the
    largest over the smallest, the CV of the host medians, and whether the hosts differ
    beyond their own noise (Kruskal-Wallis over the hosts' values)."""
    rows = measured(frame)
    wanted = [m.name for m in key_metrics()]
    out = []
    for metric in wanted:
        of_metric = rows[rows["metric"] == metric]
        for cell in in_order(of_metric["cell"]):
            values = {n: of_metric.loc[(of_metric["cell"] == cell) & (of_metric["host"] == n),
                                       "value"].to_numpy(float) for n in names}
            values = {n: v for n, v in values.items() if len(v)}
            if len(values) < 2:
                continue
            medians = {n: float(np.median(v)) for n, v in values.items()}
            low, high = min(medians.values()), max(medians.values())
            centre = np.array(list(medians.values()))
            out.append({
                "cell": cell, "metric": metric, "unit": lookup(metric).unit,
                "medians": [units.quantity(medians[n], lookup(metric).unit) if n in medians else "—"
                            for n in names],
                "spread": f"{high / low:.2f}×" if low > 0 else "—",
                "cv": f"{np.std(centre, ddof=1) / np.mean(centre):.1%}" if np.mean(centre) else "—",
                "differ": _differ(list(values.values())),
                "order": high / low if low > 0 else math.inf,
            })
    return sorted(out, key=lambda r: (r["metric"] != "startup.ready_s", -r["order"]))


def _differ(groups: list[np.ndarray]) -> str:
    if any(len(g) < MIN_N_PER_HOST for g in groups):
        return f"not judged (fewer than {MIN_N_PER_HOST} values on a host)"
    if np.ptp(np.concatenate(groups)) == 0:
        return "no (all values equal)"
    from scipy.stats import kruskal  # a second's import: only a fleet's page asks

    p = kruskal(*groups).pvalue
    return f"yes (p = {p:.2g})" if p < ALPHA else f"not shown (p = {p:.2g})"


def spread_figure(frame: pd.DataFrame, names: list[str], path: Path) -> dict | None:
    """Median READY per cell, one bar per host, with the median's 95% CI."""
    rows = measured(frame)
    rows = rows[rows["metric"] == "startup.ready_s"]
    cells = in_order(rows["cell"])
    if rows.empty or len(names) < 1:
        return None
    fig, (ax,) = figures.new_figure(1)
    width = 0.8 / len(names)
    for i, (name, colour) in enumerate(zip(names, figures.palette(len(names)))):
        summaries = [stats.summary(rows.loc[(rows["cell"] == c) & (rows["host"] == name), "value"])
                     for c in cells]
        positions = np.arange(len(cells)) + (i - (len(names) - 1) / 2) * width
        ax.bar(positions, [s.median for s in summaries], width=width * 0.9, color=colour, label=name)
        ax.errorbar(positions, [s.median for s in summaries], yerr=figures.yerr_of(summaries),
                    fmt="none", ecolor="black", capsize=3)
    medians = rows.groupby("cell")["value"].median()
    if len(medians) > 1 and medians.max() > 10 * medians.min():
        figures.log_axis(ax)
    figures.label_ticks(ax, cells)
    ax.set_ylabel("launch to READY (s)")
    ax.set_title("Median READY per cell and host, 95% CI")
    figures.tidy(ax)
    figures.save(fig, path)
    return {"path": str(Path(path).relative_to(path.parent.parent)), "caption": (
        "Startup: time from the launch call to the agent's READY line reaching each host, per "
        "cell, one bar per host (medians of the measured repetitions, warm-ups left out, with "
        "the bootstrap 95% CI of each median). Each host times its own instances on its own "
        "clock.")}
