"""Verdicts on the claims cvbench exists to check (DESIGN.md §1): pure functions, no I/O.

Each claim gets one of five verdicts, and the numbers behind it. A claim is
"supported" or "contradicted" only where the bootstrap 95% CI of a ratio of
medians excludes 1.0, every runtime class the claim names was measured, and each
side has at least MIN_N_CLAIM instances: a percentile bootstrap from 3 values
covers the truth about 90% of the time, from 5 about 95% (DESIGN.md §7). Fewer
make it "inconclusive" (n too small), and so does a ratio whose interval includes
1.0. A VM that ran emulated (TCG) says nothing about a VM on KVM: such a claim is
at most "indicative". A claim the run has no records for is "not measured", with
the scenario that would measure it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench import stats
from bench.metrics import lookup
from bench.report import isolation
from bench.results import aggressor_column
from bench.runtimes import traits_of
from bench.report.data import (
    complete,
    emulated_runtimes,
    in_order,
    interval,
    map_distinct,
    measured,
    memory_workload,
    runtime_label,
)
from bench.units import MiB, quantity
from bench.workloads import STARTUP_PROBE, names_with_role, with_role

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
INDICATIVE = "indicative"
NOT_MEASURED = "not measured"

MIN_N_CLAIM = 5  # measured instances per side before a claim can be supported or contradicted

# The two sides of the container/VM claims, as the runtimes' traits name them
CONTAINER, VM = "container", "VM"

LAB_NOTE = ("Lab run: every runtime ran inside a VM emulated by QEMU TCG (its KVM nested "
            "under that emulation), so the numbers show that each path works, not how fast it is.")
EMULATED_NOTE = "VM emulated: the VM side measures emulation (QEMU TCG), not a VM on KVM."
OWN_KERNEL_NOTE = "gVisor (runsc) or Kata"
PSS_VIEW = "PSS of the instance's host processes, shims, sandbox and VMM included"
BASE_SCENARIOS = "scenarios/smoke.toml or scenarios/default.toml"


@dataclass(frozen=True)
class Comparison:
    """median(metric of runtime) / median(metric of reference), with the ratio's 95% CI."""

    runtime: str
    reference: str
    metric: str
    workload: str
    median: float
    reference_median: float
    n: int
    reference_n: int
    ratio: stats.Ratio

    def describe(self) -> str:
        unit = lookup(self.metric).unit
        ci = interval(self.ratio.ci_low, self.ratio.ci_high, self.ratio.n, lambda v: f"{v:.3g}")
        return (f"{self.runtime} / {self.reference}: {self.ratio.ratio:.3g}× {ci}; medians "
                f"{quantity(self.median, unit)} vs {quantity(self.reference_median, unit)} "
                f"(n {self.n} vs {self.reference_n}; {self.metric}, {self.workload})")


@dataclass(frozen=True)
class Verdict:
    claim: str
    status: str
    reason: str
    comparisons: tuple[Comparison, ...] = ()
    notes: tuple[str, ...] = ()  # observations that are not ratios: kernels seen, slopes

    def numbers(self) -> list[str]:
        return [c.describe() for c in self.comparisons] + list(self.notes)


def all_verdicts(frame: pd.DataFrame, environment: dict | None = None) -> list[Verdict]:
    """One verdict per claim, in the order of DESIGN.md §1."""
    frame = complete(frame)
    environment = environment or {}
    emulated = emulated_runtimes(frame, environment)
    alone = frame[aggressor_column(frame) == ""]  # all but isolation: instances that ran alone
    found = [
        startup_verdict(alone, emulated),
        memory_verdict(alone, emulated),
        cpu_verdict(alone, emulated),
        kernel_verdict(alone, environment, emulated),
        allocation_verdict(alone, emulated),
        isolation_verdict(frame, emulated),
        storage_verdict(alone),
    ]
    if (environment.get("host") or {}).get("host_shape") == "lab":
        return [_in_lab(v) for v in found]
    return found


def _in_lab(verdict: Verdict) -> Verdict:
    """The lab runs everything under emulation: it shows paths work, never which is faster."""
    if verdict.status not in (SUPPORTED, CONTRADICTED):
        return verdict
    return Verdict(verdict.claim, INDICATIVE, f"{verdict.status} in the lab only: {verdict.reason} "
                   f"{LAB_NOTE}", verdict.comparisons, verdict.notes)


def table(verdicts: list[Verdict]) -> pd.DataFrame:
    """The verdicts as a frame, one row per claim (for notebooks)."""
    return pd.DataFrame([{"claim": v.claim, "verdict": v.status, "reason": v.reason,
                          "numbers": "\n".join(v.numbers())} for v in verdicts])


# -- a, b, c: a container costs less than a VM -----------------------------------------------


def startup_verdict(frame: pd.DataFrame, emulated: set[str]) -> Verdict:
    rows = _metric_rows(frame, "startup.ready_s")
    probe, name = _startup_probe(rows)
    # the probe starts and stops and does nothing else; without it, pool what there is
    rows, workload = (probe, name) if _both_sides_have(probe) else (rows, "all workloads pooled")
    return _container_vs_vm_verdict("Containers start faster than VMs", frame, rows,
                                    "startup.ready_s", workload,
                                    "time from launch to READY", emulated,
                                    f"{BASE_SCENARIOS} run containers and a VM")


def memory_verdict(frame: pd.DataFrame, emulated: set[str]) -> Verdict:
    claim = "Containers use less memory per instance than VMs"
    rows = _metric_rows(frame, "mem.pss_bytes")
    workload = _longest_lived_workload_of_both_sides(rows)
    hint = f"{BASE_SCENARIOS} run containers and a VM"
    density = _metric_rows(frame, "density.pss_per_instance_bytes")
    if workload is None and _both_sides_have(density):
        # scenarios/density.toml: PSS summed over N idle instances / N (shared pages split
        # among the instances, as on a real host); every N pooled, so one repetition per N
        # still gives more than one value per side.
        return _container_vs_vm_verdict(claim, frame, density, "density.pss_per_instance_bytes",
                                        "density, all N pooled",
                                        f"memory per idle instance ({PSS_VIEW}, summed over N "
                                        "and divided by N)", emulated, hint)
    if workload is None:
        return _not_measured(claim, rows, "mem.pss_bytes", "a workload both ran", hint)
    return _container_vs_vm_verdict(claim, frame, rows[rows["workload"] == workload],
                                    "mem.pss_bytes", workload, f"memory ({PSS_VIEW})", emulated,
                                    hint)


def cpu_verdict(frame: pd.DataFrame, emulated: set[str]) -> Verdict:
    """On the startup probe (noop): the CPU it costs to start and stop an instance, and
    nothing else. A container is charged what its engine spent for it too
    (cpu.total_seconds), which its own cgroup does not see; runs recorded before that
    metric are judged on the cgroup alone and say so."""
    claim = "Containers use less CPU per instance than VMs"
    hint = (f"the {' or '.join(names_with_role(STARTUP_PROBE))} workload of {BASE_SCENARIOS} "
            "measures it")
    total = _metric_rows(frame, "cpu.total_seconds")
    if not total.empty:
        rows, name = _startup_probe(total)
        verdict = _container_vs_vm_verdict(claim, frame, rows, "cpu.total_seconds", name,
                                           "CPU time to start and stop (the instance's cgroup, "
                                           "and for containers the engine's CPU for it)",
                                           emulated, hint)
        shared = _engine_shared(rows)
        return replace(verdict, notes=verdict.notes + shared) if shared else verdict
    rows, name = _startup_probe(_metric_rows(frame, "cpu.seconds"))
    verdict = _container_vs_vm_verdict(claim, frame, rows, "cpu.seconds", name,
                                       "CPU time to start and stop (cpu.seconds)", emulated, hint)
    return replace(verdict, notes=verdict.notes + ("the engine's CPU (dockerd, containerd, shims) "
                                                   "was not recorded: containers look cheaper "
                                                   "than they are",))


def _startup_probe(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """rows of the workloads that only start and stop (noop), and their names."""
    probes = with_role(in_order(rows["workload"]), STARTUP_PROBE) if not rows.empty else []
    names = probes or names_with_role(STARTUP_PROBE)  # named even where it did not run
    return rows[rows["workload"].isin(probes)], ", ".join(names)


def _engine_shared(rows: pd.DataFrame) -> tuple[str, ...]:
    """A note per runtime whose engine also ran other containers while an instance lived: its
    engine CPU is then an upper bound, not this instance's alone."""
    if "tag.engine_other_containers" not in rows:
        return ()
    busy = rows[rows["tag.engine_other_containers"].fillna(0).astype(float) > 0]
    return tuple(f"{runtime}: in {count} of {len(rows[rows['runtime'] == runtime])} instances "
                 "the engine also ran other containers (its CPU is not this instance's alone)"
                 for runtime, count in busy.groupby("runtime").size().items())


def _container_vs_vm_verdict(claim: str, frame: pd.DataFrame, rows: pd.DataFrame, metric: str,
                             workload: str, what: str, emulated: set[str],
                             not_measured_hint: str) -> Verdict:
    """Supported when every container/VM ratio of medians is below 1 with 95% confidence.

    rows hold one metric on the workload compared; frame is the whole run, to name the
    container and VM runtimes that left no value there (all failed, or not sampled).
    """
    comparisons = [_compare(_values(rows, container), _values(rows, vm),
                            runtime_label(container, emulated), runtime_label(vm, emulated),
                            metric, workload)
                   for container in runtimes_on_side(rows, CONTAINER)
                   for vm in runtimes_on_side(rows, VM)]
    if not comparisons:
        return _not_measured(claim, rows, metric, workload, not_measured_hint)
    below = [c for c in comparisons if c.ratio.ci_high < 1]
    above = [c for c in comparisons if c.ratio.ci_low > 1]
    if len(below) == len(comparisons):
        status, reason = SUPPORTED, (f"every container/VM ratio of {what} is below 1 with 95% "
                                     "confidence.")
    elif above:
        status, reason = CONTRADICTED, (f"the container costs more {what} than the VM for "
                                        f"{_pairs(above)} (ratio CI above 1).")
    elif no_interval := [c for c in comparisons if math.isnan(c.ratio.ci_low)]:
        status, reason = INCONCLUSIVE, (f"{what} measured, but too few values for a 95% CI of "
                                        f"the ratio for {_pairs(no_interval)}.")
    else:
        unclear = [c for c in comparisons if c not in below]
        status, reason = INCONCLUSIVE, (f"measured, but the 95% CI of the ratio includes 1 (no "
                                        f"difference shown) for {_pairs(unclear)}.")
    left_out = [r for r in runtimes_on_side(frame, CONTAINER) + runtimes_on_side(frame, VM)
                if r not in set(rows["runtime"])]
    notes = tuple(f"{r}: no {metric} value on {workload}" for r in left_out)
    smallest = min(min(c.n, c.reference_n) for c in comparisons)
    return _settled(Verdict(claim, status, reason, tuple(comparisons), notes), smallest,
                    _vm_emulated(rows, emulated))


def _not_measured(claim: str, rows: pd.DataFrame, metric: str, where: str, hint: str) -> Verdict:
    sides = [side for side in (CONTAINER, VM) if not runtimes_on_side(rows, side)] \
        or ["container and VM"]
    return Verdict(claim, NOT_MEASURED, f"not measured: no {' or '.join(sides)} value of "
                   f"{metric} on {where} in this run; {hint}.")


def _compare(values, reference_values, runtime: str, reference: str, metric: str,
             workload: str) -> Comparison:
    values = np.asarray(values, float)
    reference_values = np.asarray(reference_values, float)
    return Comparison(runtime, reference, metric, workload, float(np.median(values)),
                      float(np.median(reference_values)), len(values), len(reference_values),
                      stats.ratio_ci(values, reference_values))


def _values(rows: pd.DataFrame, runtime: str) -> np.ndarray:
    return rows.loc[rows["runtime"] == runtime, "value"].to_numpy(float)


def _longest_lived_workload_of_both_sides(rows: pd.DataFrame) -> str | None:
    """The memory workload (data.memory_workload) among those a container and a VM both have.

    A VM whose longest workload failed still has a footprint on the others; comparing
    there beats not comparing at all, and the comparison names its workload.
    """
    shared = [w for w in in_order(rows["workload"])
              if _both_sides_have(rows[rows["workload"] == w])]
    return memory_workload(rows[rows["workload"].isin(shared)]) if shared else None


# -- d: who shares the host's kernel -----------------------------------------------------------


def kernel_verdict(frame: pd.DataFrame, environment: dict, emulated: set[str] = frozenset()) -> Verdict:
    claim = "Containers share the host kernel; VMs and gVisor do not"
    rows = _metric_rows(frame, "kernel.shared_with_host")
    if rows.empty:
        return Verdict(claim, NOT_MEASURED, "not measured: the records have no "
                       "kernel.shared_with_host (runs made before cvbench recorded it); any "
                       f"scenario measures it, e.g. {BASE_SCENARIOS}.")
    host_kernel = (environment.get("host") or {}).get("kernel") or "not recorded"
    notes, unexpected, classes, instances = [], [], {}, {}
    for runtime in in_order(rows["runtime"]):
        mine = rows[rows["runtime"] == runtime]
        expected = _expects_host_kernel(mine, runtime, environment)
        seen = set(mine["value"])
        releases = in_order(mine["tag.kernel_release"]) if "tag.kernel_release" in mine else []
        if seen != {1.0 if expected else 0.0}:
            unexpected.append(runtime)
        kind = mine["kind"].iloc[0]
        if _side(kind) is not None:  # a bare process is the host itself
            classes.setdefault(_kernel_class(kind, expected), []).append(runtime)
            # repetitions of one cell: instances of different workloads are one look each
            instances[runtime] = int(mine.groupby("workload").size().max())
        notes.append(f"{runtime}: {_kernel_observation(seen)} in {len(mine)} instances, kernel "
                     f"{', '.join(map(str, releases)) or 'not recorded'} (expected: "
                     f"{'the host kernel' if expected else 'its own kernel'})")
    notes.append(f"host kernel: {host_kernel}")
    missing = [name for name in KERNEL_CLASSES if name not in classes]
    if missing:
        return Verdict(claim, NOT_MEASURED, f"not measured: this run has no {' and no '.join(missing)} "
                       f"runtime; {BASE_SCENARIOS} run all of them.", notes=tuple(notes))
    if unexpected:
        status, reason = CONTRADICTED, (f"{', '.join(unexpected)} did not run on the kernel "
                                        "expected of its kind.")
    else:
        status, reason = SUPPORTED, "every runtime ran on the kernel expected of its kind."
    return _settled(Verdict(claim, status, reason, notes=tuple(notes)), min(instances.values()),
                    _vm_emulated(rows, emulated))


# The runtime classes the kernel claim names, by kind and the kernel expected of it
KERNEL_CLASSES = ("container", "gVisor", "VM")


def _kernel_class(kind: str, expects_host_kernel: bool) -> str:
    if _side(kind) == VM:
        return "VM"
    return "container" if expects_host_kernel else "gVisor"


def _expects_host_kernel(rows: pd.DataFrame, runtime: str, environment: dict) -> bool:
    """What the runtime's traits say, with the options it ran with (its OCI runtime)."""
    options = dict((environment.get("runtimes") or {}).get(runtime) or {})
    if oci := _first_tag(rows, "oci_runtime"):
        options["oci_runtime"] = oci
    traits = traits_of(rows["kind"].iloc[0], options)
    return traits is not None and traits.shares_host_kernel


def _kernel_observation(seen: set[float]) -> str:
    if seen == {1.0}:
        return "host kernel"
    if seen == {0.0}:
        return "own kernel"
    return "host kernel in some instances, own kernel in others"


# -- e: a VM pays for what it is given, a container for what it uses ---------------------------


def allocation_verdict(frame: pd.DataFrame, emulated: set[str]) -> Verdict:
    """PSS at the largest memory_mib over PSS at the smallest, per runtime.

    A VM's guest touches its RAM as it boots, so its footprint should grow with the
    size it is given; a container's only with what its processes use.
    """
    claim = "A VM pays for the memory it is given, a container for what it uses"
    not_measured = Verdict(claim, NOT_MEASURED, "not measured: needs a container and a VM each "
                           "run with different memory_mib (scenarios/allocation.toml).")
    alloc = _metric_rows(frame, "alloc.pss_bytes")
    if not alloc.empty and "tag.phase" in alloc:
        return _retained_verdict(claim, alloc, emulated) or not_measured
    rows = _metric_rows(frame, "mem.pss_bytes")
    if rows.empty or "tag.memory_mib" not in rows:
        return not_measured
    rows = rows[(rows["workload"] == memory_workload(rows)) & rows["tag.memory_mib"].notna()]
    sizes = {r: sorted(set(mibs)) for r, mibs in rows.groupby("runtime")["tag.memory_mib"]}
    varied = {r: s for r, s in sizes.items() if len(s) > 1}
    containers = [r for r in runtimes_on_side(rows, CONTAINER) if r in varied]
    vms = [r for r in runtimes_on_side(rows, VM) if r in varied]
    if not containers or not vms:
        return not_measured
    growth = {r: _growth(rows, r, varied[r], emulated) for r in containers + vms}
    notes = tuple(_slope_note(rows, r, varied[r]) for r in containers + vms)
    lowest_vm = min(growth[v].ratio.ci_low for v in vms)
    vms_grow = all(growth[v].ratio.ci_low > 1 for v in vms)
    if vms_grow and all(growth[c].ratio.ci_high < lowest_vm for c in containers):
        status, reason = SUPPORTED, ("every VM's PSS grows with the memory it is given (CI above "
                                     "1), and more than any container's.")
    elif any(growth[c].ratio.ci_low > growth[v].ratio.ci_high for c in containers for v in vms):
        status, reason = CONTRADICTED, "a container's PSS grows more with its limit than a VM's."
    else:
        status, reason = INCONCLUSIVE, ("measured, but the 95% CIs of the growth ratios do not "
                                        "separate VMs from containers.")
    comparisons = tuple(growth[r] for r in containers + vms)
    smallest = min(min(c.n, c.reference_n) for c in comparisons)
    return _settled(Verdict(claim, status, reason, comparisons, notes), smallest,
                    _vm_emulated(rows, emulated))


def _retained_verdict(claim: str, rows: pd.DataFrame, emulated: set[str]) -> Verdict | None:
    """scenarios/allocation.toml: the share of the memory the guest touched and freed that the
    host still pays for afterwards, (PSS after - PSS idle) / touched, per instance. A VM's
    guest frees into its own free list and the host gets nothing back (about 1); a
    container's freed pages return to the host (about 0). Judged on the 95% CIs of the
    medians over all instances of a runtime (every size pooled)."""
    keys = ["runtime", "rep", "tag.memory_mib"]
    idle = rows[rows["tag.phase"] == "idle"].set_index(keys)["value"]
    after = rows[rows["tag.phase"] == "touched"].set_index(keys)
    if "tag.touch_mib" not in after or after.empty:
        return None
    retained = ((after["value"] - idle.reindex(after.index)) /
                (after["tag.touch_mib"].astype(float) * MiB)).dropna()
    per_runtime = {r: retained.xs(r, level="runtime").to_numpy(float)
                   for r in in_order(rows["runtime"]) if r in retained.index.get_level_values(0)}
    containers = [r for r in runtimes_on_side(rows, CONTAINER) if r in per_runtime]
    vms = [r for r in runtimes_on_side(rows, VM) if r in per_runtime]
    if not containers or not vms:
        return None
    summaries = {r: stats.summary(v) for r, v in per_runtime.items()}
    notes = tuple(f"{runtime_label(r, emulated)}: still pays for {s.median:.0%} "
                  f"[{s.ci_low:.0%}, {s.ci_high:.0%}] of the memory its guest touched and freed "
                  f"(n {s.n}, all sizes)" for r, s in summaries.items())
    lowest_vm = min(summaries[v].ci_low for v in vms)
    if all(summaries[c].ci_high < lowest_vm for c in containers) and lowest_vm > 0.5:
        status, reason = SUPPORTED, ("after the guest touched and freed memory every VM's host "
                                     "still pays for most of it, more than any container "
                                     "(95% CIs apart).")
    elif any(summaries[c].ci_low > summaries[v].ci_high for c in containers for v in vms):
        status, reason = CONTRADICTED, ("a container keeps more of the memory its process "
                                        "touched and freed than a VM.")
    else:
        status, reason = INCONCLUSIVE, ("measured, but the 95% CIs of what is kept after touch "
                                        "and free do not separate VMs from containers.")
    return _settled(Verdict(claim, status, reason, notes=notes),
                    min(summaries[r].n for r in containers + vms), _vm_emulated(rows, emulated))


def _growth(rows: pd.DataFrame, runtime: str, sizes: list, emulated: set[str]) -> Comparison:
    mine = rows[rows["runtime"] == runtime]
    small, large = sizes[0], sizes[-1]
    label = runtime_label(runtime, emulated)
    return _compare(mine.loc[mine["tag.memory_mib"] == large, "value"],
                    mine.loc[mine["tag.memory_mib"] == small, "value"],
                    f"{label} @ {large:g} MiB", f"{label} @ {small:g} MiB", mine["metric"].iloc[0],
                    f"{mine['workload'].iloc[0]}, memory_mib {small:g} -> {large:g}")


def _slope_note(rows: pd.DataFrame, runtime: str, sizes: list) -> str:
    medians = rows[rows["runtime"] == runtime].groupby("tag.memory_mib")["value"].median()
    slope = np.polyfit(np.array(sizes, float), medians.loc[sizes].to_numpy(float) / MiB, 1)[0]
    return f"{runtime}: {slope:+.2f} MiB of PSS per MiB given (least squares over medians)"


# -- f: isolation against a noisy neighbour ---------------------------------------------------


def isolation_verdict(frame: pd.DataFrame, emulated: set[str]) -> Verdict:
    """Per victim and aggressor, a VM's loss beside the aggressor against each container's
    (report/isolation.py). Supported where some VM loses less than a container with the two
    95% CIs apart and no container loses less than a VM that way; contradicted the other
    way round; inconclusive when the intervals overlap everywhere or point both ways."""
    claim = "VMs isolate better against noisy neighbours"
    found = isolation.losses(frame)
    sides = dict(zip(frame["runtime"], map_distinct(frame["kind"], _side)))
    containers = [x for x in found if sides.get(x.runtime) == CONTAINER]
    vms = [x for x in found if sides.get(x.runtime) == VM]
    if not containers or not vms:
        return Verdict(claim, NOT_MEASURED, "not measured: needs a container and a VM victim, "
                       "each alone and beside an aggressor (scenarios/isolation.toml).")
    vm_better, container_better = [], []
    for vm in vms:
        for box in (x for x in containers if (x.victim, x.aggressor) == (vm.victim, vm.aggressor)):
            pair = (f"{vm.victim} beside {vm.aggressor}: {vm.describe(emulated)} vs "
                    f"{box.describe(emulated)} lost")
            if vm.high < box.low:
                vm_better.append(pair)
            elif box.high < vm.low:
                container_better.append(pair)
    if vm_better and not container_better:
        status, reason = SUPPORTED, "where the losses differ (95% CIs apart), the VM lost less."
    elif container_better and not vm_better:
        status, reason = CONTRADICTED, "where the losses differ (95% CIs apart), a container lost less."
    elif vm_better:
        status, reason = INCONCLUSIVE, "the VM lost less beside some aggressors, more beside others."
    else:
        status, reason = INCONCLUSIVE, "measured, but no VM and container loss differ beyond their 95% CIs."
    notes = tuple(f"VM lost less: {p}" for p in vm_better) + \
        tuple(f"container lost less: {p}" for p in container_better)
    rows = frame[frame["runtime"].isin({x.runtime for x in found})]
    smallest = min(min(x.n_alone, x.n_beside) for x in containers + vms)
    return _settled(Verdict(claim, status, reason, notes=notes), smallest,
                    _vm_emulated(rows, emulated))


# -- g: storage --------------------------------------------------------------------------------


# An instance "shares" the image when what it adds on disk is below this share of the image.
SHARED_FRACTION = 0.05


def storage_verdict(frame: pd.DataFrame) -> Verdict:
    """Shared: every container's writable layer and every VM overlay, idle, adds less than
    SHARED_FRACTION of the image's size (the full copy a VM would otherwise need).
    Copy-on-write: in every container the first write into a file of the image takes longer
    than a second write into it (ratio first/second with its CI above 1), and the layer grew
    by about the file's size."""
    claim = "Image layers are shared and the container layer is copy-on-write"
    hint = "not measured (scenarios/storage.toml)."
    disk = _metric_rows(frame, "storage.instance_disk_bytes")
    first = _metric_rows(frame, "storage.first_write_s")
    second = _metric_rows(frame, "storage.second_write_s")
    containers = [r for r in runtimes_on_side(first, CONTAINER) if r in set(second["runtime"])]
    if disk.empty or not containers:
        return Verdict(claim, NOT_MEASURED, hint if disk.empty else
                       "not measured: no container completed the first/second write test "
                       "(scenarios/storage.toml).")
    image_bytes = _image_bytes(frame, disk)
    notes = []
    shared = True
    for runtime in in_order(disk["runtime"]):
        median = float(np.median(_values(disk, runtime)))
        layer = _first_tag(disk[disk["runtime"] == runtime], "layer") or ""
        share = median / image_bytes if image_bytes else math.nan
        notes.append(f"{runtime}: an idle instance adds {quantity(median, 'bytes')} on disk "
                     f"({layer}; {share:.2%} of the {quantity(image_bytes, 'bytes')} image)")
        if not share < SHARED_FRACTION:
            shared = False
    after = _metric_rows(frame, "storage.instance_disk_after_write_bytes")
    comparisons = []
    for runtime in containers + [r for r in runtimes_on_side(first, VM)
                                 if r in set(second["runtime"])]:
        comparisons.append(_compare(_values(first, runtime), _values(second, runtime),
                                    f"{runtime} first write", f"{runtime} second write",
                                    "storage.first_write_s",
                                    "first / second write of one block"))
        grown = _values(after, runtime)
        if len(grown):
            notes.append(f"{runtime}: after the writes the instance's disk holds "
                         f"{quantity(np.median(grown), 'bytes')} (file written: "
                         f"{quantity(_first_tag(first, 'write_file_bytes') or 0, 'bytes')})")
    # Copy-on-write shows directly on disk: one 4 KiB write left the whole file in the layer.
    file_bytes = float(_first_tag(first, "write_file_bytes") or math.nan)
    copied = {r: float(np.median(_values(after, r))) >= 0.9 * file_bytes
              for r in containers if len(_values(after, r))}
    slower = {c.runtime.removesuffix(" first write"): c.ratio.ci_low > 1 for c in comparisons}
    if not shared:
        return Verdict(claim, CONTRADICTED, f"an idle instance adds {SHARED_FRACTION:.0%} of the "
                       "image or more on disk: the image is not shared.", tuple(comparisons),
                       tuple(notes))
    if copied and all(copied.values()) and len(copied) == len(containers):
        timing = [r for r in containers if not slower.get(r)]
        reason = (f"every idle instance adds under {SHARED_FRACTION:.0%} of the image on disk, "
                  "and in every container one 4 KiB write into an image file left the whole file "
                  "in the container's layer (copy-up).")
        if timing:
            reason += (f" The first write's extra time is not shown with 95% confidence for "
                       f"{', '.join(timing)} (timing noise; the disk shows the copy).")
        return Verdict(claim, SUPPORTED, reason, tuple(comparisons), tuple(notes))
    if copied and not any(copied.values()):
        return Verdict(claim, CONTRADICTED, "a write into an image file did not copy it into the "
                       "container's layer.", tuple(comparisons), tuple(notes))
    if not copied and all(slower.get(r) for r in containers):
        return Verdict(claim, SUPPORTED, f"every idle instance adds under {SHARED_FRACTION:.0%} "
                       "of the image on disk, and in every container the first write into an "
                       "image file costs more than the second (copy-up; ratio CI above 1).",
                       tuple(comparisons), tuple(notes))
    return Verdict(claim, INCONCLUSIVE, "layers are shared, but a copy-up is shown neither on "
                   "disk nor by the first write's time for every container.",
                   tuple(comparisons), tuple(notes))


def _image_bytes(frame: pd.DataFrame, disk: pd.DataFrame) -> float:
    """The size an instance would need without sharing: the measured full copy, else the
    image disk's size the storage driver tagged its records with."""
    copies = _metric_rows(frame, "storage.full_copy_bytes")
    if not copies.empty:
        return float(np.median(copies["value"]))
    tagged = _first_tag(disk, "image_disk_bytes")
    return float(tagged) if tagged else math.nan


# -- helpers -----------------------------------------------------------------------------------


def _metric_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = measured(frame)
    return rows[rows["metric"] == metric] if not rows.empty else rows


def _side(kind: str) -> str | None:
    traits = traits_of(kind)
    return traits.side if traits else None


def runtimes_on_side(rows: pd.DataFrame, side: str) -> list[str]:
    """The runtimes of the rows on one side of the claims (CONTAINER or VM), in run order."""
    return (in_order(rows.loc[map_distinct(rows["kind"], _side) == side, "runtime"])
            if not rows.empty else [])


def _both_sides_have(rows: pd.DataFrame) -> bool:
    return bool(runtimes_on_side(rows, CONTAINER)) and bool(runtimes_on_side(rows, VM))


def _first_tag(rows: pd.DataFrame, name: str):
    column = f"tag.{name}"
    values = in_order(rows[column]) if column in rows else []
    return values[0] if values else None


def _vm_emulated(rows: pd.DataFrame, emulated: set[str]) -> bool:
    """Whether one of the VMs in rows ran under emulation."""
    return bool(emulated & set(runtimes_on_side(rows, VM)))


def _settled(verdict: Verdict, smallest_n: int, vm_emulated: bool) -> Verdict:
    """What the data can hold: a verdict from fewer than MIN_N_CLAIM instances on a side is
    inconclusive, one against an emulated VM indicative; the reason keeps which way it leaned."""
    status, reason = verdict.status, verdict.reason
    if status in (SUPPORTED, CONTRADICTED, INCONCLUSIVE) and smallest_n < MIN_N_CLAIM:
        lean = f" It leans {status}: {reason}" if status != INCONCLUSIVE else f" {reason}"
        status, reason = INCONCLUSIVE, (f"n too small: {smallest_n} measured instance(s) on a "
                                        f"side, fewer than the {MIN_N_CLAIM} a claim needs.{lean}")
    elif status in (SUPPORTED, CONTRADICTED) and vm_emulated:
        status, reason = INDICATIVE, f"{status} on an emulated VM only: {reason}"
    if vm_emulated:
        reason = f"{reason} {EMULATED_NOTE}"
    return Verdict(verdict.claim, status, reason, verdict.comparisons, verdict.notes)


def _pairs(comparisons: list[Comparison], shown: int = 4) -> str:
    """The pairs in words; past a few (a spectrum run has dozens) a count, the numbers
    beside the verdict list them all."""
    names = [f"{c.runtime} vs {c.reference}" for c in comparisons]
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown - 1])} and {len(names) - shown + 1} more pairs"
