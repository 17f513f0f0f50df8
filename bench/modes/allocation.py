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
from bench.console import say
from bench.measure import attempt
from bench.modes.base import Mode, positive_ints
from bench.params import Param
from bench.runtimes import Limits
from bench.units import MiB
from bench.spec import Cell, Step

CELL = "allocation"
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


class Allocation(Mode):
    name = "allocation"
    OPTIONS = {
        "memory_sizes_mib": Param(list, [256, 512, 1024], "memory each instance is given"),
        "touch_mib": Param(int, 200, "memory the guest touches and frees"),
    }

    @classmethod
    def checked(cls, options: dict) -> dict:
        return {**options, "memory_sizes_mib": positive_ints(options, "memory_sizes_mib")}

    def run(self, session) -> None:
        scenario, sizes = session.scenario, self.options["memory_sizes_mib"]
        usable = session.usable()
        session.announce(f"sizes {list(sizes)} MiB")
        for rep in range(scenario.reps):
            for size in sizes:
                for spec, runtime in usable:
                    step = Step(Cell.of_mode(CELL, spec), rep, False)
                    tags, outcome = one_instance(session, runtime, size, self.options["touch_mib"])
                    session.keep(step, tags, outcome)
                    shown = {(v.metric, v.tags.get("phase")): v.value for v in outcome.values}
                    errors = [v.error for v in outcome.values if v.error]
                    idle = shown.get(("alloc.pss_bytes", "idle"))
                    touched = shown.get(("alloc.pss_bytes", "touched"))
                    say(f"  {spec.name} {size} MiB rep {rep}: " + (
                        f"failed: {errors[0][:200]}" if errors else
                        f"PSS idle {idle / MiB:.1f} MiB, after touch+free {touched / MiB:.1f} MiB"))


def one_instance(session, runtime, size: int, wanted_touch_mib: int):
    """One instance given size MiB, read idle and after touch+free: (its tags, its outcome)."""
    scenario = session.scenario
    touch = touch_mib(size, wanted_touch_mib)
    tags = {"memory_mib": size, "touch_mib": touch, **runtime.tags()}
    with attempt("alloc.pss_bytes", "bytes") as outcome:
        with runtime.running(command(touch), Limits(scenario.cpus, size),
                             session.instance_name()) as inst:
            tags.update(inst.tags)
            deadline = inst.t_launch + scenario.timeout_s
            ready = inst.wait_ready(scenario.timeout_s)
            outcome.add("startup.ready_s", ready.t - inst.t_launch, "s")
            time.sleep(SETTLE_S)
            _read(inst, size, "idle", outcome)
            inst.lines.wait_for_text(TOUCHED, deadline)
            time.sleep(SETTLE_S)
            _read(inst, size, "touched", outcome)
            done = inst.lines.wait_for("DONE", deadline)
            if done.exit_code != 0:
                outcome.add("alloc.pss_bytes", None, "bytes", f"guest command exit code {done.event[1]}",
                            phase="touched")
    return tags, outcome


def _read(inst, size: int, phase: str, outcome) -> None:
    mem = memory_of(inst.host_pids())
    if mem is None:
        why = "no process of the instance could be read"
        outcome.add("alloc.pss_bytes", None, "bytes", why, phase=phase)
        outcome.add("alloc.paid_fraction", None, "1", why, phase=phase)
    else:
        outcome.add("alloc.pss_bytes", mem.pss, "bytes", phase=phase)
        outcome.add("alloc.paid_fraction", mem.pss / (size * MiB), "1", phase=phase)
    if inst.cgroup is not None:
        outcome.add("alloc.cgroup_bytes", inst.cgroup.memory().working_set, "bytes", phase=phase)
