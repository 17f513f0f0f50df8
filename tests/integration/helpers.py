"""Shared checks for tests that drive real engines."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.agent import boots_the_agent
from bench.collect.cgroups import ROOT, cgroup_version, v1_hierarchies
from bench.doctor import run_of_pid, tap_devices
from bench.session import WORKDIR
from bench.collect.slices import instance_slice, slice_path

REPO = Path(__file__).parent.parent.parent


def cvbench(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, **kwargs)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def vm_pids(run_id: str) -> list[int]:
    """QEMU processes of this run (other runs may be going on beside it)."""
    return [proc.pid for proc in psutil.process_iter(["name", "cmdline"])
            if (proc.info["name"] or "").startswith("qemu")
            and boots_the_agent(" ".join(proc.info["cmdline"] or []))
            and run_of_pid(proc.pid) == run_id]


def container_ids(run_id: str, running_only: bool = False) -> list[str]:
    argv = ["docker", "ps", "-q", "--filter", f"label=cvbench.run={run_id}"]
    if not running_only:
        argv.insert(2, "-a")
    return subprocess.run(argv, capture_output=True, text=True).stdout.split()


def podman_ids(run_id: str, running_only: bool = False) -> list[str]:
    if not shutil.which("podman"):  # a host without Podman (the lab) has none to leave
        return []
    argv = ["podman", "ps", "-q", "--filter", f"label=cvbench.run={run_id}"]
    if not running_only:
        argv.insert(2, "-a")
    return subprocess.run(argv, capture_output=True, text=True).stdout.split()


def oci_pids(run_id: str) -> list[int]:
    """OCI runtime processes (runc, runsc) of this run: their state folder is in its scratch."""
    state = str(WORKDIR / run_id)
    return [proc.pid for proc in psutil.process_iter(["cmdline"])
            if any(arg.startswith(state) for arg in proc.info["cmdline"] or [])
            and proc.pid != os.getpid()]


def libvirt_domains(run_id: str) -> list[str]:
    if not shutil.which("virsh"):
        return []
    names = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"],
                           capture_output=True, text=True).stdout.split()
    return [n for n in names if n.startswith(f"cvbench-{run_id.lower()}-")]


def libvirt_partitions(run_id: str) -> list[Path]:
    """The resource partitions libvirt domains of this run went into (no systemd)."""
    mine = instance_slice(f"cvbench-{run_id.lower()}-").removeprefix("cvbench-").removesuffix(".slice")
    return [*ROOT.glob(f"cvbench.partition/{mine}*"), *ROOT.glob(f"*/cvbench.partition/{mine}*")]


def leftovers(run_id: str) -> list[str]:
    """Everything a run could leave behind; empty when it cleaned up."""
    found = []
    found += [f"container {c}" for c in container_ids(run_id)]
    found += [f"qemu pid {pid}" for pid in vm_pids(run_id)]
    found += [f"oci runtime pid {pid}" for pid in oci_pids(run_id)]
    found += [f"podman container {c}" for c in podman_ids(run_id)]
    found += [f"libvirt domain {d}" for d in libvirt_domains(run_id)]
    found += [f"libvirt partition {p}" for p in libvirt_partitions(run_id)]
    # v1: every hierarchy, also those cvbench does not use, where OCI runtimes make the path too
    bases = [ROOT / "cvbench"] if cgroup_version() == 2 else [h / "cvbench" for h in v1_hierarchies()]
    found += [f"cgroup {b / run_id}" for b in bases if (b / run_id).exists()]
    found += [f"tap device {tap}" for tap in tap_devices()]
    slices = ROOT / (slice_path("") if cgroup_version() == 2 else "pids/" + slice_path(""))
    mine = instance_slice(f"cvbench-{run_id.lower()}-").removesuffix(".slice")
    found += [f"slice {s.name}" for s in (slices.iterdir() if slices.exists() else [])
              if s.name.startswith(mine)]
    if (WORKDIR / run_id).exists():
        found.append(f"scratch {WORKDIR / run_id}: {list((WORKDIR / run_id).iterdir())}")
    return found


def run_id_of(out: Path) -> str | None:
    env = out / "environment.json"
    return json.loads(env.read_text())["run"] if env.exists() else None


def interrupt_run(args: list, out: Path, busy, sig=signal.SIGINT, timeout: float = 180):
    """Start `cvbench run ARGS --out OUT` in a session of its own, wait until busy(run_id)
    holds, send sig to its process group (as a terminal's Ctrl-C would), wait for it to
    end: (exit code, its output, run id)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *map(str, args), "--out",
                             str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ((run_id := run_id_of(out)) and busy(run_id)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {busy.__doc__ or busy}")
            time.sleep(0.1)
        os.killpg(proc.pid, sig)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, output, run_id
