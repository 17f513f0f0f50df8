"""The startup waterfall: each runtime's time from the launch call to READY split into the
layers of its stack, and what a manager costs against the same stack without it.

Per instance, from what it recorded:
- manager: the phases only the manager spends (its kind's traits name them);
- runtime or VMM: from there until the agent starts, on the host's clock, where the
  instance shares the host's kernel (the agent's start is read on the wall clock both
  share); on its own kernel, until the guest's clock starts (host clock minus guest clock:
  a VM's firmware and kernel load are in it, and cvbench's qcow2 overlay);
- guest kernel: the guest's uptime when the agent (init) started (guest clock);
- init until READY: the agent's own start, up to the READY line on the host.
Each layer is the median over instances of the startup workloads (all, where there are none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench import stats
from bench.report.data import in_order, measured
from bench.runtimes import KINDS, traits_of
from bench.workloads import RESTING_FOOTPRINT, STARTUP_PROBE, with_role

MANAGER, RUNTIME, KERNEL, INIT = "manager", "runtime or VMM", "guest kernel", "init until READY"
LAYERS = (MANAGER, RUNTIME, KERNEL, INIT)
HOST_CLOCK = "host clock"
GUEST_CLOCK = "host clock; kernel and init on the guest's clock"


@dataclass
class Waterfall:
    runtime: str
    kind: str
    manager: str | None
    ready: float  # median, launch call to READY
    layers: dict[str, float | None]  # medians; None: the layer is not there (host kernel)
    clock: str
    n: int
    manager_cpu_s: float | None = None  # median CPU the manager spent per launch
    manager_cpu_source: str | None = None
    ready_values: list[float] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class ManagerCost:
    managed: str
    bare: str
    manager: str
    difference: stats.Difference  # READY, managed minus bare
    ready_managed: float
    ready_bare: float


def split(values: dict, manager_phases: tuple[str, ...]) -> tuple[dict[str, float | None], str] | None:
    """One instance's layers from its startup metrics; None without a READY."""
    ready = values.get("startup.ready_s")
    if ready is None or math.isnan(ready):
        return None
    manager = sum(values[m] for m in manager_phases if _has(values, m))
    if _has(values, "startup.agent_start_s"):
        agent = values["startup.agent_start_s"]
        return {MANAGER: manager, RUNTIME: agent - manager, KERNEL: None, INIT: ready - agent}, HOST_CLOCK
    if _has(values, "startup.guest_uptime_s") and _has(values, "startup.guest_kernel_s"):
        uptime, kernel = values["startup.guest_uptime_s"], values["startup.guest_kernel_s"]
        return ({MANAGER: manager, RUNTIME: ready - manager - uptime, KERNEL: kernel,
                 INIT: uptime - kernel}, GUEST_CLOCK)
    return None  # records of an agent that did not say when it started


def _has(values: dict, metric: str) -> bool:
    value = values.get(metric)
    return value is not None and not math.isnan(value)


def startup_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Measured values of the startup workloads (all workloads where the run has none)."""
    rows = measured(frame)
    if rows.empty:
        return rows
    workloads = with_role(in_order(rows["workload"]), STARTUP_PROBE, RESTING_FOOTPRINT)
    return rows[rows["workload"].isin(workloads)] if workloads else rows


def waterfalls(frame: pd.DataFrame, environment: dict | None = None) -> list[Waterfall]:
    rows = startup_rows(frame)
    if rows.empty:
        return []
    options = (environment or {}).get("runtimes", {})
    found = []
    for runtime in in_order(rows["runtime"]):
        mine = rows[rows["runtime"] == runtime]
        kind = mine["kind"].iloc[0]
        traits = traits_of(kind, options.get(runtime))
        if traits is None:
            continue
        per_instance = mine.pivot_table(index=["cell", "rep"], columns="metric", values="value",
                                        aggfunc="first")
        splits = [s for s in (split(v, traits.manager_phases) for v in per_instance.to_dict("records"))
                  if s is not None]
        if not splits:
            continue
        layers = {layer: _median([s[0][layer] for s in splits]) for layer in LAYERS}
        ready = [v for v in per_instance.get("startup.ready_s", pd.Series(dtype=float)).dropna()]
        cpu = mine[mine["metric"] == "cpu.engine_seconds"]
        source = cpu["tag.engine_cpu_source"].dropna() if "tag.engine_cpu_source" in cpu else []
        found.append(Waterfall(
            runtime, kind, traits.manager, float(pd.Series(ready).median()), layers,
            splits[0][1], len(splits),
            float(cpu["value"].median()) if len(cpu) else None,
            source.iloc[0] if len(source) else None, ready))
    return found


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(pd.Series(present).median()) if present else None


def manager_costs(found: list[Waterfall], environment: dict | None = None) -> list[ManagerCost]:
    """Each managed runtime against the run's runtime of the same stack without a manager
    (docker/podman over runc vs runc on a bundle; libvirt vs QEMU on the same machine)."""
    options = (environment or {}).get("runtimes", {})
    costs = []
    for managed in found:
        traits = traits_of(managed.kind, options.get(managed.runtime))
        if traits is None or traits.bare_twin is None:
            continue
        twin_kind, keys = traits.bare_twin
        for bare in found:
            if bare.kind == twin_kind and all(
                    _option(managed, options, k) == _option(bare, options, k) for k in keys):
                costs.append(ManagerCost(managed.runtime, bare.runtime, traits.manager,
                                         stats.difference_ci(managed.ready_values, bare.ready_values),
                                         managed.ready, bare.ready))
                break
    return costs


def _option(found: Waterfall, options: dict, key: str):
    """A runtime's option as environment.json has it, else its kind's default."""
    mine = options.get(found.runtime, {})
    param = KINDS[found.kind].OPTIONS.get(key) if found.kind in KINDS else None
    return mine.get(key, param.default if param else None)
