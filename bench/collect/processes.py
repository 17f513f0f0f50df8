"""Host processes of an instance: memory from smaps_rollup, CPU from psutil."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import psutil


@dataclass(frozen=True)
class ProcessMemory:
    rss: int
    pss: int  # shared pages split among the processes sharing them
    uss: int  # pages only this process maps

    def __add__(self, other: "ProcessMemory") -> "ProcessMemory":
        return ProcessMemory(self.rss + other.rss, self.pss + other.pss, self.uss + other.uss)


PROC = Path("/proc")


def parse_smaps_rollup(text: str) -> ProcessMemory:
    """/proc/PID/smaps_rollup (kB values) -> bytes. One read, unlike the full smaps."""
    kb = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            kb[key] = int(fields[0])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return ProcessMemory(kb.get("Rss", 0) * 1024, kb.get("Pss", 0) * 1024, uss * 1024)


def memory_of(pids: Iterable[int], proc: Path = PROC) -> ProcessMemory | None:
    """Summed over the processes that could be read; None when none could: processes
    that have all exited use no memory we can see, which is not the same as 0 bytes."""
    total = None
    for pid in pids:
        try:
            mem = parse_smaps_rollup((proc / str(pid) / "smaps_rollup").read_text())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited between listing and reading (a zombie answers ESRCH)
        total = mem if total is None else total + mem
    return total


def cpu_seconds_of(pids: Iterable[int]) -> float:
    """CPU of the processes and of the children they reaped (a shim's runc create and
    start): user + system alone would lose every helper that has exited."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def find_by_cmdline(name_prefix: str, needle: str) -> int | None:
    """A process whose name starts with name_prefix and whose command line holds needle.
    Read from /proc, names first: it runs in every container's launch, and psutil reading
    every process's command line took 4 times as long."""
    name, wanted = name_prefix[:15].encode(), needle.encode()  # the kernel keeps 15 bytes
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as comm:
                if not comm.read().startswith(name):
                    continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if wanted in cmdline.read().replace(b"\0", b" "):
                    return int(entry.name)
        except OSError:  # gone meanwhile
            continue
    return None


def engine_pids(names: tuple[str, ...] = ("dockerd", "containerd")) -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in names]
