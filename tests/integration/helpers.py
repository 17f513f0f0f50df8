"""Shared checks for tests that drive real engines."""

import json
import subprocess
import sys
from pathlib import Path

import psutil

from bench.collect.cgroups import ROOT, V1_CONTROLLERS, cgroup_version
from bench.runner import WORKDIR

REPO = Path(__file__).parent.parent.parent


def cvbench(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, **kwargs)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def leftovers(run_id: str) -> list[str]:
    """Everything a run could leave behind; empty when it cleaned up."""
    found = []
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=cvbench.run={run_id}"],
                         capture_output=True, text=True).stdout.split()
    found += [f"container {c}" for c in out]
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        # This run's VMs only (named cvbench-<run id>-N): another run may be going on
        if "cvbench.cmd=" in cmdline and f"cvbench-{run_id.lower()}-" in cmdline and \
                (proc.info["name"] or "").startswith("qemu"):
            found.append(f"qemu pid {proc.pid}")
    bases = [ROOT / "cvbench"] if cgroup_version() == 2 else [ROOT / c / "cvbench" for c in V1_CONTROLLERS]
    found += [f"cgroup {b / run_id}" for b in bases if (b / run_id).exists()]
    if (WORKDIR / run_id).exists():
        found.append(f"scratch {WORKDIR / run_id}: {list((WORKDIR / run_id).iterdir())}")
    return found
