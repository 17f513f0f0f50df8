"""The metric registry: what each metric means (DESIGN.md §3, §6).

One entry per metric name holds its unit, which way is better, whether a change of it can
fail the gate, an absolute noise floor, a label for people, and whether the report's
summary table shows it. The gate (compare.py) and the report read direction, gating,
floors, labels and key metrics from here only.

Who registers (with bench/meaning.py):
- the metrics every instance or mode records (startup.*, mem.*, cpu.*, kernel.*,
  density.*, storage.*, alloc.*, aggressor.*) are registered below: their producers
  (measure, modes) are measurement code that need not know what the gate makes of them;
- workload metrics are declared by the parsers that emit them (toolparsers.py) and
  registered by the workload catalogue (workloads.py);
- each runtime kind's startup phases come from its traits (bench/runtimes/).
This module imports them all, so what it answers is complete.

A name nobody registered (a run recorded by an older or newer cvbench) is guessed from
its name by guess(), here and nowhere else, with the rules the gate used before this
registry existed, so old runs are judged as they always were.
"""

from __future__ import annotations

from bench import workloads  # noqa: F401  (importing the catalogue registers its metrics)
from bench.meaning import (HIGHER, LOWER, MetricInfo, higher, lower, neither, register,
                           registered)
from bench.runtimes import phase_labels

__all__ = ["HIGHER", "LOWER", "MetricInfo", "guess", "key_metrics", "lookup", "registered"]


def lookup(name: str) -> MetricInfo:
    """The metric's meaning; for a name nobody registered, guess(name)."""
    return registered().get(name) or guess(name)


def guess(name: str) -> MetricInfo:
    """An unregistered metric, read from its name as the gate did before the registry:
    an aggressor's side is not judged; a name ending in _per_s is a rate (higher is
    better); startup, memory and CPU, and names ending in _s or _bytes, are costs (lower
    is better); anything else is not a performance metric."""
    unit = "s" if name.endswith("_s") else "bytes" if name.endswith("_bytes") else ""
    if name.startswith("aggressor."):
        return neither(name, unit, name)
    if name.endswith("_per_s"):
        return higher(name, "1/s", name)
    if name.startswith(("startup.", "mem.", "cpu.")) or name.endswith(("_s", "_bytes")):
        return lower(name, unit, name)
    return neither(name, unit, name)


def key_metrics() -> list[MetricInfo]:
    """The rows of the report's summary table: every instance's first, then the others in
    the order registered."""
    ordered = {info.name: info for info in (*EVERY_INSTANCE, *registered().values())}
    return [info for info in ordered.values() if info.key]


# -- the metrics every instance records (measure) --------------------------------------------

EVERY_INSTANCE = register(
    lower("startup.ready_s", "s", "launch call to READY on the host", key=True),
    lower("startup.exit_s", "s", "launch call to the instance gone", key=True),
    # when the agent (the instance's first process, a VM's init) began
    lower("startup.agent_start_s", "s", "launch call to the agent's start (host clock; an "
          "instance on the host's kernel)"),
    # A bare process's fence (cgroup, private read-only root), made before its clock starts
    lower("startup.prepare_s", "s", "cgroup and mounts made for a native instance before "
          "its clock starts", gated=False),
    lower("startup.guest_kernel_s", "s", "guest kernel boot until the agent (init) starts "
          "(guest clock)"),
    lower("mem.cgroup_bytes", "bytes", "cgroup working set", key=True),
    lower("mem.cgroup_peak_bytes", "bytes", "cgroup peak usage"),
    lower("mem.pss_bytes", "bytes", "PSS of host processes", key=True),
    lower("mem.pss_peak_bytes", "bytes", "peak PSS of host processes"),
    lower("mem.uss_bytes", "bytes", "USS of host processes"),
    lower("mem.rss_bytes", "bytes", "RSS of host processes"),
    lower("cpu.seconds", "s", "CPU time of the instance's cgroup", key=True),
    lower("cpu.engine_seconds", "s", "CPU the engine spent for the instance, outside its cgroup"),
    lower("cpu.total_seconds", "s", "CPU time of the instance and its engine"),
    neither("kernel.shared_with_host", "1", "runs on the host's kernel (1) or its own (0)"),
    neither("workload.exit_code", "1", "the workload's exit code"),
    # Derived by the runner wherever a workload counts events: CPU per unit of work
    lower("workload.cpu_s_per_kevent", "s", "CPU seconds per 1000 events"),
)

# -- density, storage, allocation, isolation (the modes) -------------------------------------

register(
    higher("density.reached_n", "1", "instances started before the host's memory floor"),
    lower("density.kth_ready_s", "s", "startup of the k-th instance beside k-1 running"),
    lower("density.all_ready_s", "s", "launch of N instances at once to the last READY"),
    lower("density.concurrent_ready_median_s", "s", "median startup of N instances at once"),
    lower("density.mem_available_drop_per_instance_bytes", "bytes",
          "host MemAvailable drop per instance"),
    lower("density.pss_per_instance_bytes", "bytes", "PSS per instance, summed over N"),
    lower("density.cgroup_per_instance_bytes", "bytes", "cgroup working set per instance"),
    neither("density.host_processes", "1", "host processes of the N instances"),
    neither("density.background_drift_bytes", "bytes", "MemAvailable drift with nothing started"),
    lower("burst.ready_s", "s", "startup of one of K instances launched at once"),
    lower("burst.all_ready_s", "s", "launch of K instances at once to the last READY"),
    higher("burst.launches_per_s", "1/s", "instances READY per second in a burst of K"),
    lower("burst.manager_cpu_per_launch_s", "s", "manager CPU per launch in a burst of K"),
    lower("startup.restore_s", "s", "restore call to READY (warm start from a snapshot)"),
    lower("startup.incoming_s", "s", "loading a VM's saved state until it runs"),
    lower("warm.snapshot_s", "s", "launch of an awaiting instance to its snapshot saved"),
    lower("warm.snapshot_bytes", "bytes", "a snapshot's size on the host's disk"),
    lower("warm.pss_after_ready_bytes", "bytes", "PSS of host processes right after READY"),
    lower("warm.cgroup_after_ready_bytes", "bytes", "cgroup working set right after READY"),
    lower("storage.instance_disk_bytes", "bytes", "disk an idle instance adds"),
    lower("storage.instance_disk_after_write_bytes", "bytes", "instance disk after the writes"),
    lower("storage.first_write_s", "s", "first write into an image file"),
    lower("storage.second_write_s", "s", "second write into the same file"),
    # The full copy a VM would need without sharing: the host's disk, not the instance's
    lower("storage.full_copy_bytes", "bytes", "a full copy of the image's disk", gated=False),
    lower("storage.full_copy_s", "s", "time to copy the image's disk in full", gated=False),
    lower("alloc.pss_bytes", "bytes", "PSS of the instance (allocation phase)"),
    lower("alloc.cgroup_bytes", "bytes", "cgroup working set (allocation phase)"),
    neither("alloc.paid_fraction", "1", "PSS over the memory given"),
    # The aggressor's side of an isolation run: what the neighbour did, not the victim
    neither("aggressor.running", "1", "aggressor still running at the victim's end"),
    neither("aggressor.cpu_seconds", "s", "CPU the aggressor got"),
    neither("aggressor.oom_kills", "1", "OOM kills in the aggressor"),
    neither("aggressor.host_processes", "1", "host processes of the aggressor"),
)

# -- each runtime kind's startup phases --------------------------------------------------------

register(*(lower(metric, "s", label) for metric, label in phase_labels().items()))
