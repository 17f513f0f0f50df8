"""One instance from launch to gone, and what it measured: the values of a cell's instance
(startup, memory, CPU, the workload's own metrics), and the one failure policy every mode
shares."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.agent import Ready
from bench.collect.sampler import Sampler, summarise
from bench.errors import RuntimeFailure
from bench.hostclient import free_port, run_round
from bench.results import SKIPPED
from bench.runtimes import Limits, Runtime
from bench.spec import Step
from bench.workloads import (CATALOGUE, LONG_LIVED, RESTING_FOOTPRINT, STARTUP_PROBE,
                             Workload)

# After the host's last round a serving instance ends by itself within seconds.
SERVER_EXIT_GRACE_S = 30.0

MEMORY_VIEWS = (("mem.cgroup_bytes", "cgroup_working_set"), ("mem.cgroup_peak_bytes", "cgroup_peak"),
                ("mem.pss_bytes", "pss"), ("mem.pss_peak_bytes", "pss_peak"),
                ("mem.uss_bytes", "uss"), ("mem.rss_bytes", "rss"))


@dataclass(frozen=True)
class Value:
    """One value an instance gave, before the session makes it a Record. value None means
    the measurement failed, and error says why."""

    metric: str
    value: float | None
    unit: str
    error: str | None = None
    tags: dict = field(default_factory=dict)  # this value's own, beyond the instance's


class Outcome:
    """The values of one instance, and the failure policy: an error before READY fails its
    start (startup.ready_s, or startup.restore_s for a restore); after it, the metric the
    mode measures (main), or the workload (workload) where main cannot carry it: a memory
    metric (which does not fail a cell) or the start, measured already."""

    def __init__(self, main: str, unit: str, start: str = "startup.ready_s",
                 workload: str | None = None):
        self.main, self.unit, self.start = main, unit, start
        self.workload = workload or main
        self.values: list[Value] = []
        self.inapplicable: set[str] = set()  # metrics this instance cannot have: no failure

    def add(self, metric: str, value, unit: str, error: str | None = None, **tags) -> None:
        self.values.append(Value(metric, None if value is None else float(value), unit, error, tags))

    def not_applicable(self, metric: str, unit: str, why: str) -> None:
        self.add(metric, None, unit, why)
        self.inapplicable.add(metric)

    def fail(self, exc: BaseException) -> None:
        why = str(exc) if isinstance(exc, RuntimeFailure) else f"{type(exc).__name__}: {exc}"
        started = any(v.metric == self.start and v.value is not None for v in self.values)
        if not started:
            self.add(self.start, None, "s", why)
        elif self.main.startswith("mem.") or self.main == self.start:
            self.add(self.workload, None, "1", why)
        else:
            self.add(self.main, None, self.unit, why)

    @property
    def failed(self) -> bool:
        """Memory can be unmeasurable (an instance gone within one sampling interval): that
        is recorded, but the cell failed only if startup, CPU or the workload did. A cell
        the runtime cannot run is skipped, not failed."""
        return any(v.error and not v.metric.startswith("mem.") and not v.error.startswith(SKIPPED)
                   and v.metric not in self.inapplicable for v in self.values)


@contextmanager
def attempt(main: str, unit: str, start: str = "startup.ready_s", workload: str | None = None):
    """Collect an instance's values; an error ends the attempt with the failure recorded
    (the cell fails, the run goes on). Ctrl-C passes through."""
    outcome = Outcome(main, unit, start, workload)
    try:
        yield outcome
    except Exception as exc:  # an engine error, a timeout, an unparsable output
        outcome.fail(exc)


# -- a cell's instance --------------------------------------------------------------------------


def measure_cell(session, runtime: Runtime, step: Step, extra_tags: dict) -> tuple[dict, Outcome]:
    """Launch one instance of a cell, measure it, release it: (its tags, its values)."""
    scenario, cell = session.scenario, step.cell
    workload = CATALOGUE[cell.workload.workload]
    params = workload.resolve(cell.workload.params, quick=scenario.quick)
    needs = workload.needs(params)
    tags = {**runtime.tags(), **{f"param.{k}": v for k, v in params.items()}, **extra_tags}
    main = workload.main_metric(params)
    if main:
        tags["main_metric"] = main
    if why := runtime.unsupported(needs):
        # Never silently nothing: the cell says why it was not run
        outcome = Outcome(main or f"workload.{workload.name}", "1")
        outcome.add(outcome.main, None, outcome.unit, SKIPPED + why)
        return tags, outcome
    port = None
    if needs.serves:
        port = free_port()
        params = dict(params, port=port, bind=runtime.serve_bind(needs))
        tags["net_path"] = runtime.net_path(needs)
    limits = Limits(scenario.cpus, scenario.memory_mib)
    snapshot = (session.snapshot_of(runtime, limits, needs)
                if starts_warm(scenario, runtime, workload, needs) else None)
    if snapshot:  # a cold cell's key stays what it always was (the gate's baselines)
        tags["start"] = "warm"
    engine = runtime.engine
    engine_before, wall_start = (engine.seconds() if engine else None), time.time()
    inst, helper_cpu = None, 0.0
    start = "startup.restore_s" if snapshot else "startup.ready_s"
    failed = f"workload.{workload.name}"
    with attempt(main or failed, "1", start, failed) as outcome:
        name, command = session.instance_name(), workload.command(params)
        with (runtime.restored(snapshot, command, name, scenario.timeout_s, port, needs) if snapshot else
              runtime.running(command, limits, name, needs=needs, port=port)) as inst:
            tags.update(inst.tags)
            helper_cpu = _measure_instance(session, workload, params, inst, outcome, tags, start)
    if not outcome.failed and engine is not None:
        # Read after the removal: the engine's work for an instance ends there
        try:
            outcome.add("cpu.engine_seconds", engine.spent_since(engine_before, helper_cpu), "s")
            tags["engine_cpu_source"] = engine.source
            # Engine CPU over a span in which it also served others is not this instance's alone
            tags["engine_other_containers"] = runtime.other_containers(inst, wall_start, time.time())
        except Exception as exc:  # the engine went away, or its cgroup did
            outcome.add("cpu.engine_seconds", None, "s", f"{type(exc).__name__}: {exc}")
    if not outcome.failed:
        outcome.values += derived_values(outcome.values)
    return tags, outcome


def starts_warm(scenario, runtime: Runtime, workload: Workload, needs) -> bool:
    """Whether a cell's instances start from a snapshot: in a VM (where a cold boot costs
    seconds to minutes under emulation), for a workload that needs no volume of its own
    (its root disk and its network, yes: one snapshot per needs) and whose numbers are its
    own: neither the startup probe nor the run's footprint (a long-lived workload is that
    where no resting one runs)."""
    if not (scenario.warm_workloads and runtime.traits.isolation == "vm" and not needs.volume_mib):
        return False
    resting = any(RESTING_FOOTPRINT in CATALOGUE[w.workload].roles for w in scenario.workloads
                  if w.runs_in(runtime))
    footprint = {RESTING_FOOTPRINT} | (set() if resting else {LONG_LIVED})
    return not set(workload.roles) & ({STARTUP_PROBE} | footprint)


def _measure_instance(session, workload: Workload, params: dict, inst, outcome: Outcome,
                      tags: dict, start: str = "startup.ready_s") -> float:
    """From launch (or restore) to gone, under a sampler; the CPU its helpers spent while
    it ran. A restored instance's start is its restore, and its guest clock is the
    snapshot's: no boot to time."""
    scenario = session.scenario
    sampler = Sampler(inst.cgroup, inst.helper_pids, scenario.sample_hz).start()
    try:
        ready = inst.wait_ready(scenario.timeout_s)
        outcome.add(start, ready.t - inst.t_launch, "s")  # a failure from here on is the workload's
        deadline = inst.t_launch + scenario.timeout_s
        sampler.sample()  # at least one sample, even for an instance that exits at once
        seen = Ready.of(ready)
        tags.update(kernel_release=seen.kernel, boot_id=seen.boot_id)
        host_outputs = _serve(session, workload, dict(params, address=inst.address), inst, deadline)
        if host_outputs is not None:
            deadline = min(deadline, time.monotonic() + SERVER_EXIT_GRACE_S)
        done = inst.lines.wait_for("DONE", deadline)
        gone = inst.wait_gone(max(1.0, deadline - time.monotonic()))
        # The cgroup outlives the instance: complete CPU totals and memory high-water mark
        final = sampler.sample()
        samples = sampler.stop()
    finally:
        sampler.stop()

    for metric, seconds in inst.phases.items():
        outcome.add(metric, seconds, "s")
    shared = seen.shares_kernel_with(session.host["kernel"], session.host.get("boot_id"))
    outcome.add("kernel.shared_with_host", float(shared), "1")
    if start == "startup.ready_s":
        _add_cold_start(outcome, inst, seen, shared, gone)
    memory = summarise(samples, ready.t, done.t)
    for metric, key in MEMORY_VIEWS:
        value, why_none = memory[key]
        outcome.add(metric, value, "bytes", why_none)
    cpu = final.cgroup_cpu_s if final else None
    if cpu is not None:
        cpu -= inst.cpu_before_clock_s
    outcome.add("cpu.seconds", cpu, "s", None if cpu is not None else "cgroup gone before it could be read")
    code = done.exit_code
    output = inst.lines.output_between(ready, done)
    tags.update(workload.output_tags(output))
    outcome.add("workload.exit_code", code, "1")
    outcome.values += workload_values(workload, output, code, host_outputs)
    # Helpers (a shim) while the instance ran: once its container is reaped, a shim's
    # children's CPU holds the container's too
    return max((s.helper_cpu_s for s in samples if s.live and s.t <= done.t), default=0.0)


def _add_cold_start(outcome: Outcome, inst, seen: Ready, shared: bool, gone: float) -> None:
    """What only a launch has: launch to gone, and when the agent began. An instance on the
    host's kernel reports the host's uptime: no boot phase to show."""
    outcome.add("startup.exit_s", gone - inst.t_launch, "s")
    if not shared:
        outcome.add("startup.guest_uptime_s", seen.uptime_s, "s")
        if seen.started_uptime_s is not None:
            outcome.add("startup.guest_kernel_s", seen.started_uptime_s, "s")
    elif seen.started_wall is not None:  # the host's own clock: launch to the agent's start
        launched_wall = inst.t_launch + (time.time() - time.monotonic())
        outcome.add("startup.agent_start_s", seen.started_wall - launched_wall, "s")


def _serve(session, workload: Workload, params: dict, inst, deadline: float) -> list[str] | None:
    """A serving workload: one host round per SERVING line; None for the others."""
    if workload.host_rounds is None:
        return None
    outputs = []
    for command in workload.host_rounds(params):
        inst.lines.wait_for("SERVING", deadline)
        outputs.append(run_round(session.image.root, command, deadline, refused=workload.refused))
    return outputs


def derived_values(values: list[Value]) -> list[Value]:
    """Metrics computed from others of the same instance."""
    found = {v.metric: v.value for v in values if v.error is None}
    out = []
    cpu, events = found.get("cpu.seconds"), found.get("workload.events")
    if cpu is not None and events:
        # Host CPU (the instance's whole cgroup: VMM and boot included) per 1,000 events
        out.append(Value("workload.cpu_s_per_kevent", cpu / events * 1000, "s"))
    # All the host spent for the instance: its cgroup, plus what an engine spent outside
    # it (nothing for native and QEMU, whose slirp runs in the cgroup)
    has_engine = any(v.metric == "cpu.engine_seconds" for v in values)
    outside = found.get("cpu.engine_seconds") if has_engine else 0.0
    if cpu is not None and outside is not None:
        out.append(Value("cpu.total_seconds", cpu + outside, "s"))
    else:
        out.append(Value("cpu.total_seconds", None, "s", "cgroup or engine CPU unknown"))
    return out


def workload_values(workload: Workload, output: str, code: int,
                    host_outputs: list[str] | None = None) -> list[Value]:
    if code != 0:
        tail = " | ".join(output.strip().splitlines()[-5:])
        return [Value(f"workload.{workload.name}", None, "1", f"exit code {code}: {tail}")]
    try:
        metrics = (workload.parse_host(host_outputs) if host_outputs is not None
                   else workload.parse(output))
        return [Value(m.name, None if m.value is None else float(m.value), m.unit, m.error)
                for m in metrics]
    except ValueError as exc:
        return [Value(f"workload.{workload.name}", None, "1", f"unparsable output: {exc}")]


def measure_step(session, step: Step, tags: dict | None = None) -> list:
    """One instance of a cell, measured and stored; the cell marked failed if it did."""
    runtime = session.runtimes[step.cell.runtime.name]
    return session.keep(step, *measure_cell(session, runtime, step, tags or {}))
