"""cvbench run --cluster: one scenario on every benchmark host of a Ray cluster at once.

Each host runs the whole scenario itself (its own host setup and image cache) through
host.HostRun, one fleet run per host at a time: the actor holds the host's cvbench_host
resource. Records stream back while the hosts run and land in one fleet folder:

  OUT/records.jsonl      every host's records, each with "host"
  OUT/environment.json   the fleet: its hosts, how each one ended, each one's environment
  OUT/hosts/NAME/        a complete results folder per host (cvbench report works on it)
  OUT/report.html        the hosts side by side (bench/report/fleet.py)

What crosses the network is records and console lines, never images.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import __version__
from bench.cleanup import signals_raise_interrupt
from bench.errors import RecordsNotKept, UserError
from bench.measure import Value
from bench.results import Record, RecordStore, read_environment, write_environment
from bench.spec import Scenario

RESOURCE = "cvbench_host"
INSTALL = "pip install 'cvbench[fleet]'"
HOSTS = "hosts"
START_S = 60  # a host's actor must start within this: its resource free, its node reachable
STOP_S = 180  # after Ctrl-C the hosts get this long to remove their instances and say so


@dataclass
class Host:
    """One benchmark host of the fleet and how its run went."""

    name: str
    node_id: str | None = None
    labels: dict = field(default_factory=dict)
    status: str = "waiting"  # running, done, failed, lost, unreachable, interrupted
    reason: str = ""
    exit_code: int | None = None
    records: int = 0
    run: str | None = None
    cells: list[str] = field(default_factory=list)  # the cells it sent records of, in order

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("name", "cells")}


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--cluster needs Ray, which is not installed here",
                        fix=f"{INSTALL} (the driver and every benchmark host need it)") from None
    return ray


def choose_hosts(nodes: list[dict], wanted: list[str] | None = None) -> list[Host]:
    """The cluster's benchmark hosts (nodes that advertise RESOURCE), as `ray.nodes()` lists
    them; with wanted, those it names (a node name, a label key=value, or a node id), and
    each wanted one that is dead or missing as unreachable, with why."""
    benchmark = [n for n in nodes if RESOURCE in (n.get("Resources") or {}) or not n.get("Alive")]
    names = [_safe(n.get("NodeName") or n["NodeID"][:12]) for n in benchmark]
    live = [name for name, n in zip(names, benchmark) if n.get("Alive")]
    # live nodes that share a name (several on one machine) are told apart by their id; a
    # dead node of the same name (a host restarted) leaves its name alone
    unique = [f"{name}-{n['NodeID'][:6]}" if n.get("Alive") and live.count(name) > 1 else name
              for name, n in zip(names, benchmark)]

    def host(name, node):
        labels = {k: v for k, v in (node.get("Labels") or {}).items() if not k.startswith("ray.io/")}
        if node.get("Alive"):
            return Host(name, node["NodeID"], labels)
        return Host(name, node["NodeID"], labels, "unreachable", "its Ray node is dead")

    if not wanted:
        return [host(name, n) for name, n in zip(unique, benchmark) if n.get("Alive")]
    chosen: dict[str, Host] = {}
    for entry in wanted:
        key, _, value = entry.partition("=")
        matches = [(name, n) for name, n in zip(unique, benchmark)
                   if (value and (n.get("Labels") or {}).get(key) == value)
                   or (not value and entry in (name, n.get("NodeName"), n["NodeID"]))]
        # a dead node stays in Ray's list; a live one of the same name supersedes it
        alive = [m for m in matches if m[1].get("Alive")]
        for name, node in alive or matches[-1:]:
            chosen.setdefault(name, host(name, node))
        if not matches:
            chosen[entry] = Host(entry, status="unreachable", reason=(
                f"no benchmark host of the cluster is {entry!r} (hosts: "
                f"{', '.join(u for u, n in zip(unique, benchmark) if n.get('Alive')) or 'none'})"))
    return list(chosen.values())


def _safe(name: str) -> str:
    """A host's name as a folder name and in links: no path, no fragment."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "host"


def reachable(address: str, timeout_s: float = 10) -> None:
    """A HOST:PORT that takes no connection fails here at once; Ray itself would retry it
    for minutes. Other forms (auto, ray://) are left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                        fix="pass the head's address as ray start --head printed it (HOST:6379), "
                            "and check this machine can reach it") from None


class Fleet:
    """One fleet run: the driver's side."""

    def __init__(self, scenario: Scenario, address: str, out_dir: Path | None = None,
                 wanted: list[str] | None = None, run_args: list[str] = (), report: bool = True):
        from bench.session import new_run_id

        self.scenario, self.address, self.wanted = scenario, address, wanted
        self.run_args = list(run_args)
        self.run_id = new_run_id().split("-", 1)[0] + "-fleet"
        self.out_dir = Path(out_dir or Path("results") / self.run_id)
        self.make_report = report
        self.hosts: list[Host] = []
        self.environments: dict[str, dict] = {}
        self.store = RecordStore(self.out_dir)
        self._stores: dict[str, RecordStore] = {}
        self._actors: dict[str, object] = {}
        # Set when a host's thread is done. Not Thread.is_alive(): after a join() that a
        # Ctrl-C cut short, Python 3.11 reports a running thread as dead.
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.started = time.time()
        self.interrupted = False

    def run(self) -> int:
        """Exit code: 0 every host measured everything, 1 cells failed or a host was lost,
        2 a host could not run at all, 130 interrupted."""
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise UserError(f"{self.out_dir} already holds files",
                            fix="choose another --out, or remove that folder")
        ray = import_ray()
        self._connect(ray)
        try:
            self.hosts = choose_hosts(ray.nodes(), self.wanted)
            if not any(h.status == "waiting" for h in self.hosts):
                raise UserError(
                    f"no benchmark host to run on in the cluster at {self.address}"
                    + "".join(f"; {h.name}: {h.reason}" for h in self.hosts),
                    fix=f"start each benchmark host with ray start --address ADDRESS "
                        f"--resources '{{\"{RESOURCE}\": 1}}'")
            (self.out_dir / HOSTS).mkdir(parents=True, exist_ok=True)
            self._say(None, f"fleet run {self.run_id}: {self.scenario.name} on "
                      f"{', '.join(h.name for h in self.hosts if h.status == 'waiting')} -> {self.out_dir}")
            self._write_environment()
            with signals_raise_interrupt():
                try:
                    self._run_all(ray)
                except KeyboardInterrupt:
                    self._stop_all(ray)
        finally:
            self.store.close()
            for store in self._stores.values():
                store.close()
            if self.out_dir.exists():
                self._write_environment()
            ray.shutdown()
        self._summarise()
        if self.make_report and self.store.count:
            from bench.report import build_report

            for host in self.hosts:
                if host.records:
                    build_report(self.out_dir / HOSTS / host.name)
            print(f"report: {build_report(self.out_dir)}")
        if self.interrupted:
            return 130
        codes = {"unreachable": 2, "failed": 2, "lost": 1}
        return max(codes.get(h.status, h.exit_code or 0) for h in self.hosts)

    # -- Ray --------------------------------------------------------------------------------

    def _connect(self, ray) -> None:
        reachable(self.address)
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level="ERROR",
                     configure_logging=False)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: Ray's choice
            raise UserError(f"cannot reach the Ray cluster at {self.address}: {exc}",
                            fix="pass the head's address as ray start --head printed it "
                                "(HOST:6379), and check the driver can reach it") from None

    def _run_all(self, ray) -> None:
        for host in self.hosts:
            if host.status == "waiting":
                self._done[host.name] = threading.Event()
                threading.Thread(target=self._follow, args=(ray, host), daemon=True).start()
        for done in list(self._done.values()):
            while not done.wait(timeout=0.5):  # a bare wait would hold off Ctrl-C
                pass

    def _stop_all(self, ray) -> None:
        """Ctrl-C: every host interrupts its run, removes its instances and says how it
        ended; a host that does not within STOP_S, or after a second Ctrl-C, is killed (its
        run dies with it). Signals only mark the second Ctrl-C here: one raised in the middle
        would leave hosts unstopped and unaccounted for."""
        again = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: again.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._say(None, f"interrupted: stopping every host's run (up to {STOP_S} s to clean up; "
                      "Ctrl-C again to kill them now)")
            with self._lock:
                self.interrupted = True  # from now on a host whose stream breaks was interrupted
                actors = dict(self._actors)
            for actor in actors.values():
                actor.stop.remote()
            deadline = time.monotonic() + STOP_S
            for done in list(self._done.values()):
                while not done.wait(timeout=0.5) and not again.is_set() and time.monotonic() < deadline:
                    pass
            for actor in actors.values():
                ray.kill(actor)  # its worker's death stops the host's run (host.guard)
            for done in list(self._done.values()):
                done.wait(timeout=10)  # each one says how its host ended before the stores close
            for host in self.hosts:
                if host.status in ("waiting", "running"):  # its thread did not come back in time
                    self._end(host, "interrupted", "killed after Ctrl-C on the driver")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _follow(self, ray, host: Host) -> None:
        """One host's run from its actor's start to its end, whatever ends it."""
        try:
            self._start_and_stream(ray, host)
        except (Exception, RecordsNotKept) as exc:  # never leave the host "running" for ever
            self._end(host, "failed", f"the driver failed to follow it: {exc!r}")
            if actor := self._actors.get(host.name):
                actor.stop.remote()
        finally:
            self._done[host.name].set()

    def _start_and_stream(self, ray, host: Host) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from bench.fleet.host import HostRun

        actor = ray.remote(HostRun).options(
            num_cpus=0, max_concurrency=2, max_restarts=0, resources={RESOURCE: 1},
            scheduling_strategy=NodeAffinitySchedulingStrategy(host.node_id, soft=False),
        ).remote(host.name)
        with self._lock:
            self._actors[host.name] = actor
        try:
            environment = ray.get(actor.environment.remote(), timeout=START_S)
        except ray.exceptions.GetTimeoutError:
            ray.kill(actor)
            return self._end(host, "unreachable", f"its cvbench actor did not start within {START_S} s "
                             f"(another fleet run holds its {RESOURCE}, or its node cannot start workers)")
        except ray.exceptions.RayError as exc:
            return self._end(host, "unreachable", _first_line(exc))
        if environment.get("cvbench") != __version__:
            ray.kill(actor)
            return self._end(host, "failed", f"it has cvbench {environment.get('cvbench')}, the driver "
                             f"{__version__}: install the same version on every host")
        self.environments[host.name] = {"host": environment}  # until its run writes its own
        host.status = "running"
        try:
            stream = actor.run.options(num_returns="streaming").remote(
                Path(self.scenario.path).name, self.scenario.text, self.run_args)
            for ref in stream:
                kind, payload = ray.get(ref)
                self._take(host, kind, payload)
        except ray.exceptions.RayError as exc:
            self._lost(host, _first_line(exc))
        else:
            ray.kill(actor)

    # -- what comes back --------------------------------------------------------------------

    def _take(self, host: Host, kind: str, payload) -> None:
        if kind == "lines":
            for line in payload:
                self._say(host, line)
        elif kind == "records":
            self._keep(host, payload)
        elif kind == "environment":
            host.run = payload.get("run")
            self.environments[host.name] = payload
            (self.out_dir / HOSTS / host.name).mkdir(parents=True, exist_ok=True)
            write_environment(self.out_dir / HOSTS / host.name, payload)
        elif kind == "exit":
            code, step = payload["code"], payload["step"]
            host.exit_code = code
            if code == 130 or (self.interrupted and code != 0):
                self._end(host, "interrupted", "stopped by Ctrl-C on the driver")
            elif step == "setup":
                self._end(host, "failed", f"host setup (python -m bench.hostsetup) exited {code}")
            elif code == 2 and not host.records:
                self._end(host, "failed", "its run could not start: see its lines above")
                self._fail_cells(host, "the run could not start on this host")
            else:
                self._end(host, "done", "" if code == 0 else "some cells failed")

    def _keep(self, host: Host, lines: list[str]) -> None:
        tagged = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                self._say(host, f"skipped a record line that is not JSON: {line[:80]!r}")
                continue
            tagged.append(json.dumps({**row, "host": host.name}))
            if (cell := row.get("cell")) and host.cells[-1:] != [cell]:
                if cell in host.cells:
                    host.cells.remove(cell)
                host.cells.append(cell)  # the last one is the cell in progress
        with self._lock:
            store = self._stores.setdefault(host.name, RecordStore(self.out_dir / HOSTS / host.name))
            store.append_lines(tagged)
            self.store.append_lines(tagged)
            host.records += len(tagged)

    def _lost(self, host: Host, why: str) -> None:
        """A host whose stream broke: what it sent is kept. Killed after Ctrl-C, it was
        interrupted; otherwise it died, and costs the cell it was in and those it never
        reached, each failed with the reason."""
        if self.interrupted:
            return self._end(host, "interrupted", f"killed after Ctrl-C on the driver: {why}")
        self._end(host, "lost", f"lost after {host.records} records: {why}")
        self._fail_cells(host, f"host {host.name} lost mid-run: {why}", host.cells[-1:])

    def _fail_cells(self, host: Host, why: str, also: list[str] = ()) -> None:
        """One failed record per cell of the host that has none yet, and per cell in also,
        as an unusable runtime's cells get on one machine."""
        image = (self.environments.get(host.name, {}).get("image") or {}).get("digest", "")
        records = [Record(run=host.run or self.run_id, scenario=self.scenario.name, cell=cell.name,
                          workload=cell.workload.name, runtime=spec.name, kind=spec.kind, rep=0,
                          warmup=False, metric=value.metric, value=None, unit=value.unit,
                          t=time.time(), image=image, error=why, host=host.name)
                   for spec in self.scenario.runtimes for cell in self.scenario.cells_of(spec)
                   if cell.name not in host.cells or cell.name in also
                   for value in [Value("startup.ready_s", None, "s", why)]]
        self._keep(host, [r.to_json() for r in records])

    def _end(self, host: Host, status: str, reason: str) -> None:
        with self._lock:
            host.status, host.reason = status, reason
        self._say(host, f"{status}{': ' + reason if reason else ''}")

    # -- the folder and the console ----------------------------------------------------------

    def _write_environment(self) -> None:
        fleet = {"run": self.run_id, "address": self.address, "started": self.started,
                 "hosts": {h.name: h.summary() for h in self.hosts}}
        if self.interrupted or any(h.status not in ("waiting", "running") for h in self.hosts):
            fleet.update(finished=time.time(), interrupted=self.interrupted, records=self.store.count)
        write_environment(self.out_dir, {
            "run": self.run_id, "scenario": self.scenario.name, "scenario_path": self.scenario.path,
            "scenario_text": self.scenario.text, "quick": self.scenario.quick, "fleet": fleet,
            "hosts": {h.name: read_environment(self.out_dir / HOSTS / h.name)
                      or self.environments.get(h.name, {}) for h in self.hosts}})

    def _summarise(self) -> None:
        for host in self.hosts:
            self._say(None, f"{host.name}: {host.status}, {host.records} records"
                      + (f", exit {host.exit_code}" if host.exit_code is not None else "")
                      + (f" ({host.reason})" if host.reason else ""))

    def _say(self, host: Host | None, line: str) -> None:
        with self._lock:
            print(f"[{host.name}] {line}" if host else line, flush=True,
                  file=sys.stdout if host is None or host.status != "lost" else sys.stderr)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}"
