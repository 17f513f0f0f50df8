"""cvbench's own cost (nox -s harness): each thing cvbench does timed beside the same work
without cvbench, in one session, and the ratio.

- a native noop, launch to gone: cvbench's startup.exit_s (median) against
  `unshare -mpf --mount-proc chroot ROOT AGENT true` timed by hyperfine (median);
- 11 runc noop starts (10 + 1 warm-up), whole command: `cvbench run --no-report` against
  `hyperfine --warmup 1 --runs 10 'docker run --rm --network none IMAGE true'`, the two
  interleaved, the median of 15 each (and the range of the 15 pairs' ratios);
- the report of that run: `cvbench report`, against `cvbench --help` (the floor of any
  command);
- the report as a run grows: 1k, 10k, 100k records (benchmarks/report_speed.py);
- with --scenarios smoke,default: each scenario's whole `cvbench run`, report included.

cvbench runs as installed: from cached bytecode (pip compiles on install). A shell with
PYTHONDONTWRITEBYTECODE set would have every command compile cvbench again (80 ms here),
so the harness unsets it for the commands it times and compiles cvbench first.

    python benchmarks/harness.py [--out DIR] [--curve 1000,10000,100000] [--scenarios smoke]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.agent import AGENT_PATH  # noqa: E402
from bench.images import load_cached  # noqa: E402
from bench.results import read_environment  # noqa: E402
from benchmarks.report_speed import report_curve  # noqa: E402

CVBENCH = [sys.executable, "-m", "bench.cli"]
NOOP = """
name = "harness-{name}"
reps = {reps}
warmup = 1
cpus = 1
memory_mib = 256
timeout_s = 60

[runtimes.{name}]
kind = "{kind}"
{extra}
[workloads.noop]
"""
# Whole commands, interleaved: the median of this many. Here the same 11 `docker run`s took
# 3.7 to 6.8 s from one time to the next: 3 pairs gave ratios from 1.07 to 1.28, and 7 pairs
# 1.06 and 1.11 on the same code, 15 minutes apart; one pair's ratio ranged 0.96-1.17
TIMES = 15
TARGETS = {"native": 1.5, "runc": 1.1, "report": 1.0}  # ratio, ratio, seconds (issue 16)


def scenario(folder: Path, name: str, kind: str, reps: int, extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(NOOP.format(name=name, kind=kind, reps=reps, extra=extra))
    return path


def run(argv: list[str]) -> None:
    """A command that must succeed; if it does not, stop and say what it said."""
    result = subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"harness: {' '.join(map(str, argv))} exited {result.returncode}: "
                         f"{result.stderr.strip()[-600:]}")


def timed(argv: list[str]) -> float:
    """Wall-clock seconds of a whole command, which must succeed."""
    start = time.perf_counter()
    run(argv)
    return time.perf_counter() - start


def hyperfine_median(command: str, runs: int, warmup: int, scratch: Path) -> float:
    """hyperfine's median of command, run without a shell (-N), in seconds."""
    export = scratch / "hyperfine.json"
    run(["hyperfine", "-N", "--warmup", str(warmup), "--runs", str(runs), "--export-json",
         str(export), command])
    return statistics.median(json.loads(export.read_text())["results"][0]["times"])


def medians(folder: Path, metric: str) -> float:
    values = [r["value"] for r in map(json.loads, (folder / "records.jsonl").read_text().splitlines())
              if r["metric"] == metric and not r["warmup"] and r["value"] is not None]
    return statistics.median(values)


def native_row(scratch: Path) -> dict:
    """The native baseline's launch to gone, against the bare command at hyperfine's pace."""
    folder = scratch / "native"
    run([*CVBENCH, "run", str(scenario(scratch, "native", "native", 30)), "--out", str(folder),
         "--no-report"])
    image = load_cached(read_environment(folder)["image"]["key"])
    floor = hyperfine_median(f"unshare -mpf --mount-proc chroot {image.root} {AGENT_PATH} true",
                             runs=30, warmup=3, scratch=scratch)
    ours = medians(folder, "startup.exit_s")
    # The floor pays a fork, namespaces and a proc mount that cvbench makes before its clock
    fenced = ours + medians(folder, "startup.prepare_s")
    return {"what": "native noop, launch to gone (median of 30)",
            "cvbench": f"{ours * 1e3:.1f} ms (with the cgroup and mounts made before the "
                       f"clock: {fenced * 1e3:.1f} ms, {fenced / floor:.2f}×)",
            "without": f"`unshare -mpf --mount-proc chroot ROOT {AGENT_PATH} true`, "
                       f"hyperfine: {floor * 1e3:.1f} ms",
            "ratio": ours / floor, "target": TARGETS["native"], "image": image}


def runc_rows(scratch: Path, image) -> list[dict]:
    """11 runc starts as a whole command each way, interleaved; then that run's report."""
    toml = scenario(scratch, "runc", "docker", 10, 'oci_runtime = "runc"\n')
    docker_run = f"docker run --rm --network none {image.docker_tag} true"
    ours, theirs, folder = [], [], scratch / "runc-0"
    for i in range(TIMES):
        folder = scratch / f"runc-{i}"
        ours.append(timed([*CVBENCH, "run", str(toml), "--out", str(folder), "--no-report"]))
        theirs.append(timed(["hyperfine", "-N", "--warmup", "1", "--runs", "10", docker_run]))
    report = [timed([*CVBENCH, "report", str(folder)]) for _ in range(TIMES)]
    floor = [timed([*CVBENCH, "--help"]) for _ in range(TIMES)]
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    report_s = statistics.median(report)
    pairs = sorted(a / b for a, b in zip(ours, theirs))
    return [
        {"what": f"11 runc noop starts (10 + 1 warm-up), whole command, median of {TIMES} "
                 f"interleaved (one pair's ratio: {pairs[0]:.2f}-{pairs[-1]:.2f})",
         "cvbench": f"`cvbench run --no-report` {ours_s:.2f} s",
         "without": f"`hyperfine --warmup 1 --runs 10 'docker run --rm --network none IMAGE "
                    f"true'` {theirs_s:.2f} s",
         "ratio": ours_s / theirs_s, "target": TARGETS["runc"], "seconds_each": [ours, theirs]},
        {"what": "the report of that run (11 instances)",
         "cvbench": f"`cvbench report` {report_s:.2f} s",
         "without": f"`cvbench --help` {statistics.median(floor) * 1e3:.0f} ms",
         "ratio": None, "seconds": report_s, "target": TARGETS["report"], "seconds_each": report},
    ]


def scenario_row(name: str) -> dict:
    """A shipped scenario's whole run, report included, as a user runs it."""
    with tempfile.TemporaryDirectory(prefix=f"harness-{name}-") as out:
        seconds = timed([*CVBENCH, "run", str(REPO / "scenarios" / f"{name}.toml"), "--out", out])
    return {"what": f"`scenarios/{name}.toml`, whole run with its report", "cvbench":
            f"{seconds / 60:.1f} min", "without": "", "ratio": None, "seconds": seconds}


def verdict(row: dict) -> str:
    if row.get("target") is None:
        return ""
    value = row["ratio"] if row["ratio"] is not None else row["seconds"]
    unit = "" if row["ratio"] is not None else " s"
    return f"{'met' if value <= row['target'] else 'MISSED'} (target ≤ {row['target']}{unit})"


def table(rows: list[dict]) -> str:
    lines = ["| what | cvbench | the same work without cvbench | ratio | |",
             "| --- | --- | --- | --- | --- |"]
    for row in rows:
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else ""
        lines.append(f"| {row['what']} | {row['cvbench']} | {row['without']} | {ratio} | "
                     f"{verdict(row)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / time.strftime("harness-%Y%m%dT%H%M%S"))
    parser.add_argument("--curve", default="1000,10000,100000",
                        help="record counts of the report's growth curve (empty: none)")
    parser.add_argument("--scenarios", default="", help="shipped scenarios to time whole, e.g. smoke,default")
    args = parser.parse_args(argv)
    if not shutil.which("hyperfine"):
        raise SystemExit("harness: hyperfine not found: python -m bench.hostsetup --harness "
                         "(or apt-get install hyperfine)")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(REPO / "bench", quiet=1)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="harness-") as scratch:
        native = native_row(Path(scratch))
        rows = [native, *runc_rows(Path(scratch), native.pop("image"))]
    rows += [scenario_row(name) for name in filter(None, args.scenarios.split(","))]
    text = table(rows)
    sizes = [int(n) for n in args.curve.split(",") if n]
    if sizes:
        curve = report_curve(sizes)
        text += "\n\n| records | `cvbench report` | per 1k records |\n| --- | --- | --- |\n"
        text += "\n".join(f"| {n:,} | {s:.2f} s | {s / n * 1000:.3f} s |" for n, s in curve)
    print(f"{text}\n\n{time.monotonic() - started:.0f} s in all")
    (args.out / "harness.md").write_text(text + "\n")
    (args.out / "harness.json").write_text(json.dumps(rows, indent=2, default=str))
    return 0 if all(verdict(r).startswith("met") or not verdict(r) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
