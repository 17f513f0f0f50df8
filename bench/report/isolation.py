"""The isolation scenario in the report: what each victim lost beside each aggressor, per
runtime, with its 95% CI; a heatmap runtime by aggressor per victim and a one-line finding.
Nothing here measures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.metrics import LOWER, lookup
from bench.report.data import in_order, interval, measured, runtime_label
from bench.report.figures import DPI, blank, save
from bench.report.overhead import main_metrics, skipped
from bench.results import aggressor_column

CAPTION = (
    "What the victim lost beside each aggressor, in percent of its median alone (the workload's "
    "main metric; a loss is lower throughput or higher latency), median with the bootstrap 95% "
    "CI, per runtime. Aggressor and victim are sibling instances of the same runtime, each under "
    "its own limits. Grey: the aggressor's instance died before the victim could run beside it; "
    "†: it died while the victim ran (the OOM killer, say), so the loss is a lower bound. The "
    "clients of serving victims (redis) run on the host and share its CPUs with the aggressor.")


@dataclass(frozen=True)
class Loss:
    victim: str
    metric: str
    runtime: str
    aggressor: str
    pct: float  # 100 * (1 - performance beside / performance alone)
    low: float
    high: float
    n_alone: int
    n_beside: int

    def describe(self, emulated: set[str]) -> str:
        return f"{runtime_label(self.runtime, emulated)} {self.pct:.0f}% {self.ci()}"

    def ci(self) -> str:
        return interval(self.low, self.high, min(self.n_alone, self.n_beside), lambda v: f"{v:.0f}")


def losses(frame: pd.DataFrame) -> list[Loss]:
    """One Loss per victim, runtime and aggressor that has values both alone and beside."""
    rows = measured(frame)
    if rows.empty:
        return []
    aggressor = aggressor_column(rows)
    out = []
    for victim, metric in main_metrics(frame).items():
        mine = rows[(rows["workload"] == victim) & (rows["metric"] == metric)]
        if not aggressor[mine.index].ne("").any():
            continue
        higher_is_better = lookup(metric).better != LOWER
        for runtime in in_order(mine["runtime"]):
            values = mine[mine["runtime"] == runtime]["value"]
            beside_whom = aggressor[values.index]
            alone = values[beside_whom == ""]
            for name in in_order(beside_whom[beside_whom != ""]):
                beside = values[beside_whom == name]
                if alone.empty:
                    continue
                kept = (stats.ratio_ci(beside, alone) if higher_is_better
                        else stats.ratio_ci(alone, beside))
                out.append(Loss(victim, metric, runtime, name, 100 * (1 - kept.ratio),
                                100 * (1 - kept.ci_high), 100 * (1 - kept.ci_low), len(alone),
                                len(beside)))
    return out


BEFORE, DURING = "before the victim", "while the victim ran"


def aggressor_deaths(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(runtime, aggressor) -> when its instance died: BEFORE (no victim ran beside it; the
    victim's record is skipped with the reason) or DURING (aggressor.running 0 after a victim)."""
    deaths = {}
    ended = frame[(frame["metric"] == "aggressor.running") & (frame["value"] == 0)]
    for runtime, name in zip(ended["runtime"], aggressor_column(ended)):
        deaths[(runtime, name)] = DURING
    rows = skipped(frame)
    for runtime, name, error in zip(rows["runtime"], aggressor_column(rows), rows["error"]):
        if name and "aggressor" in error:
            deaths[(runtime, name)] = BEFORE
    return deaths


def finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    found = losses(frame)
    deaths = aggressor_deaths(frame)
    if not found and not deaths:
        return None
    parts = []
    for victim in dict.fromkeys(loss.victim for loss in found):
        worst = {}
        for loss in (x for x in found if x.victim == victim):
            if loss.runtime not in worst or loss.pct > worst[loss.runtime].pct:
                worst[loss.runtime] = loss
        parts.append(f"beside its worst neighbour the {victim} victim lost " + ", ".join(
            f"{loss.describe(emulated)} ({loss.aggressor})" for loss in worst.values()))
    died: dict[tuple[str, str], list[str]] = {}
    for (runtime, aggressor), when in deaths.items():
        died.setdefault((runtime, when), []).append(aggressor)
    for (runtime, when), names in died.items():
        parts.append(f"the {runtime_label(runtime, emulated)} aggressor instance died {when} "
                     f"under {', '.join(names)}")
    return "; ".join(parts) + "."


def figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    """A heatmap per victim: runtimes down, aggressors across, loss in percent."""
    found = losses(frame)
    deaths = aggressor_deaths(frame)
    victims = list(dict.fromkeys(loss.victim for loss in found)) or ["victim"]
    runtimes = list(dict.fromkeys([*(x.runtime for x in found), *(r for r, _ in deaths)]))
    aggressors = list(dict.fromkeys([*(x.aggressor for x in found), *(a for _, a in deaths)]))
    if not runtimes or not aggressors:
        return None
    # The colour saturates at 100%: one wild cell must not wash out the others
    worst = min(100.0, max([abs(x.pct) for x in found if math.isfinite(x.pct)] + [10.0]))
    fig = blank(figsize=(1.6 * len(aggressors) + 2.5, (0.55 * len(runtimes) + 1.2) * len(victims)),
                 dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(victims), 1))
    for ax, victim in zip(axes, victims):
        grid = np.full((len(runtimes), len(aggressors)), np.nan)
        for loss in (x for x in found if x.victim == victim):
            grid[runtimes.index(loss.runtime), aggressors.index(loss.aggressor)] = loss.pct
            ax.text(aggressors.index(loss.aggressor), runtimes.index(loss.runtime),
                    f"{loss.pct:.0f}%\n{loss.ci()}", ha="center",
                    va="center", fontsize=8)
        image = ax.imshow(grid, cmap="RdYlGn_r", vmin=-worst, vmax=worst, aspect="auto")
        for (runtime, aggressor), when in deaths.items():
            x, y = aggressors.index(aggressor), runtimes.index(runtime)
            if when == BEFORE:
                ax.add_patch(_grey(x, y))
                ax.text(x, y, "aggressor\ndied", ha="center", va="center", fontsize=8)
            else:  # the loss beside it is shown, but it did not last the whole victim
                ax.text(x + 0.45, y - 0.45, "†", ha="right", va="top", fontsize=9)
        ax.set_xticks(range(len(aggressors)), aggressors)
        ax.set_yticks(range(len(runtimes)), [runtime_label(r, emulated) for r in runtimes])
        metric = next((x.metric for x in found if x.victim == victim), "")
        ax.set_title(f"victim {victim} ({metric.removeprefix('workload.')}): loss beside the aggressor",
                     fontsize=10)
        fig.colorbar(image, ax=ax, label="loss, %")
    return save(fig, path)


def _grey(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, color="lightgrey")
