"""Everything a run creates is registered here and released on success, error or signal."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable


class Cleanup:
    """A stack of release actions; each runs once, the newest first."""

    def __init__(self):
        self._actions: dict[int, tuple[str, Callable[[], None]]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def add(self, what: str, action: Callable[[], None]) -> int:
        with self._lock:
            self._next += 1
            self._actions[self._next] = (what, action)
            return self._next

    def release(self, token: int) -> None:
        """Run one action now (normal teardown), then forget it; an action cut short
        by a signal stays registered, so run_all finishes it."""
        with self._lock:
            entry = self._actions.get(token)
        if entry:
            entry[1]()
            with self._lock:
                self._actions.pop(token, None)

    def run_all(self) -> list[str]:
        """Run every pending action; collect failures rather than stop at the first."""
        failures = []
        while True:
            with self._lock:
                if not self._actions:
                    return failures
                token = max(self._actions)
                what, action = self._actions.pop(token)
            try:
                action()
            except BaseException as exc:  # keep cleaning even if one action fails
                failures.append(f"{what}: {exc}")

    def __len__(self) -> int:
        return len(self._actions)


@contextmanager
def signals_raise_interrupt():
    """SIGINT and SIGTERM raise KeyboardInterrupt, so one `finally` path cleans up after
    both. SIGINT too: Python leaves it ignored when it started ignored (a job a shell put
    in the background), and then a Ctrl-C sent to the group would do nothing."""

    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def ignore_signals_during(action: Callable[[], None]) -> None:
    """Run cleanup without a second Ctrl-C cutting it short."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        action()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        sys.stdout.flush()
