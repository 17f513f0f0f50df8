"""Expands a scenario into cells, runs every repetition, persists records as they come."""

from __future__ import annotations

import fcntl
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.agent import Ready
from bench.cleanup import Cleanup, ignore_signals_during, signals_raise_interrupt
from bench.collect.cgroups import Cgroup, remove_if_empty
from bench.collect.sampler import Sampler, summarise
from bench.errors import RuntimeFailure, UserError
from bench.hostclient import free_port, run_round
from bench.images import ensure_image
from bench.results import SKIPPED, Record, RecordStore, host_environment, write_environment
from bench.runtimes import KINDS, Limits, RunContext, Runtime
from bench.scenario import RuntimeSpec, Scenario, WorkloadSpec
from bench.workloads import CATALOGUE, Workload

# After the host's last round a serving instance ends by itself within seconds.
SERVER_EXIT_GRACE_S = 30.0

WORKDIR = Path("/var/tmp/cvbench")


@dataclass(frozen=True)
class Cell:
    workload: WorkloadSpec
    runtime: RuntimeSpec

    @property
    def name(self) -> str:
        return f"{self.workload.name}@{self.runtime.name}"


@dataclass(frozen=True)
class Step:
    cell: Cell
    rep: int  # counts warm-ups too: rep < warmup means a warm-up
    warmup: bool


def plan(scenario: Scenario) -> list[Step]:
    """Warm-ups first; then runtimes interleaved within each repetition, so a slow drift
    of the host (heat, other load) spreads over all runtimes instead of biasing one.
    A workload with fewer repetitions (or warm-ups) of its own drops out of the later rounds."""
    cells = [Cell(w, r) for w in scenario.workloads for r in scenario.runtimes]
    warmups = [scenario.warmup_of(c.workload) for c in cells]
    totals = [w + scenario.reps_of(c.workload) for c, w in zip(cells, warmups)]
    if scenario.order == "blocked":
        return [Step(c, i, i < w) for c, w, n in zip(cells, warmups, totals) for i in range(n)]
    rounds = max(totals, default=0)
    return [Step(c, i, i < w) for i in range(rounds)
            for c, w, n in zip(cells, warmups, totals) if i < n]


def step_label(step: Step, suffix: str = "") -> str:
    return f"{step.cell.name}{suffix} rep {step.rep}" + (" (warm-up)" if step.warmup else "")


class ProgressBar:
    """What a long run shows: the step going on, a line per step done, how far it is."""

    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def start(self, label: str) -> None:
        self.progress.update(self.task, description=label)

    def done(self, line: str) -> None:
        self.progress.console.print(line)
        self.progress.advance(self.task)


@contextmanager
def progress_bar(total: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    # soft_wrap: a step's line stays one line in a log, whatever the terminal's width
    with Progress(*columns, console=Console(soft_wrap=True), transient=False) as progress:
        yield ProgressBar(progress, progress.add_task("starting", total=total))


def run_is_live(run_id: str) -> bool:
    """A run in progress holds an exclusive lock on its scratch folder's .lock."""
    try:
        with open(WORKDIR / run_id / ".lock") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{socket.gethostname().split('.')[0]}"


class Runner:
    def __init__(self, scenario: Scenario, out_dir: Path | None = None, report: bool = True):
        self.scenario = scenario
        self.run_id = new_run_id()
        self.out_dir = Path(out_dir or Path("results") / self.run_id)
        self.make_report = report
        self.cleanup = Cleanup()
        self.store = RecordStore(self.out_dir)
        self.unusable: dict[str, str] = {}  # runtime name -> why
        self.failed_cells: set[str] = set()
        self.environment: dict = {}
        self.runtimes: dict[str, Runtime] = {}
        self._seq = 0

    # -- the run ----------------------------------------------------------------

    def run(self) -> int:
        """Exit code: 0 all measured, 1 some cells failed, 2 some runtimes unusable, 130 interrupted."""
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise UserError(f"{self.out_dir} already holds files",
                            fix="choose another --out, or remove that folder")
        interrupted = False
        with signals_raise_interrupt():
            try:
                self.open()
                self._measure_all()
            except KeyboardInterrupt as exc:
                interrupted = True
                print(f"\ninterrupted ({exc or 'Ctrl-C'}): cleaning up; "
                      f"{self.store.count} records kept in {self.store.path}", file=sys.stderr)
            finally:
                self.close(interrupted)
        if self.make_report and self.store.count:
            from bench.report import build_report

            print(f"report: {build_report(self.out_dir)}")
        if interrupted:
            return 130
        if self.unusable:
            for name, why in self.unusable.items():
                print(f"runtime {name} was not usable: {why}", file=sys.stderr)
            return 2
        return 1 if self.failed_cells else 0

    def open(self) -> None:
        """Image, scratch folder, run cgroup, usable runtimes, environment.json."""
        image = ensure_image()
        workdir = WORKDIR / self.run_id
        workdir.mkdir(parents=True, exist_ok=True)
        self.cleanup.add("scratch folder", lambda: shutil.rmtree(workdir, ignore_errors=True))
        lock = open(workdir / ".lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)  # tells doctor --clean this run is alive
        self.cleanup.add("run lock", lock.close)
        run_cgroup = Cgroup.create(f"cvbench/{self.run_id}")
        self.cleanup.add("run cgroup", lambda: (run_cgroup.remove(), remove_if_empty("cvbench")))
        self.context = RunContext(self.run_id, image, self.cleanup, workdir)
        self.environment = {
            "run": self.run_id, "scenario": self.scenario.name,
            "scenario_path": self.scenario.path, "scenario_text": self.scenario.text,
            "quick": self.scenario.quick, "started": time.time(), "host": host_environment(),
            "image": {"key": image.key, "digest": image.digest, "kernel_release": image.kernel_release},
        }
        self.runtimes = self._usable_runtimes()
        self.environment["runtimes"] = {name: rt.describe() for name, rt in self.runtimes.items()}
        self.environment["unusable_runtimes"] = self.unusable
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_environment(self.out_dir, self.environment)
        self._record_unusable()

    def close(self, interrupted: bool = False) -> None:
        """Release everything the run holds; environment.json gets the end state."""
        ignore_signals_during(self._clean)
        if self.environment and self.out_dir.exists():
            self.environment.update(finished=time.time(), interrupted=interrupted,
                                    records=self.store.count)
            write_environment(self.out_dir, self.environment)

    def _clean(self) -> None:
        self.store.close()
        for failure in self.cleanup.run_all():
            print(f"cleanup: {failure}", file=sys.stderr)
        self._sweep_containers()

    def _sweep_containers(self) -> None:
        """A create request cut short by Ctrl-C may still complete in the engine after its
        instance was released: remove whatever carries this run's label."""
        client = next((rt.client for rt in self.runtimes.values() if rt.kind == "docker"), None)
        if client is None:
            return
        from bench.runtimes.docker import RUN_LABEL

        try:
            for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}):
                container.remove(force=True)
                print(f"cleanup: removed late container {container.name}", file=sys.stderr)
        except Exception as exc:  # the engine went away: doctor --clean can finish the job
            print(f"cleanup: could not sweep containers: {exc}", file=sys.stderr)

    def _usable_runtimes(self) -> dict[str, Runtime]:
        usable = {}
        for spec in self.scenario.runtimes:
            runtime = KINDS[spec.kind](spec.name, spec.options, self.context)
            try:
                runtime.check()
                runtime.prepare()
                usable[spec.name] = runtime
            except Exception as exc:  # UserError says the fix; anything else is a bug report
                self.unusable[spec.name] = str(exc) if isinstance(exc, UserError) else repr(exc)
                print(f"runtime {spec.name}: {exc}", file=sys.stderr)
        if not usable or (self.unusable and not self.scenario.allow_partial):
            why = "; ".join(f"{n}: {w}" for n, w in self.unusable.items())
            raise UserError(f"cannot run {self.scenario.path}: {why}")
        return usable

    def _record_unusable(self) -> None:
        """A runtime that cannot run here still leaves a trace per cell: never silently dropped."""
        for spec in self.scenario.runtimes:
            if spec.name in self.unusable:
                # density, storage, allocation have no workloads: one cell named after the mode
                mode_cell = WorkloadSpec(self.scenario.mode, self.scenario.mode, {})
                for workload in self.scenario.workloads or (mode_cell,):
                    cell = Cell(workload, spec)
                    self.failed_cells.add(cell.name)
                    self.store.append([self._record(Step(cell, 0, False), {}, "startup.ready_s",
                                                    None, "s", error=self.unusable[spec.name])])

    def _measure_all(self) -> None:
        if self.scenario.mode != "cells":  # density, storage, allocation, isolation
            from bench.modes import driver

            return driver(self.scenario.mode)(self)
        steps = [s for s in plan(self.scenario) if s.cell.runtime.name in self.runtimes]
        print(f"run {self.run_id}: {len(steps)} instances of {self.scenario.name} "
              f"-> {self.out_dir}", flush=True)
        with progress_bar(len(steps)) as bar:
            for step in steps:
                label = step_label(step)
                bar.start(label)
                bar.done(self._summary_line(label, self.measure(step)))

    # -- one instance -------------------------------------------------------------

    def instance_name(self) -> str:
        """A name no other instance of any run has: engines and cleanup find it by that."""
        self._seq += 1
        return f"cvbench-{self.run_id.lower()}-{self._seq}"

    def measure(self, step: Step, tags: dict | None = None) -> list[Record]:
        """Launch one instance, measure it, release it; its records (with tags added to
        each) are stored before return."""
        records = self._measure(self.runtimes[step.cell.runtime.name], step, tags or {})
        self.store.append(records)
        return records

    def _measure(self, runtime: Runtime, step: Step, extra_tags: dict) -> list[Record]:
        scenario, cell = self.scenario, step.cell
        workload = CATALOGUE[cell.workload.workload]
        params = workload.resolve(cell.workload.params, quick=scenario.quick)
        needs = workload.needs(params)
        tags = {"cpus": scenario.cpus, "memory_mib": scenario.memory_mib,
                "host_shape": self.environment["host"]["host_shape"], **runtime.tags(),
                **{f"param.{k}": v for k, v in params.items()}, **extra_tags}
        if main := workload.main_metric(params):
            tags["main_metric"] = main
        if why := runtime.unsupported(needs):
            # Never silently nothing: the cell says why it was not run
            return [self._record(step, tags, main or f"workload.{workload.name}", None, "1",
                                 error=SKIPPED + why)]
        port = None
        if needs.serves:
            port = free_port()
            params = dict(params, port=port, bind=runtime.serve_bind(needs))
            tags["net_path"] = runtime.net_path(needs)
        name = self.instance_name()
        limits = Limits(scenario.cpus, scenario.memory_mib)
        values: list[tuple[str, float | None, str, str | None]] = []
        inst = sampler = None
        measured, helper_cpu = False, 0.0
        engine = runtime.engine
        engine_before, wall_start = (engine.seconds() if engine else None), time.time()
        try:
            inst = runtime.launch(workload.command(params), limits, name, needs=needs, port=port)
            tags.update(inst.tags)
            sampler = Sampler(inst.cgroup, inst.helper_pids, scenario.sample_hz).start()
            deadline = inst.t_launch + scenario.timeout_s
            ready = inst.lines.wait_for("READY", deadline)
            sampler.sample()  # at least one sample, even for an instance that exits at once
            seen = Ready.of(ready)
            tags.update(kernel_release=seen.kernel, boot_id=seen.boot_id)
            host_outputs = self._serve(workload, dict(params, address=inst.address), inst, deadline)
            if host_outputs is not None:
                deadline = min(deadline, time.monotonic() + SERVER_EXIT_GRACE_S)
            done = inst.lines.wait_for("DONE", deadline)
            gone = inst.wait_gone(max(1.0, deadline - time.monotonic()))
            # The cgroup outlives the instance: complete CPU totals and memory high-water mark
            final = sampler.sample()
            samples = sampler.stop()

            values.append(("startup.ready_s", ready.t - inst.t_launch, "s", None))
            values.append(("startup.exit_s", gone - inst.t_launch, "s", None))
            values += [(metric, secs, "s", None) for metric, secs in inst.phases.items()]
            # An instance on the host's kernel reports the host's uptime: no boot phase to show.
            host = self.environment["host"]
            shared = seen.shares_kernel_with(host["kernel"], host.get("boot_id"))
            values.append(("kernel.shared_with_host", float(shared), "1", None))
            if not shared:
                values.append(("startup.guest_uptime_s", seen.uptime_s, "s", None))
            values += self._memory_values(summarise(samples, ready.t, done.t))
            cpu = final.cgroup_cpu_s if final else None
            values.append(("cpu.seconds", cpu, "s",
                           None if cpu is not None else "cgroup gone before it could be read"))
            # Helpers (a shim) while the instance ran: once its container is reaped, a
            # shim's children's CPU holds the container's too
            helper_cpu = max((s.helper_cpu_s for s in samples if s.live and s.t <= done.t),
                             default=0.0)
            code = int(done.event[1])
            output = inst.lines.output_between(ready, done)
            tags.update(workload.output_tags(output))
            values.append(("workload.exit_code", code, "1", None))
            values += self._workload_values(workload, output, code, host_outputs)
            measured = True
        except RuntimeFailure as exc:
            values.append(("startup.ready_s", None, "s", str(exc)))
        except Exception as exc:  # an engine error: this cell fails, the run goes on
            values.append(("startup.ready_s", None, "s", f"{type(exc).__name__}: {exc}"))
        finally:
            if sampler is not None and sampler._thread.is_alive():
                sampler.stop()
            if inst is not None:
                self.cleanup.release(inst.cleanup_token)
        if measured and engine is not None:
            # Read after the removal: the engine's work for an instance ends there
            try:
                spent = engine.seconds() - engine_before
                if engine.source == "psutil":  # shims are no engine process's children
                    spent += helper_cpu
                values.append(("cpu.engine_seconds", spent, "s", None))
                tags["engine_cpu_source"] = engine.source
                # Engine CPU over a span in which it also served others is not this instance's alone
                tags["engine_other_containers"] = runtime.other_containers(inst, wall_start,
                                                                           time.time())
            except Exception as exc:  # the engine went away, or its cgroup did
                values.append(("cpu.engine_seconds", None, "s", f"{type(exc).__name__}: {exc}"))
        if measured:
            values += self._derived_values(values)
        # Memory can be unmeasurable (an instance gone within one sampling interval);
        # that is recorded, but the cell failed only if startup, CPU or the workload did.
        if any(error for metric, *_, error in values if not metric.startswith("mem.")):
            self.failed_cells.add(cell.name)
        return [self._record(step, tags, m, v, u, e) for m, v, u, e in values]

    def _serve(self, workload: Workload, params: dict, inst, deadline: float) -> list[str] | None:
        """A serving workload: one host round per SERVING line; None for the others."""
        if workload.host_rounds is None:
            return None
        outputs = []
        for command in workload.host_rounds(params):
            inst.lines.wait_for("SERVING", deadline)
            outputs.append(run_round(self.context.image.root, command, deadline,
                                     refused=workload.refused))
        return outputs

    @staticmethod
    def _derived_values(values):
        """Metrics computed from others of the same instance."""
        found = {metric: value for metric, value, _, error in values if error is None}
        cpu, events = found.get("cpu.seconds"), found.get("workload.events")
        if cpu is not None and events:
            # Host CPU (the instance's whole cgroup: VMM and boot included) per 1,000 events
            yield "workload.cpu_s_per_kevent", cpu / events * 1000, "s", None
        # All the host spent for the instance: its cgroup, plus what an engine spent outside
        # it (nothing for native and QEMU, whose slirp runs in the cgroup)
        has_engine = any(metric == "cpu.engine_seconds" for metric, *_ in values)
        outside = found.get("cpu.engine_seconds") if has_engine else 0.0
        if cpu is not None and outside is not None:
            yield "cpu.total_seconds", cpu + outside, "s", None
        else:
            yield "cpu.total_seconds", None, "s", "cgroup or engine CPU unknown"

    @staticmethod
    def _memory_values(summary: dict):
        views = [("mem.cgroup_bytes", "cgroup_working_set"), ("mem.cgroup_peak_bytes", "cgroup_peak"),
                 ("mem.pss_bytes", "pss"), ("mem.pss_peak_bytes", "pss_peak"),
                 ("mem.uss_bytes", "uss"), ("mem.rss_bytes", "rss")]
        for metric, key in views:
            value, why_none = summary[key]
            yield metric, value, "bytes", why_none

    @staticmethod
    def _workload_values(workload, output: str, code: int, host_outputs: list[str] | None = None):
        if code != 0:
            tail = " | ".join(output.strip().splitlines()[-5:])
            return [(f"workload.{workload.name}", None, "1", f"exit code {code}: {tail}")]
        try:
            metrics = (workload.parse_host(host_outputs) if host_outputs is not None
                       else workload.parse(output))
            return [(m.name, m.value, m.unit, m.error) for m in metrics]
        except ValueError as exc:
            return [(f"workload.{workload.name}", None, "1", f"unparsable output: {exc}")]

    def _record(self, step: Step, tags: dict, metric: str, value, unit: str,
                error: str | None = None) -> Record:
        cell = step.cell
        return Record(run=self.run_id, scenario=self.scenario.name, cell=cell.name,
                      workload=cell.workload.name, runtime=cell.runtime.name, kind=cell.runtime.kind,
                      rep=step.rep, warmup=step.warmup, metric=metric,
                      value=None if value is None else float(value), unit=unit, t=time.time(),
                      image=self.context.image.digest, tags=tags, error=error)

    @staticmethod
    def _summary_line(label: str, records: list[Record]) -> str:
        errors = [r.error for r in records if r.error and not r.metric.startswith("mem.")]
        if errors and errors[0].startswith(SKIPPED):
            return f"  {label}: [yellow]{errors[0][:200]}[/yellow]"
        if errors:
            return f"  {label}: [red]failed[/red] {errors[0][:200]}"
        shown = {r.metric: (r.value, r.unit) for r in records}
        parts = [f"ready {shown['startup.ready_s'][0]:.3f} s"]
        main = records[0].tags.get("main_metric") if records else None
        if main in shown and main.startswith("workload."):  # startup and PSS have their own
            parts.append(f"{main.removeprefix('workload.')} {shown[main][0]:.4g} {shown[main][1]}")
        if shown.get("mem.pss_bytes", (None,))[0]:
            parts.append(f"PSS {shown['mem.pss_bytes'][0] / 2**20:.1f} MiB")
        return f"  {label}: " + ", ".join(parts)
