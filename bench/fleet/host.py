"""One fleet host's side: the scenario run as a plain local `cvbench run`, what it writes
streamed back as it writes it. Ray makes this class an actor on the host (driver.py);
nothing here imports Ray, so the host's run is exactly the run of one machine."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.results import ENVIRONMENT, RECORDS

POLL_S = 0.5
# the host's run gets this long to clean up after a stop before it is killed
STOP_GRACE_S = 120
PR_SET_PDEATHSIG = 1


def guard(command: list[str], parent: int) -> int:
    """The process between the actor's worker and the run (python -m bench.fleet.host PID
    CMD). When a worker exits, Ray SIGKILLs its direct children, which would leave the
    run's instances behind; the run, a grandchild in a session of its own, gets SIGTERM
    instead when the guard dies, and cleans up. The guard passes on Ctrl-C (stop) and the
    SIGTERM it gets itself when the worker dies."""
    # A Ray worker blocks SIGINT and ignores SIGHUP and SIGQUIT, and a child inherits both
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in (signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    _terminate_with_parent()
    if os.getppid() != parent:  # the worker died before the line above
        return 130
    run = subprocess.Popen(command, preexec_fn=_terminate_with_parent, start_new_session=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: run.send_signal(signum))
    code = run.wait()
    return 128 - code if code < 0 else code  # killed by a signal: as a shell says it


def _terminate_with_parent() -> None:
    """SIGTERM when the parent dies: a run takes it as an interrupt and cleans up."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class HostRun:
    """Runs on one host at a time (it holds the host's cvbench_host resource)."""

    def __init__(self, host: str):
        self.host = host
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self._lock = threading.Lock()

    def environment(self) -> dict:
        """What the host's numbers depend on; also proves the actor started there."""
        from bench.results import host_environment

        return host_environment()

    def run(self, scenario_file: str, scenario_text: str, run_args: list[str]):
        """Yields ("lines", [console lines]), ("records", [record lines]), ("environment",
        dict) as they come, and last ("exit", {"code": N, "step": "setup" or "run"}): the
        host is set up first (python -m bench.hostsetup), as `nox -s bench` does."""
        scratch = Path(tempfile.mkdtemp(prefix="cvbench-fleet-"))
        try:
            scenario = scratch / Path(scenario_file).name
            scenario.write_text(scenario_text)
            out = scratch / "out"
            setup = [sys.executable, "-m", "bench.hostsetup"]
            run = [sys.executable, "-m", "bench.cli", "run", str(scenario), "--out", str(out),
                   "--no-report", *run_args]
            console = _Tail(scratch / "console.log")
            step, code = "setup", (yield from self._follow(setup, out, console))
            if code == 0 and self.stopping:
                code = 130  # stopped between setup and run: interrupted, not failed
            elif code == 0:
                step, code = "run", (yield from self._follow(run, out, console))
            yield "exit", {"code": code, "step": step}
        finally:
            self._end()
            shutil.rmtree(scratch, ignore_errors=True)

    def stop(self) -> None:
        """Interrupt the run as Ctrl-C would: it removes its instances and exits 130."""
        with self._lock:
            self.stopping = True
            if self.process and self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)

    def _follow(self, command: list[str], out: Path, console: "_Tail"):
        with self._lock:
            if self.stopping:
                return 130
            # The console goes to a file, not a pipe: a run whose actor died still cleans
            # up, and a pipe with no reader would break its last words.
            # CVBENCH_FLEET_HOST names the run after the fleet's host: two hosts on one
            # machine (a test cluster) never share a run id or instance names.
            with open(console.path, "a") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "bench.fleet.host", str(os.getpid()), *command],
                    stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "CVBENCH_FLEET_HOST": self.host})
        records, environment = _Tail(out / RECORDS), _Changes(out / ENVIRONMENT)
        while True:
            finished = self.process.poll() is not None
            if new := records.read():
                yield "records", new
            if (env := environment.read()) is not None:
                yield "environment", env
            if lines := console.read():
                yield "lines", lines
            if finished:
                return self.process.returncode
            time.sleep(POLL_S)

    def _end(self) -> None:
        """The run ends before the actor does, whatever ended the stream."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Tail:
    """The complete lines appended to a file since the last read (a torn last line waits)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        whole = data[:data.rfind(b"\n") + 1]
        self.offset += len(whole)
        return whole.decode().splitlines()


class _Changes:
    """A JSON file's content each time it changes."""

    def __init__(self, path: Path):
        self.path, self.seen = path, None

    def read(self) -> dict | None:
        try:
            text = self.path.read_text()
            data = json.loads(text)
        except (FileNotFoundError, json.JSONDecodeError):  # not yet, or mid-write
            return None
        if text == self.seen:
            return None
        self.seen = text
        return data


if __name__ == "__main__":
    sys.exit(guard(sys.argv[2:], int(sys.argv[1])))
