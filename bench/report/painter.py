"""Figures drawn in worker processes while the page's tables are computed.

Drawing takes most of a report's time (importing matplotlib, then a fraction of a second a
figure), and no figure depends on another or on the tables. A Painter forks its workers
when the first figure is asked for, after the run's frames are loaded: the workers inherit
the frames, so a job sends only the drawing function (a module-level one), which frame and
small arguments, and brings back what the function returned (the PNG's path, or None).
Each job's `then` runs here, in the order the jobs were given, when the Painter finishes
(its `with` block ends), and puts the figure on the page. Finishing, this process draws
too: the jobs no worker has started yet, from the last one back, while the workers take
them from the first.

Where forking is not possible, safe or worth it (no fork, one CPU, other threads running,
2 or 3 CPUs without matplotlib imported before the fork) the Painter draws each figure
here when it is asked for, as a report always did.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

# Workers only where there are CPUs to spare. On 2 or 3 CPUs, one worker, and only where
# matplotlib is imported before the fork (cvbench report does): this process draws too
# once the tables are done, and with 2 CPUs the report of an 11-instance run took 1.27 s
# against 1.49 s drawn here alone (medians of 15, interleaved). A worker that imports
# matplotlib itself costs more than drawing beside the tables saves (measured on 2 CPUs).
MIN_CPUS = 4
MAX_WORKERS = 8

# The frames of the report being drawn; forked workers inherit them
_frames: tuple = ()


def default_workers() -> int:
    """Worker processes for a report here: one a CPU but one (the tables'), at most
    MAX_WORKERS; with 2 or 3 CPUs, one where matplotlib is imported already; 0 (draw in
    this process) without fork, or while other threads run (a fork copies their locks,
    perhaps held)."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cpus >= MIN_CPUS:
        return min(cpus - 1, MAX_WORKERS)
    return 1 if cpus >= 2 and "matplotlib.figure" in sys.modules else 0


def _draw(function: Callable, frame: int, args: tuple):
    return function(_frames[frame], *args)


class Painter:
    def __init__(self, *frames, workers: int | None = None):
        self.frames = frames
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[tuple[Future, Callable]] = []

    def draw(self, function: Callable, frame, *args, then: Callable = lambda drawn: None) -> None:
        """function(frame, *args), in a worker where there are any; then(its result) later.
        A frame the workers did not inherit is drawn here."""
        index = next((i for i, f in enumerate(self.frames) if f is frame), None)
        if self.workers and index is not None:
            self._pending.append((self._start().submit(_draw, function, index, args), then,
                                  (function, frame, args)))
        else:
            then(function(frame, *args))

    def _start(self) -> ProcessPoolExecutor:
        global _frames
        if self._pool is None:
            _frames = self.frames  # before the fork: the workers start with them
            self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("fork"))
        return self._pool

    def finish(self) -> None:
        """Draw here what no worker has started, from the last job back; then hand every
        figure, in order, to its `then`."""
        global _frames
        try:
            here = {}
            for i in reversed(range(len(self._pending))):
                future, _, (function, frame, args) = self._pending[i]
                if not future.cancel():  # a worker has it, and those before it
                    break
                here[i] = function(frame, *args)
            for i, (future, then, _) in enumerate(self._pending):
                then(here[i] if i in here else future.result())
        finally:
            self._pending = []
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
            _frames = ()

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.finish()
        else:  # the report failed: its figures are of no use
            self._pending = []
            self.finish()
