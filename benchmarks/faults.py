"""The fault campaign (nox -s faults): each fault injected many times into real runs, and
what it left counted from the host's side (docker/podman ps, processes, cgroup folders,
ip link, mounts, scratch folders: tests/integration/helpers.leftovers), never from
cvbench's own bookkeeping. Prints the table the README quotes; writes it as JSON too.

    python benchmarks/faults.py [--scale 0.25] [--only sigint,qemu] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import read_environment  # noqa: E402
from tests.integration.helpers import container_ids, leftovers, vm_pids  # noqa: E402

SMALL = """
name = "{name}"
reps = {reps}
warmup = 0
timeout_s = 90
{runtimes}
[workloads.noop]
"""
RUNTIMES = {
    "native": '[runtimes.native]\nkind = "native"\n',
    "runc": '[runtimes.runc]\nkind = "docker"\noci_runtime = "runc"\n',
    "oci-runc": '[runtimes.oci-runc]\nkind = "oci"\n',
    "vm": ('[runtimes.vm]\nkind = "qemu"\nmachine = "microvm"\naccel = "auto"\ninitrd = false\n'
           'pvh = true\n'),
}


@dataclass
class Try:
    clean: bool  # ended as the fault's rule says
    left: list[str] = field(default_factory=list)  # what it left behind, seen from the host
    lost: int = 0  # records that are not whole
    note: str = ""


@dataclass
class Tally:
    fault: str
    rule: str
    tries: list[Try] = field(default_factory=list)

    def row(self) -> list[str]:
        failed = [t.note for t in self.tries if not t.clean or t.left or t.lost]
        return [self.fault, str(len(self.tries)), str(sum(t.clean for t in self.tries)),
                str(sum(len(t.left) for t in self.tries)), str(sum(t.lost for t in self.tries)),
                "; ".join(dict.fromkeys(failed))[:300]]


def scenario(folder: Path, name: str, reps: int, *runtimes: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SMALL.format(name=name, reps=reps, runtimes="\n".join(RUNTIMES[r] for r in runtimes)))
    return path


def start(args: list, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *map(str, args), "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def cvbench(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()[0] + "\n(killed: it did not end)"


def whole_lines(out: Path) -> tuple[list[dict], int]:
    """The records that parse, and how many lines do not."""
    path = out / "records.jsonl"
    rows, torn = [], 0
    for line in (path.read_text(errors="replace").splitlines() if path.exists() else []):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
    return rows, torn


def left_by(run_id: str | None) -> list[str]:
    if not run_id:
        return []
    deadline = time.monotonic() + 10
    while (found := leftovers(run_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    mounts = Path("/proc/mounts").read_text()
    return found + [f"mount of {run_id}" for line in mounts.splitlines() if run_id in line]


def wait_until(condition, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# -- the faults --------------------------------------------------------------------------------


def sigint_smoke(work: Path, i: int) -> Try:
    """SIGINT at a random moment of a smoke run (--quick): exit 130, nothing left, records
    whole, the report builds."""
    out = work / f"sigint-{i}"
    proc = start(["scenarios/smoke.toml", "--quick", "--no-report"], out)
    moment = random.uniform(2, 60)
    time.sleep(moment)
    os.killpg(proc.pid, signal.SIGINT)
    output = finish(proc)
    run_id = read_environment(out).get("run")
    _, torn = whole_lines(out)
    report = cvbench("report", out).returncode if (out / "records.jsonl").exists() else 0
    clean = proc.returncode == 130 and report == 0
    return Try(clean, left_by(run_id), torn,
               "" if clean else f"at {moment:.0f} s: exit {proc.returncode}, report {report}: {output[-200:]}")


def dockerd_killed(work: Path, i: int) -> Try:
    """dockerd SIGKILLed while a container of the run is up: runc's cells fail with an
    error, native and oci-runc complete, and hostsetup brings dockerd back."""
    out = work / f"dockerd-{i}"
    path = scenario(work, f"dockerd{i}", 4, "native", "runc", "oci-runc")
    path.write_text(path.read_text().replace("[workloads.noop]", "[workloads.idle]\nseconds = 1"))
    proc = start([path], out)
    seen = wait_until(lambda: (run := read_environment(out).get("run")) and container_ids(run, True))
    subprocess.run(["pkill", "-KILL", "-x", "dockerd"])
    wait_until(lambda: subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode, 30)
    output = finish(proc)
    back = subprocess.run([sys.executable, "-m", "bench.hostsetup"], cwd=REPO, capture_output=True)
    rows, torn = whole_lines(out)
    ready = [r for r in rows if r["metric"] == "startup.ready_s" and not r["warmup"]]
    others = sum(r["value"] is not None for r in ready if r["runtime"] != "runc")
    runc_failed = [r for r in ready if r["runtime"] == "runc" and r["value"] is None and r.get("error")]
    run_id = read_environment(out).get("run")
    left = left_by(run_id)
    # what dockerd held when it died cannot be removed by the run: it names the fix
    named = "doctor --clean" in output
    cvbench("doctor", "--clean")
    cleared = not left_by(run_id)
    clean = (seen and proc.returncode == 1 and others == 8 and bool(runc_failed)
             and back.returncode == 0 and (not left or named))
    note = "" if clean else (f"exit {proc.returncode}, {others}/8 others, {len(runc_failed)} runc "
                             f"failed, dockerd back: {back.returncode == 0}: {output[-200:]}")
    if left:
        note = f"{note} the run named doctor --clean: {named}; it cleared them: {cleared}".strip()
    return Try(clean, left, torn, note)


def qemu_killed(work: Path, i: int) -> Try:
    """The QEMU process SIGKILLed mid-cell: that cell fails with the reason, the run goes on."""
    out = work / f"qemu-{i}"
    proc = start([scenario(work, f"qemu{i}", 2, "native", "vm")], out)
    pids: list[int] = []
    wait_until(lambda: (run := read_environment(out).get("run")) and pids.extend(vm_pids(run)) or pids)
    time.sleep(random.uniform(0, 1.5))
    for pid in pids[:1]:
        os.kill(pid, signal.SIGKILL)
    output = finish(proc)
    rows, torn = whole_lines(out)
    failed = [r for r in rows if r["runtime"] == "vm" and r["value"] is None and r.get("error")]
    native = [r for r in rows if r["runtime"] == "native" and r["metric"] == "startup.ready_s" and r["value"]]
    clean = bool(pids) and proc.returncode == 1 and bool(failed) and len(native) == 2
    return Try(clean, left_by(read_environment(out).get("run")), torn, "" if clean else (
        f"exit {proc.returncode}, {len(failed)} vm failures, {len(native)}/2 native: {output[-200:]}"))


def disk_full(work: Path, i: int) -> Try:
    """The results folder on a 64 KiB tmpfs: a clean stop naming the cause, the records so
    far readable."""
    mount = Path(tempfile.mkdtemp(prefix="cvbench-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        out = mount / "run"
        proc = start([scenario(work, f"full{i}", 400, "native")], out)
        output = finish(proc)
        rows, torn = whole_lines(out)
        environment = read_environment(out)
        clean = (proc.returncode == 2 and "No space left on device" in output and len(rows) > 10
                 and environment.get("run") is not None)
        # a record cut by the full disk is one the run never counted as kept: not lost
        return Try(clean, left_by(environment.get("run")), max(0, torn - 1), "" if clean else
                   f"exit {proc.returncode}, {len(rows)} records: {output[-200:]}")
    finally:
        subprocess.run(["umount", str(mount)])
        mount.rmdir()


def two_at_once(work: Path, i: int) -> Try:
    """A second run while one measures: refused with a clear message; the first undisturbed."""
    first_out, second_out = work / f"first-{i}", work / f"second-{i}"
    first = start([scenario(work, f"first{i}", 30, "native")], first_out)
    wait_until(lambda: (first_out / "environment.json").exists())
    second = start([scenario(work, f"second{i}", 3, "native")], second_out)
    second_output = finish(second)
    finish(first)
    rows, torn = whole_lines(first_out)
    measured = sum(r["metric"] == "startup.ready_s" and r["value"] is not None for r in rows)
    clean = (second.returncode == 2 and "is measuring on this host" in second_output
             and not second_out.exists() and first.returncode == 0 and measured == 30)
    return Try(clean, left_by(read_environment(first_out).get("run")), torn, "" if clean else
               f"second exit {second.returncode}, first exit {first.returncode}, {measured}/30: "
               f"{second_output[-200:]}")


def corrupted_line(work: Path, i: int) -> Try:
    """A damaged line in records.jsonl: report and compare name it and go on."""
    base = work / "clean-run"
    if not base.exists():
        cvbench("run", scenario(work, "clean", 3, "native", "oci-runc"), "--out", base, "--no-report")
    damaged = work / f"damaged-{i}"
    subprocess.run(["cp", "-r", str(base), str(damaged)], check=True)
    lines = (damaged / "records.jsonl").read_text().splitlines(keepends=True)
    n = random.randrange(len(lines))
    lines[n] = random.choice([lines[n][: len(lines[n]) // 2] + "\n", "\x00garbage\n", "{}\n"])
    (damaged / "records.jsonl").write_text("".join(lines))
    report, compare = cvbench("report", damaged), cvbench("compare", base, damaged)
    named = f"records.jsonl:{n + 1}: "
    clean = (report.returncode == 0 and compare.returncode in (0, 1)
             and named in report.stderr and named in compare.stderr)
    return Try(clean, [], 0, "" if clean else f"line {n + 1}: report {report.returncode}, "
               f"compare {compare.returncode}: {report.stderr[-150:]}")


FAULTS = {
    "sigint": (sigint_smoke, 20, "SIGINT at a random moment of a smoke run (--quick)",
               "exit 130; nothing left; records whole; report works"),
    "dockerd": (dockerd_killed, 3, "dockerd killed mid-run",
                "runc cells failed with an error; native and oci-runc complete; dockerd back"),
    "qemu": (qemu_killed, 5, "the QEMU process killed mid-cell",
             "that cell failed with the reason; the run goes on"),
    "full": (disk_full, 3, "the results file system full (64 KiB tmpfs)",
             "exit 2 naming the cause; records so far readable"),
    "two": (two_at_once, 3, "two runs at once on one host",
            "the second refused with a clear message; the first undisturbed"),
    "corrupt": (corrupted_line, 3, "a damaged line in records.jsonl",
                "report and compare name the line and go on"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="tries × this (at least 1 each)")
    parser.add_argument("--only", help="comma-separated faults: " + ", ".join(FAULTS))
    parser.add_argument("--out", type=Path, default=REPO / "results" / time.strftime("faults-%Y%m%dT%H%M%S"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    chosen = args.only.split(",") if args.only else list(FAULTS)
    args.out.mkdir(parents=True, exist_ok=True)
    tallies = []
    started = time.monotonic()
    for name in chosen:
        inject, tries, fault, rule = FAULTS[name]
        tally = Tally(fault, rule)
        for i in range(max(1, round(tries * args.scale))):
            result = inject(args.out, i)
            tally.tries.append(result)
            mark = "ok" if result.clean and not result.left and not result.lost else "FAILED"
            print(f"{name} {i + 1}: {mark} {result.note} {result.left}", flush=True)
        tallies.append(tally)
    header = ["fault", "tries", "ended cleanly", "leftovers found", "records lost", "what failed"]
    table = [header, ["---"] * len(header)] + [t.row() for t in tallies]
    text = "\n".join("| " + " | ".join(row) + " |" for row in table)
    print(f"\n{text}\n\n{time.monotonic() - started:.0f} s in all; folders in {args.out}")
    (args.out / "faults.json").write_text(json.dumps([asdict(t) for t in tallies], indent=2))
    (args.out / "faults.md").write_text(text + "\n")
    return 0 if all(r[2] == r[1] and r[3] == "0" and r[4] == "0" for r in table[2:]) else 1


if __name__ == "__main__":
    sys.exit(main())
