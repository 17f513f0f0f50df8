"""Density (mode = "density"): N idle instances of one runtime side by side, for each N of
the scenario's `counts`, and what each costs the host, three ways (DESIGN.md §7):

- host MemAvailable drop divided by N, page cache dropped before and after (gVisor's way);
- PSS summed over the N instances' host processes (shims, sandboxes, VMMs) divided by N
  (Kata's way): shared pages are split among their sharers, so the sum is the true total;
- cgroup working set per instance (usage less inactive file cache).

Also the startup latency of the k-th instance as instances pile up (launched one after the
other), and the time to start all N at once (one thread per instance, launched together).

With grow = true (scenarios/density-limit.toml), instances are added one at a time instead,
all kept up, until a stop rule fires: the memory floor below, a launch that fails, two
READYs in a row slower than latency_factor times the median of one instance started alone,
or the cap. Its cell is density-limit@<runtime>; density.reached_n carries the rule (tag
stop_rule) and counts the instances up within every rule.

Before every launch the host's MemAvailable is checked against `memory_floor_mib` plus what
the next instance may take; when it would fall below, the runtime stops there, says so, and
records what it reached (density.reached_n with the reason) rather than let the OOM killer
choose a victim. Every instance is in the run's Cleanup from its launch on.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack, nullcontext

from bench.cleanup import ignore_signals_during
from bench.collect.host import drop_caches, mem_available
from bench.collect.processes import memory_of
from bench.console import say
from bench.errors import RuntimeFailure
from bench.measure import Value
from bench.modes.base import Mode, positive, positive_ints
from bench.params import Param
from bench.runtimes import Limits
from bench.units import MiB, quantity
from bench.spec import Cell, Step

CELL = "density"
LIMIT_CELL = "density-limit"
MIN_FLOOR_MIB = 1024  # the host's own room: no scenario may let instances take it
SOLO_LAUNCHES = 3  # one instance alone, this many times: the latency rule's reference
SLOW_IN_A_ROW = 2  # the latency rule: one slow launch may be a hiccup, two in a row are not
IDLE_COMMAND = "sleep 86400"  # idles until the host removes it
SETTLE_S = 2.0  # after the last READY, before memory is read: let the guests quiet down


class BelowFloor(Exception):
    """Starting one more instance would take the host below the memory floor."""


class Density(Mode):
    name = "density"
    OPTIONS = {
        "counts": Param(list, [1, 2, 4], "how many idle instances to start side by side, per step"),
        "memory_floor_mib": Param(int, 2048, "stop before host MemAvailable falls below this "
                                  f"(at least {MIN_FLOOR_MIB})"),
        "grow": Param(bool, False, "add idle instances one at a time until a stop rule fires "
                      "(counts unused)"),
        "max_instances": Param(int, 64, "grow: the cap"),
        "latency_factor": Param(float, 3.0, "grow: stop at two READYs in a row slower than "
                                "this times the median of one instance alone"),
    }

    @classmethod
    def checked(cls, options: dict) -> dict:
        positive(options, "max_instances", "latency_factor")
        return {**options, "counts": positive_ints(options, "counts"),
                "memory_floor_mib": floor_mib(options)}

    def run(self, session) -> None:
        floor = self.options["memory_floor_mib"]
        if self.options["grow"]:
            cap, factor = self.options["max_instances"], self.options["latency_factor"]
            session.announce(f"one more idle instance at a time until the memory floor "
                             f"({floor} MiB), a failed launch, two READYs over {factor:g}x alone, "
                             f"or {cap} instances")
            for rep in range(session.scenario.reps):
                for spec, runtime in session.usable():
                    Pile(session, spec, runtime, floor, LIMIT_CELL).grow(rep, cap, factor)
            return
        counts = sorted(set(self.options["counts"]))
        session.announce(f"N in {counts}, memory floor {floor} MiB")
        for spec, runtime in session.usable():
            Pile(session, spec, runtime, floor).run(counts)


def floor_mib(options: dict) -> int:
    if options["memory_floor_mib"] < MIN_FLOOR_MIB:
        raise ValueError(f"memory_floor_mib: at least {MIN_FLOOR_MIB} (the host's own room), "
                         f"got {options['memory_floor_mib']}")
    return options["memory_floor_mib"]


class Pile:
    """The instances of one runtime, piled up N at a time."""

    def __init__(self, session, spec, runtime, floor_mib: int, cell: str = CELL,
                 command: str = IDLE_COMMAND):
        self.session, self.spec, self.runtime = session, spec, runtime
        scenario = session.scenario
        self.cell = Cell.of_mode(cell, spec)
        self.command = command
        self.limits = Limits(scenario.cpus, scenario.memory_mib)
        self.floor = floor_mib * MiB
        # Until measured, the next instance may take all it is allowed (a VM: guest + VMM).
        self.estimate = (scenario.memory_mib + runtime.memory_overhead_mib()) * MiB
        self.tags = {"memory_floor_mib": floor_mib, **runtime.tags()}

    def save(self, rep: int, tags: dict, *values: Value) -> list:
        return self.session.save(Step(self.cell, rep, False), {**self.tags, **tags}, list(values))

    def run(self, counts: list[int]) -> None:
        reached, reason = 0, None
        try:
            for n in counts:
                for rep in range(self.session.scenario.reps):
                    self.sequential(n, rep)
                    self.concurrent(n, rep)
                reached = n
        except BelowFloor as exc:
            reason = str(exc)
            say(f"  {self.spec.name}: stopped: {reason}")
        except Exception as exc:  # an engine error: this runtime stops, the run goes on
            reason = f"an instance failed: {type(exc).__name__}: {exc}"
            self.session.fail(self.cell.name)
            say(f"  {self.spec.name}: failed: {reason[:300]}")
        except KeyboardInterrupt as exc:  # say how far it got, then let the run clean up
            self.save(0, {"stop_reason": f"interrupted ({exc or 'Ctrl-C'})"},
                      Value("density.reached_n", reached, "1"))
            raise
        self.save(0, {"stop_reason": reason}, Value("density.reached_n", reached, "1"))

    # -- one more at a time until something gives --------------------------------------

    def grow(self, rep: int, cap: int, factor: float) -> None:
        rule, why, instances, tags = "cap", f"reached the cap of {cap}", [], {"grow": True}
        slow: list[float] = []
        try:
            # Caches dropped once, then warmed again by the launches alone: a launch right
            # after a drop reads its files from disk (native: 3x slower here)
            drop_caches()
            solo = sorted(self.alone() for _ in range(SOLO_LAUNCHES))
            target = tags["latency_target_s"] = factor * solo[len(solo) // 2]
            before = mem_available()
            with ExitStack() as up:
                for n in range(1, cap + 1):
                    try:
                        self.check_floor(1, n, n - 1)
                        inst, ready_s, _ = self.launch_ready(up)
                    except BelowFloor as exc:
                        rule, why = "memory floor", str(exc)
                        break
                    except Exception as exc:
                        if n == 1:  # not a limit: the runtime does not work
                            self.session.fail(self.cell.name)
                        rule, why = "launch failed", f"launch {n}: {type(exc).__name__}: {exc}"
                        break
                    instances.append(inst)
                    values = self.memory_values(instances, before, n, drop=False)
                    self.learn(values)
                    self.save(rep, {**tags, "n": n, "k": n},
                              Value("density.kth_ready_s", ready_s, "s"), *values)
                    slow = slow + [ready_s] if ready_s > target else []
                    if len(slow) == SLOW_IN_A_ROW:
                        rule, why = "latency", (
                            f"instances {n - 1} and {n} READY in "
                            + " and ".join(f"{s:.3f}" for s in slow)
                            + f" s, over {factor:g}x the {target / factor:.3f} s alone")
                        del instances[-SLOW_IN_A_ROW:]
                        break
                    if n % 8 == 0:
                        say(f"  {self.spec.name}: {n} up, the last READY in {ready_s:.3f} s")
        except Exception as exc:  # alone, or reading memory: not a limit, a failure
            self.session.fail(self.cell.name)
            rule, why = "launch failed", f"{type(exc).__name__}: {exc}"
        except KeyboardInterrupt as exc:
            self.save(rep, {**tags, "stop_rule": "interrupted",
                            "stop_reason": f"interrupted ({exc or 'Ctrl-C'})"},
                      Value("density.reached_n", len(instances), "1"))
            raise
        self.save(rep, {**tags, "stop_rule": rule, "stop_reason": why},
                  Value("density.reached_n", len(instances), "1"))
        say(f"  {self.spec.name} rep {rep}: reached N={len(instances)}, stopped by {rule}: {why}")

    def alone(self) -> float:
        """READY seconds of one instance launched with nothing else of the run up."""
        with ExitStack() as up:
            return self.launch_ready(up)[1]

    # -- one after the other, then memory with all N up ---------------------------------

    def sequential(self, n: int, rep: int) -> None:
        drop_caches()
        before = mem_available()
        with ExitStack() as up:
            instances = []
            for k in range(1, n + 1):
                self.check_floor(1, n, k - 1)
                inst, ready_s, _ = self.launch_ready(up)
                instances.append(inst)
                self.save(rep, {"n": n, "k": k}, Value("density.kth_ready_s", ready_s, "s"))
            time.sleep(SETTLE_S)
            values = self.memory_values(instances, before, n)
            self.save(rep, {"n": n}, *values)
            shown = {v.metric: v.value for v in values}
            per = {view: quantity(shown.get(f"density.{metric}_per_instance_bytes"), "bytes")
                   for view, metric in (("MemAvailable", "mem_available_drop"), ("PSS", "pss"),
                                        ("cgroup", "cgroup"))}
            say(f"  {self.spec.name} N={n} rep {rep}: per instance "
                + ", ".join(f"{value} ({view})" for view, value in per.items()))
            self.learn(values)
        # Other processes on the host move MemAvailable too: the drift over the whole step,
        # read once the instances are gone, says how far the first view can be trusted.
        drop_caches()
        self.save(rep, {"n": n}, Value("density.background_drift_bytes",
                                       before - mem_available(), "bytes"))

    @staticmethod
    def memory_values(instances, before: int, n: int, drop: bool = True) -> list[Value]:
        pids, working_set = set(), 0
        for inst in instances:
            pids |= inst.host_pids()
            working_set += inst.cgroup.memory().working_set if inst.cgroup else 0
        mem = memory_of(pids)
        if drop:
            drop_caches()
        after = mem_available()
        return [
            Value("density.mem_available_drop_per_instance_bytes", (before - after) / n, "bytes"),
            Value("density.pss_per_instance_bytes", None if mem is None else mem.pss / n, "bytes",
                  None if mem is not None else "no process of the instances could be read"),
            Value("density.cgroup_per_instance_bytes", working_set / n, "bytes"),
            Value("density.host_processes", len(pids), "1"),
        ]

    # -- all N at once -----------------------------------------------------------------

    def concurrent(self, n: int, rep: int) -> None:
        self.check_floor(n, n, 0)
        with ExitStack() as up:
            t0, results = self.launch_together(up, n)
            t_end = time.monotonic()
        last_ready = max(r[2] for r in results)
        self.save(rep, {"n": n}, Value("density.all_ready_s", last_ready - t0, "s"),
                  Value("density.concurrent_ready_median_s", sorted(r[1] for r in results)[n // 2], "s"))
        say(f"  {self.spec.name} N={n} rep {rep}: all {n} ready together in "
            f"{last_ready - t0:.2f} s (wall {t_end - t0:.2f} s with teardown wait)")

    def launch_together(self, up: ExitStack, n: int) -> tuple[float, list]:
        """n instances launched at the same moment, a thread each through the runtime's own
        API, held by up: (the moment, [(instance, ready seconds, READY time)])."""
        names = [self.session.instance_name() for _ in range(n)]
        results: list = [None] * n
        go, cancel, entering = threading.Event(), threading.Event(), threading.Lock()

        def start(i: int) -> None:
            go.wait()
            if cancel.is_set():
                return
            try:
                results[i] = self.launch_ready(up, names[i], entering, cancel)
            except BaseException as exc:  # reported below, in the main thread
                results[i] = exc

        threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        try:
            go.set()
            for t in threads:
                t.join()
        except BaseException:
            # A Ctrl-C: no more launches; the instances up are removed at once, which ends
            # their threads' wait for READY; a launch under way finishes and is held, so
            # the stack removes it too, after.
            cancel.set()

            def stop() -> None:
                with entering:
                    up.close()
                for t in threads:
                    t.join(self.session.scenario.timeout_s)
            ignore_signals_during(stop)
            raise
        failed = [r for r in results if not isinstance(r, tuple)]
        if failed:
            raise RuntimeFailure(f"{len(failed)} of {n} concurrent launches failed: {failed[0]}")
        return t0, results

    # -- helpers -----------------------------------------------------------------------

    def launch_ready(self, up: ExitStack, name: str | None = None, entering=None,
                     cancel: threading.Event | None = None):
        """One idle instance, held by up until it closes, READY: (instance, ready seconds,
        READY time). entering: a lock when threads share up; they launch in parallel and
        only hand their instance over one at a time. cancel: set on a Ctrl-C, no READY is
        waited for once it is."""
        running = self.runtime.running(self.command, self.limits, name or self.session.instance_name())
        inst = running.__enter__()  # as ExitStack.enter_context, its exit pushed below
        with entering or nullcontext():
            up.push(running.__exit__)
        if cancel is not None and cancel.is_set():
            raise RuntimeFailure(f"{inst.name}: cancelled")
        ready = inst.wait_ready(self.session.scenario.timeout_s)
        return inst, ready.t - inst.t_launch, ready.t

    def learn(self, values: list[Value]) -> None:
        """What the next instance may take: what one was seen to take, with a margin, but
        never beyond the limit."""
        seen = [v.value for v in values if v.value and v.value > 0 and v.metric in (
            "density.mem_available_drop_per_instance_bytes", "density.pss_per_instance_bytes")]
        if seen:
            self.estimate = min(self.estimate, 2 * max(seen))

    def check_floor(self, more: int, n: int, running: int) -> None:
        available = mem_available()
        if available - more * self.estimate < self.floor:
            raise BelowFloor(
                f"N={n}: {running} instances up, MemAvailable {available / MiB:.0f} MiB; "
                f"{more} more at up to {self.estimate / MiB:.0f} MiB each would go below the "
                f"floor of {self.floor / MiB:.0f} MiB")
