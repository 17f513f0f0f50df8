"""Density (mode = "density"): N idle instances of one runtime side by side, for each N of
the scenario's `counts`, and what each costs the host, three ways (DESIGN.md §7):

- host MemAvailable drop divided by N, page cache dropped before and after (gVisor's way);
- PSS summed over the N instances' host processes (shims, sandboxes, VMMs) divided by N
  (Kata's way): shared pages are split among their sharers, so the sum is the true total;
- cgroup working set per instance (usage less inactive file cache).

Also the startup latency of the k-th instance as instances pile up (launched one after the
other), and the time to start all N at once (one thread per instance, launched together).

Before every launch the host's MemAvailable is checked against `memory_floor_mib` plus what
the next instance may take; when it would fall below, the runtime stops there, says so, and
records what it reached (density.reached_n with the reason) rather than let the OOM killer
choose a victim. Every instance is in the run's Cleanup from its launch on.
"""

from __future__ import annotations

import threading
import time

from bench.cleanup import ignore_signals_during
from bench.collect.processes import memory_of
from bench.errors import RuntimeFailure
from bench.modes import drop_caches, mem_available, record
from bench.runtimes import Limits

CELL = "density"
MiB = 2**20
IDLE_COMMAND = "sleep 86400"  # idles until the host removes it
SETTLE_S = 2.0  # after the last READY, before memory is read: let the guests quiet down


class BelowFloor(Exception):
    """Starting one more instance would take the host below the memory floor."""


def run_density(runner) -> None:
    scenario = runner.scenario
    specs = [s for s in scenario.runtimes if s.name in runner.runtimes]
    counts = sorted(set(scenario.counts))
    print(f"run {runner.run_id}: density, N in {counts}, {scenario.reps} reps over "
          f"{', '.join(s.name for s in specs)}; memory floor {scenario.memory_floor_mib} MiB "
          f"-> {runner.out_dir}", flush=True)
    for spec in specs:
        Density(runner, spec).run(counts)


class Density:
    def __init__(self, runner, spec):
        self.runner = runner
        self.spec = spec
        self.runtime = runner.runtimes[spec.name]
        scenario = runner.scenario
        self.limits = Limits(scenario.cpus, scenario.memory_mib)
        self.floor = scenario.memory_floor_mib * MiB
        # Until measured, the next instance may take all it is allowed (a VM: guest + VMM).
        headroom = spec.options.get("memory_headroom_mib", 0) if spec.kind == "qemu" else 0
        self.estimate = (scenario.memory_mib + headroom) * MiB
        self.tags = {"cpus": scenario.cpus, "memory_mib": scenario.memory_mib,
                     "memory_floor_mib": scenario.memory_floor_mib, **self.runtime.tags()}

    def rec(self, rep: int, tags: dict, metric: str, value, unit: str, error=None):
        return record(self.runner, CELL, self.spec, rep, {**self.tags, **tags}, metric, value,
                      unit, error)

    def run(self, counts: list[int]) -> None:
        reached, reason = 0, None
        try:
            for n in counts:
                for rep in range(self.runner.scenario.reps):
                    self.sequential(n, rep)
                    self.concurrent(n, rep)
                reached = n
        except BelowFloor as exc:
            reason = str(exc)
            print(f"  {self.spec.name}: stopped: {reason}", flush=True)
        except Exception as exc:  # an engine error: this runtime stops, the run goes on
            reason = f"an instance failed: {type(exc).__name__}: {exc}"
            self.runner.failed_cells.add(f"{CELL}@{self.spec.name}")
            print(f"  {self.spec.name}: failed: {reason[:300]}", flush=True)
        except KeyboardInterrupt as exc:  # say how far it got, then let the run clean up
            self.runner.store.append([self.rec(0, {"stop_reason": f"interrupted ({exc or 'Ctrl-C'})"},
                                               "density.reached_n", reached, "1")])
            raise
        self.runner.store.append([self.rec(0, {"stop_reason": reason}, "density.reached_n",
                                           reached, "1")])

    # -- one after the other, then memory with all N up ---------------------------------

    def sequential(self, n: int, rep: int) -> None:
        drop_caches()
        before = mem_available()
        instances = []
        try:
            for k in range(1, n + 1):
                self.check_floor(1, n, k - 1)
                inst, ready_s, _ = self.launch_ready()
                instances.append(inst)
                self.runner.store.append([self.rec(rep, {"n": n, "k": k}, "density.kth_ready_s",
                                                   ready_s, "s")])
            time.sleep(SETTLE_S)
            records = self.memory_records(instances, before, n, rep)
            self.runner.store.append(records)
            shown = {r.metric: r.value for r in records}
            print(f"  {self.spec.name} N={n} rep {rep}: per instance "
                  f"{_mib(shown.get('density.mem_available_drop_per_instance_bytes'))} (MemAvailable), "
                  f"{_mib(shown.get('density.pss_per_instance_bytes'))} (PSS), "
                  f"{_mib(shown.get('density.cgroup_per_instance_bytes'))} (cgroup)", flush=True)
            estimate = max(v for v in (shown.get("density.mem_available_drop_per_instance_bytes"),
                                       shown.get("density.pss_per_instance_bytes"), 0) if v)
            if estimate:  # what was seen, with a margin, but never beyond the limit
                self.estimate = min(self.estimate, 2 * estimate)
        finally:
            self.release(instances)
        # Other processes on the host move MemAvailable too: the drift over the whole step,
        # read once the instances are gone, says how far the first view can be trusted.
        drop_caches()
        self.runner.store.append([self.rec(rep, {"n": n}, "density.background_drift_bytes",
                                           before - mem_available(), "bytes")])

    def memory_records(self, instances, before: int, n: int, rep: int) -> list:
        tags = {"n": n}
        pids, working_set = set(), 0
        for inst in instances:
            pids.update(inst.cgroup.pids() if inst.cgroup else [])
            pids.update(inst.helper_pids())
            working_set += inst.cgroup.memory().working_set if inst.cgroup else 0
        mem = memory_of(pids)
        drop_caches()
        after = mem_available()
        return [
            self.rec(rep, tags, "density.mem_available_drop_per_instance_bytes",
                     (before - after) / n, "bytes"),
            self.rec(rep, tags, "density.pss_per_instance_bytes",
                     None if mem is None else mem.pss / n, "bytes",
                     None if mem is not None else "no process of the instances could be read"),
            self.rec(rep, tags, "density.cgroup_per_instance_bytes", working_set / n, "bytes"),
            self.rec(rep, tags, "density.host_processes", len(pids), "1"),
        ]

    # -- all N at once -----------------------------------------------------------------

    def concurrent(self, n: int, rep: int) -> None:
        self.check_floor(n, n, 0)
        names = [self.runner.instance_name() for _ in range(n)]
        results: list = [None] * n
        go = threading.Event()

        def start(i: int) -> None:
            go.wait()
            try:
                results[i] = self.launch_ready(names[i])
            except BaseException as exc:  # reported below, in the main thread
                results[i] = exc

        threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        go.set()
        try:
            for t in threads:
                t.join()
        finally:
            # A Ctrl-C lands here while threads may still be launching: let them finish,
            # so every instance they start is registered before the run's cleanup runs.
            ignore_signals_during(lambda: [t.join(self.runner.scenario.timeout_s) for t in threads])
            t_end = time.monotonic()
            self.release([r[0] for r in results if isinstance(r, tuple)])
        failed = [r for r in results if not isinstance(r, tuple)]
        if failed:
            raise RuntimeFailure(f"{len(failed)} of {n} concurrent launches failed: {failed[0]}")
        last_ready = max(r[2] for r in results)
        self.runner.store.append([
            self.rec(rep, {"n": n}, "density.all_ready_s", last_ready - t0, "s"),
            self.rec(rep, {"n": n}, "density.concurrent_ready_median_s",
                     sorted(r[1] for r in results)[n // 2], "s"),
        ])
        print(f"  {self.spec.name} N={n} rep {rep}: all {n} ready together in "
              f"{last_ready - t0:.2f} s (wall {t_end - t0:.2f} s with teardown wait)", flush=True)

    # -- helpers -----------------------------------------------------------------------

    def launch_ready(self, name: str | None = None):
        """Launch one idle instance and wait for READY: (instance, ready seconds, READY time)."""
        inst = self.runtime.launch(IDLE_COMMAND, self.limits, name or self.runner.instance_name())
        ready = inst.lines.wait_for("READY", inst.t_launch + self.runner.scenario.timeout_s)
        return inst, ready.t - inst.t_launch, ready.t

    def release(self, instances) -> None:
        for inst in instances:
            self.runner.cleanup.release(inst.cleanup_token if not isinstance(inst, tuple)
                                        else inst[0].cleanup_token)

    def check_floor(self, more: int, n: int, running: int) -> None:
        available = mem_available()
        if available - more * self.estimate < self.floor:
            raise BelowFloor(
                f"N={n}: {running} instances up, MemAvailable {available / MiB:.0f} MiB; "
                f"{more} more at up to {self.estimate / MiB:.0f} MiB each would go below the "
                f"floor of {self.floor / MiB:.0f} MiB")


def _mib(value) -> str:
    return "n/a" if value is None else f"{value / MiB:.1f} MiB"
