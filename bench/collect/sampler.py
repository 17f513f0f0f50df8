"""Background sampling of an instance's memory and CPU, default 10 Hz."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.collect.cgroups import Cgroup
from bench.collect.processes import PROC, cpu_seconds_of, memory_of

VIEWS = ("cgroup_working_set", "pss", "uss", "rss")
GONE = "instance gone before a sample"


@dataclass(frozen=True)
class Sample:
    t: float  # host monotonic
    live: bool  # a process of the instance itself was there (not only a shim it left)
    cgroup_working_set: int | None
    cgroup_peak: int | None
    cgroup_cpu_s: float | None
    rss: int | None  # None: no host process left to read
    pss: int | None
    uss: int | None
    helper_cpu_s: float  # CPU of processes outside the cgroup (shims), by psutil


class Sampler:
    """Samples one instance in a thread: its cgroup, and its host processes
    (the cgroup's own plus helpers outside it, such as a container's shim)."""

    def __init__(self, cgroup: Cgroup | None, helper_pids: Callable[[], list[int]] = list,
                 hz: float = 10.0, proc: Path = PROC):
        self.cgroup = cgroup
        self.helper_pids = helper_pids
        self.interval = 1.0 / hz
        self.proc = proc
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """The samples taken so far: a copy, so a later sample() does not join them."""
        self._stop.set()
        self._thread.join()
        return list(self.samples)

    def sample(self) -> Sample | None:
        """One sample now, kept in self.samples; None when nothing could be read."""
        pids, helpers = [], list(self.helper_pids())
        working_set = peak = cpu = None
        if self.cgroup is not None:
            try:
                reading = self.cgroup.memory()
                working_set, peak = reading.working_set, reading.peak
                cpu = self.cgroup.cpu_seconds()
                pids = self.cgroup.pids()
            except (FileNotFoundError, ProcessLookupError):
                pass
        mem = memory_of(set(pids) | set(helpers), self.proc)
        if working_set is None and mem is None:
            return None
        # A cgroup left with no process (page cache, the shim of an exited container)
        # is what the instance left behind, not the instance.
        live = bool(pids) if self.cgroup is not None else mem is not None
        rss, pss, uss = (mem.rss, mem.pss, mem.uss) if mem else (None, None, None)
        sample = Sample(time.monotonic(), live, working_set, peak, cpu, rss, pss, uss,
                        cpu_seconds_of(p for p in helpers if p not in pids))
        self.samples.append(sample)
        return sample

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_tick += self.interval
            self._stop.wait(max(0.0, next_tick - time.monotonic()))


def summarise(samples: list[Sample], ready_t: float, done_t: float
              ) -> dict[str, tuple[float | None, str | None]]:
    """Each view as (value, why it is None): steady state, the median of the samples
    between READY and DONE, and peak, the largest up to DONE, both only from samples
    that saw the instance running. What a sample reads after the instance ended is
    what it left behind, not what it used."""
    running = [s for s in samples if s.live and s.t <= done_t]
    steady = [s for s in running if s.t >= ready_t]
    out: dict[str, tuple[float | None, str | None]] = {}
    for view in VIEWS:
        values = [getattr(s, view) for s in steady if getattr(s, view) is not None]
        every = [getattr(s, view) for s in running if getattr(s, view) is not None]
        out[view] = ((statistics.median(values), None) if values
                     else (None, _why_none(running, steady, "between READY and DONE")))
        out[view + "_peak"] = (max(every), None) if every else (None, _why_none(running, running, ""))
    # The kernel's high-water mark spans the cgroup's whole life: a reading taken
    # after the instance ended still holds the peak it reached while it ran.
    peaks = [s.cgroup_peak for s in samples if s.cgroup_peak is not None]
    out["cgroup_peak"] = ((max(peaks), None) if peaks else
                          (None, "cgroup unreadable, or its kernel keeps no peak"))
    return out


def _why_none(running: list[Sample], window: list[Sample], window_name: str) -> str:
    if not running:
        return GONE
    if not window:
        return f"no sample {window_name} (it ran for less than a sampling interval)"
    return "nothing of the instance could be read while it ran"
