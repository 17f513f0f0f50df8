"""A run: its folder, lock, cgroup, environment, cleanup, store and usable runtimes, behind
a small public interface the modes use (record, save, fail, instance_name)."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from bench.cleanup import Cleanup, ignore_signals_during, signals_raise_interrupt
from bench.collect.cgroups import Cgroup, remove_if_empty
from bench.console import say
from bench.errors import RecordsNotKept, UserError
from bench.images import GuestImage, ensure_image
from bench.measure import Value
from bench.modes import MODES
from bench.results import Record, RecordStore, host_environment, write_environment
from bench.runtimes import KINDS, Limits, RunContext, Runtime
from bench.runtimes.base import Snapshot
from bench.spec import RuntimeSpec, Scenario, Step
from bench.workloads import Needs

WORKDIR = Path("/var/tmp/cvbench")


def run_is_live(run_id: str) -> bool:
    """A run in progress holds an exclusive lock on its scratch folder's .lock."""
    try:
        with open(WORKDIR / run_id / ".lock") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except (FileNotFoundError, NotADirectoryError):  # no such run (host.lock is no run's)
        return False
    except BlockingIOError:
        return True


def new_run_id() -> str:
    """TIME-HOST; a fleet names the host itself (two hosts of a test cluster share a machine)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = os.environ.get("CVBENCH_FLEET_HOST") or socket.gethostname().split(".")[0]
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9-]+', '-', host)}"


class Session:
    def __init__(self, scenario: Scenario, out_dir: Path | None = None, report: bool = True,
                 before_report: Callable[[], None] = lambda: None):
        self.scenario = scenario
        self.run_id = new_run_id()
        self.out_dir = Path(out_dir or Path("results") / self.run_id)
        self.make_report = report
        self.before_report = before_report  # cvbench's own process imports for drawing there
        self.cleanup = Cleanup()
        self.store = RecordStore(self.out_dir)
        self.unusable: dict[str, str] = {}  # runtime name -> why
        self.failed_cells: set[str] = set()
        self.environment: dict = {}
        self.runtimes: dict[str, Runtime] = {}
        self.context: RunContext | None = None
        self._seq = 0
        self._snapshots: dict[tuple[str, Needs], Snapshot | None] = {}

    # -- what the modes use -------------------------------------------------------------

    @property
    def host(self) -> dict:
        """environment.json's host: kernel, boot id, host shape..."""
        return self.environment["host"]

    @property
    def image(self) -> GuestImage:
        return self.context.image

    @property
    def workdir(self) -> Path:
        """The run's scratch folder, removed at its end."""
        return self.context.workdir

    def usable(self) -> list[tuple[RuntimeSpec, Runtime]]:
        """The scenario's runtimes that can run here, in its order."""
        return [(spec, self.runtimes[spec.name]) for spec in self.scenario.runtimes
                if spec.name in self.runtimes]

    def announce(self, what: str) -> None:
        """The line a run opens with, the same for every mode: what it will do, and where."""
        runtimes = ", ".join(spec.name for spec, _ in self.usable())
        say(f"run {self.run_id}: {self.scenario.name} ({self.scenario.mode}), {what}; "
            f"{self.scenario.reps} reps over {runtimes} -> {self.out_dir}")

    def instance_name(self) -> str:
        """A name no other instance of any run has: engines and cleanup find it by that."""
        self._seq += 1
        return f"cvbench-{self.run_id.lower()}-{self._seq}"

    def snapshot_of(self, runtime: Runtime, limits: Limits, needs: Needs) -> Snapshot | None:
        """The runtime's snapshot for warm workload cells with these needs, one per network
        (a scratch disk is the restore's to set up): taken at its first use, kept in the
        scratch folder until the run ends. None where it cannot restore (said once: those
        cells start cold, and their records say so)."""
        needs = replace(needs, scratch=False)
        key = (runtime.name, needs)
        if key not in self._snapshots:
            snapshot, why = None, runtime.cannot_restore()
            if why is None:
                try:
                    snapshot = runtime.snapshot(limits, self.instance_name(), self.scenario.timeout_s,
                                                needs)
                except Exception as exc:  # its cells start cold; the run goes on
                    why = f"snapshot failed: {type(exc).__name__}: {exc}"
            if why and not any(name == runtime.name and found is None
                               for (name, _), found in self._snapshots.items()):
                say(f"  {runtime.name}: workload cells start cold: {why}")
            elif not why:
                say(f"  {runtime.name}: snapshot for warm workload cells in {snapshot.seconds:.1f} s")
            self._snapshots[key] = snapshot
        return self._snapshots[key]

    def record(self, step: Step, tags: dict, value: Value) -> Record:
        """A record of one value. Every record carries the run's limits and host shape; the
        mode's tags (an instance's own memory size, say) and the value's own come over them."""
        cell = step.cell
        base = {"cpus": self.scenario.cpus, "memory_mib": self.scenario.memory_mib,
                "host_shape": self.host["host_shape"]}
        return Record(run=self.run_id, scenario=self.scenario.name, cell=cell.name,
                      workload=cell.workload.name, runtime=cell.runtime.name, kind=cell.runtime.kind,
                      rep=step.rep, warmup=step.warmup, metric=value.metric, value=value.value,
                      unit=value.unit, t=time.time(), image=self.image.digest,
                      tags={**base, **tags, **value.tags}, error=value.error)

    def save(self, step: Step, tags: dict, values: list[Value]) -> list[Record]:
        """Make records of values and store them at once (flushed: nothing lost)."""
        records = [self.record(step, tags, value) for value in values]
        self.store.append(records)
        return records

    def keep(self, step: Step, tags: dict, outcome) -> list[Record]:
        """Store what one instance gave (a measure.Outcome); its cell fails if it did."""
        if outcome.failed:
            self.fail(step.cell.name)
        return self.save(step, tags, outcome.values)

    def fail(self, cell: str) -> None:
        """Mark a cell failed: the run's exit code says so."""
        self.failed_cells.add(cell)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        """Exit code: 0 all measured, 1 some cells failed, 2 some runtimes unusable, 130 interrupted."""
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise UserError(f"{self.out_dir} already holds files",
                            fix="choose another --out, or remove that folder")
        interrupted = False
        with signals_raise_interrupt():
            try:
                self.open()
                MODES[self.scenario.mode](self.scenario.mode_options).run(self)
            except KeyboardInterrupt as exc:
                interrupted = True
                print(f"\ninterrupted ({exc or 'Ctrl-C'}): cleaning up; "
                      f"{self.store.count} records kept in {self.store.path}", file=sys.stderr)
            except RecordsNotKept as exc:
                print(f"stopped: {exc}; cleaning up; the {self.store.count} records written "
                      "before stay readable", file=sys.stderr)
                return 2
            finally:
                self.close(interrupted)
        if self.make_report and self.store.count:
            from bench.report import build_report

            self.before_report()
            print(f"report: {build_report(self.out_dir)}")
        if interrupted:
            return 130
        if self.unusable:
            for name, why in self.unusable.items():
                print(f"runtime {name} was not usable: {why}", file=sys.stderr)
            return 2
        return 1 if self.failed_cells else 0

    def open(self) -> None:
        """Host lock, image, scratch folder, run cgroup, usable runtimes, environment.json."""
        self._hold_the_host()
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

    def _hold_the_host(self) -> None:
        """One run measures on a host at a time: a second would disturb both runs' numbers
        without a trace. A fleet's hosts that share a machine (a test cluster) each hold
        their own."""
        WORKDIR.mkdir(parents=True, exist_ok=True)
        host = os.environ.get("CVBENCH_FLEET_HOST")
        lock = open(WORKDIR / (f"host-{re.sub(r'[^A-Za-z0-9-]+', '-', host)}.lock" if host else "host.lock"),
                    "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another run"
            lock.close()
            raise UserError(f"{holder} is measuring on this host: two runs at once would disturb "
                            "each other's numbers",
                            fix="wait for it to end (or stop it), then run again") from None
        lock.truncate(0)
        lock.write(f"run {self.run_id} (pid {os.getpid()})\n")
        lock.flush()
        self.cleanup.add("host lock", lock.close)

    def close(self, interrupted: bool = False) -> None:
        """Release everything the run holds; environment.json gets the end state."""
        ignore_signals_during(self._clean)
        if self.environment and self.out_dir.exists():
            self.environment.update(finished=time.time(), interrupted=interrupted,
                                    records=self.store.count)
            try:
                write_environment(self.out_dir, self.environment)
            except OSError as exc:  # a full disk: the records written so far still stand
                print(f"cannot update {self.out_dir / 'environment.json'}: {exc.strerror}", file=sys.stderr)

    def _clean(self) -> None:
        self.store.close()
        for failure in self.cleanup.run_all():
            print(f"cleanup: {failure}", file=sys.stderr)
        for runtime in self.runtimes.values():
            runtime.sweep()

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
                for cell in self.scenario.cells_of(spec):
                    self.fail(cell.name)
                    self.save(Step(cell, 0, False), {},
                              [Value("startup.ready_s", None, "s", self.unusable[spec.name])])
