"""Report sections of the storage, density, allocation and isolation scenarios: a figure each and a
one-line finding computed from the records. Nothing here measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.report import isolation, pressure
from bench.report.data import emulated_runtimes, in_order, metric_values, runtime_label
from bench.report.figures import DPI, blank, save, tidy, yerr_of
from bench.report.painter import Painter
from bench.units import MiB, quantity


def sections(frame: pd.DataFrame, folder: Path, environment: dict | None = None,
             painter: Painter | None = None) -> list[dict]:
    """{title, finding, src, caption} per scenario kind the run has records of; with a
    painter, src is filled in when it finishes."""
    painter = painter or Painter(workers=0)
    emulated = emulated_runtimes(frame, environment)
    out = []
    for title, finding, draw, name, caption in (
        ("Storage", storage_finding, storage_figure, "storage.png", STORAGE_CAPTION),
        ("Density", density_finding, density_figure, "density.png", DENSITY_CAPTION),
        ("Density until something gives", pressure.limit_finding, pressure.limit_figure,
         "density-limit.png", pressure.LIMIT_CAPTION),
        ("Burst", pressure.burst_finding, pressure.burst_figure, "burst.png",
         pressure.BURST_CAPTION),
        ("Warm start", pressure.warm_finding, pressure.warm_figure, "warm.png",
         pressure.WARM_CAPTION),
        ("Allocation", allocation_finding, allocation_figure, "allocation.png",
         ALLOCATION_CAPTION),
        ("Isolation", isolation.finding, isolation.figure, "isolation.png", isolation.CAPTION),
    ):
        text = finding(frame, emulated)
        if text is None:
            (folder / name).unlink(missing_ok=True)
            continue
        out.append({"title": title, "finding": text, "src": None, "caption": caption})

        def place(drawn: Path | None, section: dict = out[-1], name: str = name) -> None:
            section["src"] = f"{folder.name}/{name}" if drawn else None

        painter.draw(draw, frame, folder / name, emulated, then=place)
    return out


# -- storage -----------------------------------------------------------------------------------

STORAGE_CAPTION = (
    "Left: disk an idle instance adds on the host (container: du of its overlay2 upper dir; VM: "
    "actual size of its qcow2 overlay; native: nothing, it runs in the shared root), against a "
    "VM's full copy of the base disk; logarithmic. Right: one 4 KiB write (fsync) into the "
    "image's largest file, first and second time, median with 95% CI, each point an instance.")


def storage_finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    disk = metric_values(frame, "storage.instance_disk_bytes")
    if disk.empty:
        return None
    parts = [f"{quantity(np.median(_of(disk, r)), 'bytes')} for {runtime_label(r, emulated)}"
             for r in in_order(disk["runtime"])]
    text = "per additional idle instance the host's disk grew by " + ", ".join(parts)
    copies = metric_values(frame, "storage.full_copy_bytes")
    if not copies.empty:
        text += (f", against {quantity(np.median(copies['value']), 'bytes')} for a VM's full "
                 "disk copy")
    first = metric_values(frame, "storage.first_write_s")
    second = metric_values(frame, "storage.second_write_s")
    after = metric_values(frame, "storage.instance_disk_after_write_bytes")
    writes = []
    for r in in_order(first["runtime"]):
        a, b = _of(first, r), _of(second, r)
        if len(a) and len(b):
            grown = _of(after, r)
            layer = f", disk then {quantity(np.median(grown), 'bytes')}" if len(grown) else ""
            writes.append(f"{runtime_label(r, emulated)} {quantity(np.median(a), 's')} vs "
                          f"{quantity(np.median(b), 's')}{layer}")
    if writes:
        size = first["tag.write_file_bytes"].dropna() if "tag.write_file_bytes" in first else []
        name = first["tag.write_file"].dropna().iloc[0] if "tag.write_file" in first else "a file"
        what = f"{name} ({quantity(size.iloc[0], 'bytes')})" if len(size) else name
        text += (f"; the first 4 KiB write into {what} against the second: " + ", ".join(writes))
    return text + "."


def storage_figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    disk = metric_values(frame, "storage.instance_disk_bytes")
    fig = blank(figsize=(10, 4.5), dpi=DPI)
    left, right = fig.subplots(1, 2)
    labels, heights = [], []
    for r in in_order(disk["runtime"]):
        labels.append(runtime_label(r, emulated))
        heights.append(np.median(_of(disk, r)) / 2**10)
    copies = metric_values(frame, "storage.full_copy_bytes")
    if not copies.empty:
        labels.append("VM full copy")
        heights.append(np.median(copies["value"]) / 2**10)
    left.bar(range(len(labels)), [h if h > 0 else np.nan for h in heights], color="#4c72b0")
    left.set_yscale("log")
    for i, h in enumerate(heights):  # nothing to draw on a log axis: say it
        if not h > 0:
            left.annotate("0 (shared root)", (i, 0), xycoords=("data", "axes fraction"),
                          xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)
    left.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    left.set_ylabel("disk added per instance (KiB, log)")
    left.set_title("disk per additional instance")
    first = metric_values(frame, "storage.first_write_s")
    second = metric_values(frame, "storage.second_write_s")
    runtimes = in_order(first["runtime"])
    for offset, rows, label, colour in ((-0.2, first, "first write", "#c44e52"),
                                        (0.2, second, "second write", "#55a868")):
        for i, r in enumerate(runtimes):
            values = _of(rows, r) * 1e3
            if not len(values):
                continue
            s = stats.summary(values)
            right.bar(i + offset, s.median, width=0.4, color=colour,
                      label=label if i == 0 else None,
                      yerr=([[s.median - s.ci_low], [s.ci_high - s.median]]
                            if s.n >= stats.MIN_N_FOR_CI else None))
            right.plot(np.full(len(values), i + offset), values, "k.", ms=4)
    right.set_xticks(range(len(runtimes)), [runtime_label(r, emulated) for r in runtimes],
                     rotation=20, ha="right")
    right.set_ylabel("ms")
    right.set_title("4 KiB write into a large image file")
    if runtimes:
        right.legend()
    return save(fig, path)


# -- density -----------------------------------------------------------------------------------

DENSITY_CAPTION = (
    "Left: host memory per idle instance against N instances side by side, one line per runtime: "
    "PSS summed over the instances' host processes divided by N (solid) and host MemAvailable "
    "drop divided by N, caches dropped before and after (dashed; other work on the host moves "
    "it too). Right: time until all N instances started together were READY (solid) and the "
    "startup of the N-th instance started after N-1 others (dashed). Medians over repetitions, "
    "95% CI where there are several.")

VIEWS = {"density.pss_per_instance_bytes": "PSS",
         "density.mem_available_drop_per_instance_bytes": "MemAvailable drop",
         "density.cgroup_per_instance_bytes": "cgroup"}


def fixed_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Density's records of N fixed in advance: those of grow = true have their own section."""
    return frame[frame["workload"] != pressure.LIMIT] if "workload" in frame else frame


def density_finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    frame = fixed_counts(frame)
    pss = metric_values(frame, "density.pss_per_instance_bytes")
    if pss.empty:
        return None
    runtimes = in_order(pss["runtime"])
    parts = []
    for r in runtimes:
        mine = pss[pss["runtime"] == r]
        n = mine["tag.n"].max()
        parts.append(f"{quantity(np.median(mine.loc[mine['tag.n'] == n, 'value']), 'bytes')} "
                     f"for {runtime_label(r, emulated)} (N={n:g})")
    text = "per idle instance the host paid (PSS) " + ", ".join(parts)
    together = metric_values(frame, "density.all_ready_s")
    if not together.empty:
        starts = []
        for r in in_order(together["runtime"]):
            mine = together[together["runtime"] == r]
            n = mine["tag.n"].max()
            starts.append(f"{n:g} {runtime_label(r, emulated)} in "
                          f"{quantity(np.median(mine.loc[mine['tag.n'] == n, 'value']), 's')}")
        text += "; started at once: " + ", ".join(starts)
    drift = metric_values(frame, "density.background_drift_bytes")
    drop = metric_values(frame, "density.mem_available_drop_per_instance_bytes")
    if not drift.empty and not drop.empty:
        worst = np.abs(drift["value"]).max()
        text += (f"; MemAvailable moved by up to {quantity(worst, 'bytes')} on its own during a "
                 "step"
                 + (", more than some per-instance drops: read that view with care"
                    if (np.abs(drop["value"]) < worst).any() else ""))
    stopped = _stops(frame)
    if stopped:
        text += "; stopped early: " + "; ".join(stopped)
    return text + "."


def _stops(frame: pd.DataFrame) -> list[str]:
    reached = metric_values(frame, "density.reached_n")
    if reached.empty or "tag.stop_reason" not in reached:
        return []
    rows = reached[reached["tag.stop_reason"].notna()]
    return [f"{runtime} reached N={value:g} ({reason})"
            for runtime, value, reason in zip(rows["runtime"], rows["value"], rows["tag.stop_reason"])]


def density_figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    frame = fixed_counts(frame)
    fig = blank(figsize=(10, 4.5), dpi=DPI)
    left, right = fig.subplots(1, 2)
    colours = {}
    for metric, style, ax in (("density.pss_per_instance_bytes", "-", left),
                              ("density.mem_available_drop_per_instance_bytes", "--", left),
                              ("density.all_ready_s", "-", right),
                              ("density.kth_ready_s", "--", right)):
        rows = metric_values(frame, metric)
        if metric == "density.kth_ready_s" and not rows.empty:
            rows = rows[rows["tag.k"] == rows["tag.n"]]
        scale = MiB if metric.endswith("_bytes") else 1
        for r in in_order(rows["runtime"]):
            mine = rows[rows["runtime"] == r]
            ns = sorted(set(mine["tag.n"]))
            summaries = [stats.summary(mine.loc[mine["tag.n"] == n, "value"] / scale) for n in ns]
            med = [s.median for s in summaries]
            err = yerr_of(summaries)
            line = ax.errorbar(ns, med, yerr=err, fmt=style + "o", ms=4, capsize=3,
                               color=colours.get(r),
                               label=runtime_label(r, emulated) if style == "-" else None)
            colours.setdefault(r, line[0].get_color())
    left.set_xlabel("N idle instances")
    left.set_ylabel("MiB per instance")
    left.set_yscale("symlog", linthresh=1)
    left.set_title("memory per instance (solid PSS, dashed MemAvailable)")
    right.set_xlabel("N")
    right.set_ylabel("s (log)")
    right.set_yscale("log")  # containers start in tenths of a second, emulated VMs in tens
    ns = sorted(set(metric_values(frame, "density.pss_per_instance_bytes")["tag.n"]) |
                set(metric_values(frame, "density.all_ready_s")["tag.n"]))
    for ax in (left, right):
        ax.set_xticks(ns)
    right.set_title("all N at once (solid), N-th after N-1 (dashed)")
    for ax in (left, right):
        tidy(ax)
    return save(fig, path)


# -- allocation ----------------------------------------------------------------------------------

ALLOCATION_CAPTION = (
    "PSS of the instance's host processes over the memory it was given (memory_mib), idle "
    "(solid) and after the guest touched and freed memory (dashed), one line per runtime; "
    "medians with 95% CI where there are several repetitions.")


def allocation_finding(frame: pd.DataFrame, emulated: set[str]) -> str | None:
    rows = metric_values(frame, "alloc.paid_fraction")
    if rows.empty:
        return None
    sizes = sorted(set(rows["tag.memory_mib"].dropna()))
    parts = []
    for r in in_order(rows["runtime"]):
        mine = rows[rows["runtime"] == r]
        phases = []
        for phase, label in (("idle", "idle"), ("touched", "after touch+free")):
            at = [mine.loc[(mine["tag.memory_mib"] == m) & (mine["tag.phase"] == phase), "value"]
                  for m in sizes]
            if any(len(v) for v in at):
                phases.append(label + " " + "/".join(f"{np.median(v):.0%}" if len(v) else "n/a"
                                                     for v in at))
        parts.append(f"{runtime_label(r, emulated)} {', '.join(phases)}")
    return (f"of the memory it was given ({'/'.join(f'{m:g}' for m in sizes)} MiB) the host paid "
            "(PSS) for: " + "; ".join(parts) + ".")


def allocation_figure(frame: pd.DataFrame, path: Path, emulated: set[str]) -> Path | None:
    rows = metric_values(frame, "alloc.paid_fraction")
    fig = blank(figsize=(8, 4.5), dpi=DPI)
    ax = fig.subplots()
    colours = {}
    for phase, style in (("idle", "-"), ("touched", "--")):
        sub = rows[rows["tag.phase"] == phase]
        for r in in_order(sub["runtime"]):
            mine = sub[sub["runtime"] == r]
            sizes = sorted(set(mine["tag.memory_mib"]))
            summaries = [stats.summary(mine.loc[mine["tag.memory_mib"] == m, "value"] * 100)
                         for m in sizes]
            err = yerr_of(summaries)
            line = ax.errorbar(sizes, [s.median for s in summaries], yerr=err, fmt=style + "o",
                               ms=4, capsize=3, color=colours.get(r),
                               label=f"{runtime_label(r, emulated)} ({phase})")
            colours.setdefault(r, line[0].get_color())
    ax.set_xlabel("memory given (MiB)")
    ax.set_ylabel("PSS / memory given (%)")
    tidy(ax)
    return save(fig, path)


# -- helpers -----------------------------------------------------------------------------------


def _of(rows: pd.DataFrame, runtime: str) -> np.ndarray:
    return rows.loc[rows["runtime"] == runtime, "value"].to_numpy(float)
