"""The one interface every runtime kind implements."""

from __future__ import annotations

import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from bench.agent import LineReader
from bench.cleanup import Cleanup
from bench.collect.cgroups import Cgroup
from bench.collect.engine import EngineCpu
from bench.collect.host import du_bytes
from bench.images import GuestImage
from bench.params import Param
from bench.workloads import NO_NEEDS, Needs



@dataclass(frozen=True)
class Limits:
    cpus: float
    memory_mib: int
    pids: int | None = None  # processes (and threads) the instance may have on the host


@dataclass(frozen=True)
class Traits:
    """What a runtime kind is, for the modes, the claims and the report to ask instead of
    testing kind names."""

    isolation: str  # process, container, sandbox (a kernel of its own under a container) or vm
    shares_host_kernel: bool
    # Startup phases it records, in the order they happen: metric -> what it covers
    phases: tuple[tuple[str, str], ...] = ()
    # What an instance writes into; None where it runs on the shared image root, read-only
    disk_layer: str | None = None
    # The manager layer over the runtime (None: nothing between cvbench and the runtime),
    # the phases it alone spends, and the kind that runs the same stack without it, with
    # the options that must match: the pair shows what the manager costs
    manager: str | None = None
    manager_phases: tuple[str, ...] = ()
    bare_twin: tuple[str, tuple[str, ...]] | None = None

    @property
    def side(self) -> str | None:
        """Which side of the container/VM claims it stands on, if any."""
        return {"container": "container", "sandbox": "container", "vm": "VM"}.get(self.isolation)


# OCI runtimes that put a kernel of their own under the container by design: gVisor's
# Sentry, Kata's guest VM. A container of any other OCI runtime runs on the host's kernel.
OWN_KERNEL_OCI_RUNTIMES = ("runsc", "kata")


def on_own_kernel(traits: Traits, oci_runtime: str | None) -> Traits:
    """A container kind's traits for the OCI runtime it runs: a sandbox on a kernel of its
    own for gVisor or Kata, else the kind's own."""
    if str(oci_runtime or "runc").startswith(OWN_KERNEL_OCI_RUNTIMES):
        return replace(traits, isolation="sandbox", shares_host_kernel=False)
    return traits


@dataclass(frozen=True)
class Snapshot:
    """A saved instance, waiting for its workload: what restore() needs, and its cost."""

    files: tuple[Path, ...]  # on the host's disk, the run's scratch folder
    limits: Limits
    seconds: float  # launch to saved and removed
    tags: dict = field(default_factory=dict)
    needs: Needs = NO_NEEDS  # what the saved instance was launched with, restores get too
    origin: str = ""  # the saved instance's name: a restore's network link is its (the guest kept it)

    @property
    def size_bytes(self) -> int:
        return sum(du_bytes(path) for path in self.files)


@dataclass
class RunContext:
    """What runtimes share during one run."""

    run_id: str
    image: GuestImage
    cleanup: Cleanup
    workdir: Path  # per-run scratch (overlays, sockets), removed at the end

    def cgroup_path(self, instance: str) -> str:
        return f"cvbench/{self.run_id}/{instance}"


@dataclass
class Instance(ABC):
    """A launched instance: its output lines, its cgroup and how to get rid of it."""

    name: str
    t_launch: float  # host monotonic time of the launch call
    lines: LineReader | None = None
    cgroup: Cgroup | None = None
    phases: dict[str, float] = field(default_factory=dict)  # metric -> seconds
    tags: dict = field(default_factory=dict)
    cleanup_token: int = 0  # its entry in the run's Cleanup
    scratch: list[Path] = field(default_factory=list)  # host files and folders it owns
    address: str = "127.0.0.1"  # where the host reaches a server in the instance
    cpu_before_clock_s: float = 0.0  # what its cgroup spent before its clock started (native)

    def remove_scratch(self) -> None:
        for path in self.scratch:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def helper_pids(self) -> list[int]:
        """Host processes outside the cgroup that serve the instance (a shim)."""
        return []

    def host_pids(self) -> set[int]:
        """Every host process of the instance: its cgroup's and its helpers'."""
        return set(self.cgroup.pids() if self.cgroup else []) | set(self.helper_pids())

    def wait_ready(self, timeout_s: float):
        """The agent's READY line, at most timeout_s after the launch call."""
        return self.lines.wait_for("READY", self.t_launch + timeout_s)

    @abstractmethod
    def wait_gone(self, timeout: float) -> float:
        """Block until the instance has exited; host monotonic time it was seen gone."""

    @abstractmethod
    def close(self) -> None:
        """Kill if still running and release everything; safe to call twice."""


class Runtime(ABC):
    kind: ClassVar[str]
    traits: ClassVar[Traits]
    OPTIONS: ClassVar[dict[str, Param]] = {}
    # cvbench doctor: what this kind needs of the host, per variant shown (check names)
    HOST_NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Debian package -> a program it provides, installed by `python -m bench.hostsetup`
    PACKAGES: ClassVar[dict[str, str]] = {}
    RECOMMENDS: ClassVar[bool] = True  # install them with apt's recommended packages
    # An engine that spends CPU for instances outside their cgroups (docker); None where
    # everything an instance costs runs inside its cgroup (native; QEMU, slirp included)
    engine: "EngineCpu | None" = None

    def __init__(self, name: str, options: dict, context: RunContext):
        self.name = name
        self.options = options
        self.context = context

    @abstractmethod
    def check(self) -> None:
        """Raise UserError naming what is missing here and how to fix it."""

    def prepare(self) -> None:
        """One-time work before the first launch (import an image, probe acceleration)."""

    @abstractmethod
    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None) -> Instance:
        """Start an instance running the agent with command; return once it is started.
        A serving instance listens on port, reachable from the host at 127.0.0.1:port."""

    @classmethod
    def traits_for(cls, options: dict) -> Traits:
        """The traits of a runtime of this kind with these options (or a record's tags)."""
        return cls.traits

    @classmethod
    def set_up_host(cls) -> None:
        """After its packages are installed: what else the host needs (start a daemon)."""

    @classmethod
    def usable_as(cls, checks_ok: dict[str, bool]) -> str:
        """How cvbench doctor shows this kind when every check it needs passed."""
        return "usable"

    @contextmanager
    def running(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
                port: int | None = None):
        """The one instance lifecycle: launch, hand the instance over, release it whatever
        happens (the run's cleanup holds it from the launch on, for a Ctrl-C meanwhile)."""
        with self._held(self.launch(command, limits, instance, needs=needs, port=port)) as inst:
            yield inst

    # -- warm starts: where a kind can, an instance snapshotted while its agent waits for
    # its workload, restored as often as asked

    def cannot_restore(self) -> str | None:
        """Why this runtime cannot snapshot and restore an instance here, or None."""
        return f"cvbench does not snapshot {self.kind} instances"

    def snapshot(self, limits: Limits, instance: str, timeout_s: float,
                 needs: Needs = NO_NEEDS) -> Snapshot:
        """Launch an instance whose agent awaits its workload, save it, remove it."""
        raise NotImplementedError

    def restore(self, snapshot: Snapshot, command: str, instance: str,
                timeout_s: float, port: int | None = None, needs: Needs | None = None) -> Instance:
        """A new instance from the snapshot, given command: return once it runs. Where the
        snapshot serves, port is the host's way to the server; needs are the workload's,
        where the host's side of a disk may follow them (not the guest's)."""
        raise NotImplementedError

    @contextmanager
    def restored(self, snapshot: Snapshot, command: str, instance: str, timeout_s: float,
                 port: int | None = None, needs: Needs | None = None):
        """The restore's lifecycle, as running()'s."""
        with self._held(self.restore(snapshot, command, instance, timeout_s, port, needs)) as inst:
            yield inst

    @contextmanager
    def _held(self, inst: Instance):
        with self._released_after_failure(inst):
            yield inst
        self.context.cleanup.release(inst.cleanup_token)

    def memory_overhead_mib(self) -> int:
        """Host memory an instance may take beyond its limit (a VMM beside guest RAM)."""
        return 0

    def instance_disk(self, inst: Instance) -> int:
        """Bytes this instance added to the host's disk, read from the host."""
        raise NotImplementedError(f"{self.kind} does not measure its disk")

    def sweep(self) -> None:
        """Remove what a launch cut short by Ctrl-C may still have made in an engine."""

    def unsupported(self, needs: Needs) -> str | None:
        """Why this runtime cannot give an instance what it needs, or None."""
        return None

    def serve_bind(self, needs: Needs) -> str:
        """The address a server in the instance binds: loopback where the instance shares
        the host's network (never expose a port beyond the host), else every interface."""
        return "127.0.0.1"

    def net_path(self, needs: Needs) -> str:
        """How the host reaches a serving instance, for the records' tags."""
        return "host loopback"

    def _register(self, inst: Instance) -> Instance:
        """Put the instance's release in the run's cleanup before it holds anything."""
        inst.cleanup_token = self.context.cleanup.add(f"{self.name} {inst.name}", inst.close)
        return inst

    @contextmanager
    def _launching(self, inst: Instance):
        """A launch that fails half-way releases what it already holds."""
        with self._released_after_failure(inst):
            yield inst

    @contextmanager
    def _released_after_failure(self, inst: Instance):
        """On an error or a Ctrl-C, release the instance, and let that error or Ctrl-C go
        on: a release that fails too must not turn a Ctrl-C into a failed cell (the run
        would go on). Its action stays registered, and the run's cleanup tries it again and
        reports it."""
        try:
            yield inst
        except BaseException:
            try:
                self.context.cleanup.release(inst.cleanup_token)
            except Exception:
                pass
            raise

    def describe(self) -> dict:
        """Versions and settings for environment.json."""
        return {"kind": self.kind, **self.options}

    def tags(self) -> dict:
        """Labels every record of this runtime carries."""
        return {}

    def other_containers(self, inst: Instance, since: float, until: float) -> int | None:
        """How many other instances the engine ran between since and until (wall clock)."""
        return None


def run_tool(argv: list[str], timeout_s: float | None = None) -> None:
    """A helper program (qemu-img...) whose failure fails the instance, with its message."""
    from bench.errors import RuntimeFailure

    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(f"{' '.join(argv[:2])} did not end within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        raise RuntimeFailure(f"{argv[0]} failed: {(result.stderr or result.stdout).strip()[-400:]}")


def wait_for_daemon(answers, name: str, log: Path, timeout: float, every: float = 0.2) -> None:
    """Poll answers() until the daemon cvbench just started answers, or say where to look."""
    from bench.errors import UserError

    deadline = time.monotonic() + timeout
    while not answers():
        if time.monotonic() > deadline:
            raise UserError(f"{name} did not answer within {timeout:.0f} s", fix=f"read {log}")
        time.sleep(every)


def command_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


@dataclass
class ProcessInstance(Instance):
    """An instance that is one host process tree in a cvbench cgroup (native, QEMU)."""

    process: subprocess.Popen | None = None

    def wait_gone(self, timeout: float) -> float:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            from bench.errors import RuntimeFailure

            raise RuntimeFailure(f"{self.name} did not exit within {timeout:.0f} s") from None
        # Its output ends as its last process exits: seen by the reader at once, while
        # this thread may have been sampling then. A child that keeps the output open
        # outlives it: then the exit of the process itself is all there is.
        reaped = time.monotonic()
        ended = self.lines.wait_ended(0.05) if self.lines is not None else None
        return ended if ended is not None else reaped

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process is not None and self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:  # gone with a line unread
                pass
        if self.cgroup is not None and self.cgroup.exists():
            self.cgroup.remove()
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
        self.remove_scratch()


def spawn(argv: list[str], env: dict | None = None, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    """Start a process in its own session so a terminal Ctrl-C reaches cvbench, which
    then cleans up, rather than killing the instance under the measurement."""
    return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, env=env)


def pipe_chunks(process: subprocess.Popen):
    return iter(lambda: process.stdout.read1(65536), b"")
