"""Background sampling of an instance's memory and CPU, default 10 Hz."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable

from bench.collect.cgroups import Cgroup
from bench.collect.processes import cpu_seconds_of, memory_of


@dataclass(frozen=True)
class Sample:
    t: float  # host monotonic
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
                 hz: float = 10.0):
        self.cgroup = cgroup
        self.helper_pids = helper_pids
        self.interval = 1.0 / hz
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def sample(self) -> Sample | None:
        """One sample now; None once the instance is gone."""
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
        everyone = set(pids) | set(helpers)
        mem = memory_of(everyone) if everyone else None
        if working_set is None and mem is None:
            return None
        rss, pss, uss = (mem.rss, mem.pss, mem.uss) if mem else (None, None, None)
        sample = Sample(time.monotonic(), working_set, peak, cpu, rss, pss, uss,
                        cpu_seconds_of(p for p in helpers if p not in pids))
        self.samples.append(sample)
        return sample

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_tick += self.interval
            self._stop.wait(max(0.0, next_tick - time.monotonic()))


def summarise(samples: list[Sample], since: float) -> dict[str, float | None]:
    """Steady state (median after READY) and peak of each view."""
    after = [s for s in samples if s.t >= since] or samples[-1:]
    out: dict[str, float | None] = {}
    for view in ("cgroup_working_set", "pss", "uss", "rss"):
        steady = [getattr(s, view) for s in after if getattr(s, view) is not None]
        every = [getattr(s, view) for s in samples if getattr(s, view) is not None]
        out[view] = statistics.median(steady) if steady else None
        out[view + "_peak"] = max(every) if every else None
    peaks = [s.cgroup_peak for s in samples if s.cgroup_peak is not None]
    out["cgroup_peak"] = max(peaks) if peaks else None
    return out
