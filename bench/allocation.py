"""Allocation (mode = "allocation"): how much of the memory an instance is given the host
actually pays for, idle and after the guest touched and freed memory.

For each size of `memory_sizes_mib`, each runtime and repetition, one instance with that much
memory (a VM: -m size; a container or native process: a cgroup limit of size). The guest
idles, then a perl one-liner fills a string of `touch_mib` (capped at 40% of the size, so the
smallest instance is not OOM-killed) and exits, freeing it; the guest idles again. The host
reads PSS of the instance's host processes and its cgroup working set in each idle spell.
A VM's guest frees into its own free list, which the host does not get back (no balloon);
a container's freed pages return to the host.
"""

from __future__ import annotations

import time

from bench.collect.processes import memory_of
from bench.modes import record
from bench.runtimes import Limits

CELL = "allocation"
MiB = 2**20
SETTLE_S = 2.0  # host waits this long into each idle spell of the guest before reading
IDLE_S = 4  # each idle spell of the guest
TOUCHED = "cvbench-touched"


def touch_mib(size_mib: int, wanted: int) -> int:
    return max(1, min(wanted, int(size_mib * 0.4)))


def command(touch: int) -> str:
    # The size comes as an argument: a constant would be folded at compile time and the
    # string built twice (twice the memory touched).
    return (f"sleep {IDLE_S}; perl -e 'my $x = \"\\0\" x ($ARGV[0] << 20); print length($x), "
            f"\"\\n\"' {touch} && echo {TOUCHED}; sleep {IDLE_S}")


def run_allocation(runner) -> None:
    scenario = runner.scenario
    specs = [s for s in scenario.runtimes if s.name in runner.runtimes]
    print(f"run {runner.run_id}: allocation, sizes {list(scenario.memory_sizes_mib)} MiB, "
          f"{scenario.reps} reps over {', '.join(s.name for s in specs)} -> {runner.out_dir}",
          flush=True)
    for rep in range(scenario.reps):
        for size in scenario.memory_sizes_mib:
            for spec in specs:
                records = _one(runner, spec, rep, size)
                runner.store.append(records)
                shown = {(r.metric, r.tags.get("phase")): r.value for r in records}
                errors = [r.error for r in records if r.error]
                idle = shown.get(("alloc.pss_bytes", "idle"))
                touched = shown.get(("alloc.pss_bytes", "touched"))
                print(f"  {spec.name} {size} MiB rep {rep}: " + (
                    f"failed: {errors[0][:200]}" if errors else
                    f"PSS idle {idle / MiB:.1f} MiB, after touch+free {touched / MiB:.1f} MiB"),
                    flush=True)


def _one(runner, spec, rep: int, size: int) -> list:
    scenario = runner.scenario
    runtime = runner.runtimes[spec.name]
    touch = touch_mib(size, scenario.touch_mib)
    tags = {"cpus": scenario.cpus, "memory_mib": size, "touch_mib": touch, **runtime.tags()}
    name = runner.instance_name()
    out = []

    def rec(metric, value, unit, phase=None, error=None):
        t = {**tags, **({"phase": phase} if phase else {})}
        out.append(record(runner, CELL, spec, rep, t, metric, value, unit, error))

    inst = None
    try:
        inst = runtime.launch(command(touch), Limits(scenario.cpus, size), name)
        tags.update(inst.tags)
        deadline = inst.t_launch + scenario.timeout_s
        ready = inst.lines.wait_for("READY", deadline)
        rec("startup.ready_s", ready.t - inst.t_launch, "s")
        time.sleep(SETTLE_S)
        _read(inst, size, "idle", rec)
        inst.lines.wait_for_text(TOUCHED, deadline)
        time.sleep(SETTLE_S)
        _read(inst, size, "touched", rec)
        done = inst.lines.wait_for("DONE", deadline)
        if int(done.event[1]) != 0:
            rec("alloc.pss_bytes", None, "bytes", "touched",
                f"guest command exit code {done.event[1]}")
    except Exception as exc:  # this instance fails, the run goes on
        rec("alloc.pss_bytes", None, "bytes", None, f"{type(exc).__name__}: {exc}")
        runner.failed_cells.add(f"{CELL}@{spec.name}")
    finally:
        if inst is not None:
            runner.cleanup.release(inst.cleanup_token)
    return out


def _read(inst, size: int, phase: str, rec) -> None:
    pids = set(inst.cgroup.pids() if inst.cgroup else []) | set(inst.helper_pids())
    mem = memory_of(pids)
    if mem is None:
        for metric in ("alloc.pss_bytes", "alloc.paid_fraction"):
            rec(metric, None, "bytes" if metric.endswith("_bytes") else "1", phase,
                "no process of the instance could be read")
    else:
        rec("alloc.pss_bytes", mem.pss, "bytes", phase)
        rec("alloc.paid_fraction", mem.pss / (size * MiB), "1", phase)
    if inst.cgroup is not None:
        rec("alloc.cgroup_bytes", inst.cgroup.memory().working_set, "bytes", phase)
