"""How long `cvbench report` takes as a run grows (issue 16: linear in the records).

Builds run folders of 1k, 10k and 100k records from a real captured run (each copy of its
records is a further set of instances: the same cells, reps shifted past the last), times
the whole command on each (3 times, the median) and prints a Markdown table.

    python benchmarks/report_speed.py [SIZES ...]      # default 1000 10000 100000
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "tests" / "golden" / "run_smoke"  # 4 runtimes, 2 workloads, ~380 records
SIZES = (1000, 10000, 100000)
TIMES = 3


def make_run(folder: Path, records: int, source: Path = SOURCE) -> Path:
    """folder as a run of `records` records: the source run's, copied with their reps
    shifted past the last copy's, so that every copy is a further set of instances."""
    lines = [json.loads(line) for line in (source / "records.jsonl").read_text().splitlines()
             if line.strip()]
    shift = max(r["rep"] for r in lines) + 1
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "records.jsonl", "w", encoding="utf-8") as out:
        for i in range(records):
            record = dict(lines[i % len(lines)], rep=lines[i % len(lines)]["rep"]
                          + shift * (i // len(lines)))
            out.write(json.dumps(record) + "\n")
    shutil.copy(source / "environment.json", folder)
    return folder


def time_report(folder: Path, times: int = TIMES) -> float:
    """The median wall-clock seconds of the whole `cvbench report folder` command."""
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", "report", str(folder)], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def report_curve(sizes=SIZES) -> list[tuple[int, float]]:
    """(records, median seconds of `cvbench report`) per size, on runs built in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="report-speed-") as scratch:
        return [(n, time_report(make_run(Path(scratch) / f"run-{n}", n))) for n in sizes]


def table(curve: list[tuple[int, float]]) -> str:
    rows = [f"| {n} | {s:.2f} | {s / n * 1000:.3f} |" for n, s in curve]
    return "\n".join(["| records | seconds | seconds per 1k records |", "|---:|---:|---:|", *rows])


def main(argv: list[str] | None = None) -> int:
    sizes = [int(a) for a in (sys.argv[1:] if argv is None else argv)] or list(SIZES)
    print(table(report_curve(sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
