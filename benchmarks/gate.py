"""How good is the regression gate? Specificity on A/A pairs, power on injected slowdowns.

    python benchmarks/gate.py run [--count 12] [--scenario scenarios/aa.toml] [--out results/gate-aa]
    python benchmarks/gate.py evaluate [results/gate-aa] [--thresholds thresholds.toml] [--slowdown 0.1]

`run` runs the scenario COUNT times back to back (run folders r01, r02, ...; existing
ones are kept, so an interrupted benchmark resumes). `evaluate` compares each finished
run with the next, as `cvbench compare` would (the same build on the same host: every
"regression" is a false alarm), then injects a slowdown into one gated metric of the
newer run at a time (each gated main metric: x1.1 for a 10% slowdown where lower is
better, /1.1 where higher is) and counts how often the gate names exactly that metric a
regression. It prints both tables in Markdown and writes them to FOLDER/gate-SLOWDOWN.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench import compare
from bench.results import load_frame, read_environment

SLOWDOWN = 0.10


def run(scenario: Path, count: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        folder = out / f"r{i:02d}"
        if (folder / "records.jsonl").exists():
            continue
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(scenario),
                                 "--no-report", "--out", str(folder)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        print(f"{folder}: exit {result.returncode} in {time.monotonic() - started:.0f} s", flush=True)
        if result.returncode not in (0, 1):
            sys.exit(f"{folder}: {result.stderr[-2000:]}")


def finished(run: Path) -> bool:
    """A run that ended on its own (not one going on, or interrupted)."""
    environment = read_environment(run) if (run / "records.jsonl").exists() else {}
    return bool(environment.get("finished")) and not environment.get("interrupted")


def targets(frame: pd.DataFrame, thresholds: compare.Thresholds) -> list[tuple[str, str]]:
    """The (cell, metric) pairs the power test slows down: the gated main metrics and
    startup times."""
    return [key for key, sample in compare.samples(frame).items()
            if (sample.main or key[1] == "startup.ready_s")
            and compare.gated(key[1], sample, thresholds)]


def slowed(frame: pd.DataFrame, cell: str, metric: str, factor: float) -> pd.DataFrame:
    """frame with metric of cell made worse by factor (cell as compare.samples labels it)."""
    out = frame.copy()
    hit = (out["cell"] == cell.split(" [")[0]) & (out["metric"] == metric) & out["value"].notna()
    worse = factor if compare.direction(metric) == -1 else 1 / factor
    out.loc[hit, "value"] = out.loc[hit, "value"] * worse
    return out


def evaluate(folder: Path, thresholds: compare.Thresholds, slowdown: float = SLOWDOWN) -> str:
    runs = sorted(p for p in folder.iterdir() if finished(p))
    if len(runs) < 2:
        sys.exit(f"{folder}: needs at least two runs (python benchmarks/gate.py run)")
    frames = [load_frame(r) for r in runs]
    pairs = list(zip(range(len(runs) - 1), range(1, len(runs))))
    alarms, passed = [], 0
    caught: dict[tuple[str, str], list[bool]] = {}
    spread: dict[tuple[str, str], float] = {}  # the largest A/A change of each gated metric
    for i, j in pairs:
        changes = compare.compare_frames(frames[i], frames[j], thresholds)
        false = [c for c in changes if c.verdict == "regression"]
        passed += not false
        for c in changes:
            if c.gated and c.change == c.change:
                spread[(c.cell, c.metric)] = max(spread.get((c.cell, c.metric), 0.0), abs(c.change))
        alarms += [f"{runs[i].name} -> {runs[j].name}: {c.cell} {c.metric}: {c.reason}" for c in false]
        for cell, metric in targets(frames[j], thresholds):
            found = compare.compare_frames(frames[i], slowed(frames[j], cell, metric, 1 + slowdown),
                                           thresholds)
            hit = any(c.cell == cell and c.metric == metric and c.verdict == "regression"
                      for c in found)
            caught.setdefault((cell, metric), []).append(hit)
        print(f"{runs[i].name} -> {runs[j].name}: {len(false)} false alarm(s)", flush=True)
    gated = sum(c.gated for c in changes)
    lines = [f"Gate benchmark on {len(runs)} runs of {folder} ({len(pairs)} A/A pairs, each run "
             f"against the next; {gated} gated metrics per comparison; alpha {thresholds.alpha:g} "
             f"family-wise, floor {thresholds.min_change:.0%})", "",
             f"**Specificity**: {passed} of {len(pairs)} A/A pairs passed.", ""]
    lines += [f"- false alarm: {a}" for a in alarms]
    total = sum(len(v) for v in caught.values())
    hits = sum(sum(v) for v in caught.values())
    lines += ["", f"**Power**: a {slowdown:.0%} slowdown injected into one metric was caught in "
              f"{hits} of {total} injections ({hits / total:.0%}).", "",
              "| cell | metric | caught |", "| --- | --- | ---: |"]
    lines += [f"| {cell} | {metric} | {sum(v)} of {len(v)} |" for (cell, metric), v in caught.items()]
    lines += ["", "**Largest A/A change** of each gated metric (a floor learned from this host: "
              "`min_change` above it keeps such reruns clean):", "", "| cell | metric | largest |",
              "| --- | --- | ---: |"]
    lines += [f"| {cell} | {metric} | {value:.1%} |" for (cell, metric), value in spread.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("run")
    make.add_argument("--count", type=int, default=12)
    make.add_argument("--scenario", type=Path, default=Path("scenarios/aa.toml"))
    make.add_argument("--out", type=Path, default=Path("results/gate-aa"))
    judge = sub.add_parser("evaluate")
    judge.add_argument("folder", type=Path, nargs="?", default=Path("results/gate-aa"))
    judge.add_argument("--thresholds", type=Path, default=None)
    judge.add_argument("--slowdown", type=float, default=SLOWDOWN, help="injected, e.g. 0.1: x1.1")
    args = parser.parse_args()
    if args.action == "run":
        run(args.scenario, args.count, args.out)
    else:
        table = evaluate(args.folder, compare.load_thresholds(args.thresholds), args.slowdown)
        (args.folder / f"gate-{args.slowdown:g}.md").write_text(table)
        print(table)


if __name__ == "__main__":
    main()
