"""The in-guest agent and the host side of its line protocol."""

from __future__ import annotations

import base64
import math
import queue
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Iterable

from bench.errors import RuntimeFailure

#: Where the image recipe installs the agent, in every runtime.
AGENT_PATH = "/opt/cvbench/agent"
PREFIX = "CVBENCH "
EVENTS = ("READY", "DONE", "SERVING", "WAITING")
CONSOLE_LINE = 4096  # a tty in canonical mode: N_TTY_BUF_SIZE
AWAIT = "--await"  # the command that makes the agent read its workload after WAITING


def agent_script() -> bytes:
    return resources.files(__package__).joinpath("agent.sh").read_bytes()


def kernel_cmdline_arg(command: str) -> str:
    """The workload as one kernel command-line word (base64 has no spaces)."""
    return "cvbench.await=1" if command == AWAIT else "cvbench.cmd=" + encoded(command)


def boots_the_agent(cmdline: str) -> bool:
    """Whether a VMM's command line boots a guest with the agent as init: cvbench's VM."""
    return f"init={AGENT_PATH}" in cmdline


def workload_line(command: str) -> bytes:
    """The workload as the one line a WAITING agent reads. A console (a VM's serial port)
    keeps at most 4095 characters of a line."""
    line = encoded(command)
    if len(line) >= CONSOLE_LINE:
        raise RuntimeFailure(f"a workload of {len(command)} characters is too long for one "
                             f"console line ({len(line)} in base64, at most {CONSOLE_LINE - 1})")
    return (line + "\n").encode()


def encoded(command: str) -> str:
    return base64.b64encode(command.encode()).decode()


@dataclass(frozen=True)
class AgentLine:
    t: float  # host monotonic time the line reached the host
    text: str

    @property
    def fields(self) -> list[str]:
        """The words of a protocol line from the event on: READY uptime kernel, DONE code,
        SERVING port (a server in the instance is listening)."""
        idx = self.text.find(PREFIX)
        parts = self.text[idx + len(PREFIX):].split() if idx >= 0 else []
        return parts if len(parts) >= 2 and parts[0] in EVENTS else []

    @property
    def event(self) -> tuple[str, str] | None:
        """("READY", uptime) or ("DONE", code) for protocol lines, else None."""
        return (self.fields[0], self.fields[1]) if self.fields else None

    @property
    def exit_code(self) -> int:
        """A DONE line's exit code. A guest can print anything: a DONE line that does not
        hold a number is a failure that says so, not a traceback."""
        try:
            return int(self.fields[1])
        except (IndexError, ValueError):
            raise RuntimeFailure(f"not the agent's DONE line: {self.text[:200]!r}") from None


@dataclass(frozen=True)
class Ready:
    """What a READY line says about the instance's kernel."""

    uptime_s: float
    kernel: str | None
    boot_id: str | None  # None: an agent of before the boot id, or no boot id to read
    # When the agent began (None from an agent of before): the kernel's uptime, and the
    # wall clock, which an instance on the host's kernel shares with the host
    started_uptime_s: float | None = None
    started_wall: float | None = None

    @classmethod
    def of(cls, line: AgentLine) -> "Ready":
        _, uptime, *rest = line.fields or [None, None]
        kernel, boot_id, started_uptime, started_wall = (rest + [None] * 4)[:4]
        if (seconds := _seconds(uptime)) is None:
            raise RuntimeFailure(f"not the agent's READY line: {line.text[:200]!r}")
        return cls(seconds, kernel, None if boot_id in (None, "-") else boot_id,
                   _seconds(started_uptime), _seconds(started_wall))

    def shares_kernel_with(self, host_kernel: str, host_boot_id: str | None) -> bool:
        """The same running kernel: the same boot id. A release string is not enough (a VM
        may boot the host's kernel release); it is the fallback only without a boot id."""
        if self.boot_id is not None and host_boot_id is not None:
            return self.boot_id == host_boot_id
        return self.kernel == host_kernel


def _seconds(text: str | None) -> float | None:
    try:
        seconds = float(text)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


class LineReader:
    """Reads an instance's output in a thread and timestamps every line on arrival.

    Serial consoles, container attach streams and pipes all go through here, so
    READY is seen the same way for every runtime.
    """

    def __init__(self, chunks: Iterable[bytes], name: str):
        self._chunks = chunks
        self._queue: queue.Queue[AgentLine | None] = queue.Queue()
        self.transcript: list[AgentLine] = []
        self.ended: float | None = None  # host monotonic time the output ended (EOF)
        self._thread = threading.Thread(target=self._pump, name=f"lines-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        try:
            for chunk in self._chunks:
                now = time.monotonic()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._queue.put(AgentLine(now, raw.decode("utf-8", "replace").rstrip("\r")))
        except Exception:  # stream torn down by stop(): end of output
            pass
        self.ended = time.monotonic()
        if pending:
            self._queue.put(AgentLine(self.ended, pending.decode("utf-8", "replace")))
        self._queue.put(None)

    def wait_for(self, event: str, deadline: float) -> AgentLine:
        """Consume lines until the protocol event; lines before it stay in the transcript."""
        return self._wait(lambda line: bool(line.event) and line.event[0] == event,
                          f"CVBENCH {event}", deadline)

    def wait_for_text(self, text: str, deadline: float) -> AgentLine:
        """Consume lines until one holds text (a workload's own marker between READY and DONE)."""
        return self._wait(lambda line: text in line.text, repr(text), deadline)

    def _wait(self, matches, what: str, deadline: float) -> AgentLine:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeFailure(f"timed out waiting for {what}{self._tail()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeFailure(f"output ended before {what}{self._tail()}")
            self.transcript.append(line)
            if matches(line):
                return line

    def wait_ended(self, timeout: float) -> float | None:
        """When the output ended, waiting up to timeout for it; None if it has not."""
        self._thread.join(timeout)
        return self.ended

    def finished(self) -> bool:
        """Whether the instance is done (DONE printed, or its output ended), without waiting."""
        if not self._thread.is_alive():
            return True
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)  # the end stays visible to later waits
                return True
            self.transcript.append(line)
        return any(line.event and line.event[0] == "DONE" for line in self.transcript)

    def drain(self, timeout: float = 2.0) -> str:
        """Whatever output is left once the instance died (for error messages)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.transcript.append(line)
        return " | ".join(line.text for line in self.transcript[-8:])

    def output_between(self, start: AgentLine, end: AgentLine) -> str:
        i, j = self.transcript.index(start), self.transcript.index(end)
        return "\n".join(line.text for line in self.transcript[i + 1:j])

    def _tail(self) -> str:
        last = [line.text for line in self.transcript[-5:]]
        return ("; last output: " + " | ".join(last)) if last else "; no output"
