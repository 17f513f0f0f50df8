"""Which containers the engine ran when: one stream of its container events per run, read
by a thread, so that telling the containers that ran beside an instance costs no round trip
(a list and an events query per instance did: two of the nine an instance took)."""

from __future__ import annotations

import threading
import time

GONE = "destroy"  # the last event of a removed container


class ContainerActivity:
    def __init__(self, client):
        # Subscribed before the list: a container that starts between the two is seen twice,
        # never missed
        self._stream = client.events(decode=True, filters={"type": "container"})
        self._running_at_start = {c.id for c in client.containers.list()}
        self._events: list[tuple[float, str, str]] = []  # (wall clock, container id, action)
        self._removed: set[str] = set()
        self._ended = False
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="engine-events", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                with self._arrived:
                    self._events.append((event["timeNano"] / 1e9, event["id"], event["Action"]))
                    if event["Action"] == GONE:
                        self._removed.add(event["id"])
                    self._arrived.notify_all()
        except Exception:  # closed at the end of the run, or the engine went away
            pass
        with self._arrived:
            self._ended = True
            self._arrived.notify_all()

    def others(self, container_id: str | None, since: float, until: float,
               timeout: float = 2.0) -> int:
        """Containers besides container_id that ran at some time between since and until
        (wall clock). Asked once container_id is removed: the events come in order, so once
        its removal is read, so is everything before it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while container_id and container_id not in self._removed and not self._ended:
                if not self._arrived.wait(max(0.0, deadline - time.monotonic())):
                    break  # not removed (a failed removal): what has arrived
            events = list(self._events)
        return others_in(self._running_at_start, events, container_id, since, until)

    def close(self) -> None:
        """Ends the stream, and the thread once it has read what it holds: a report drawn
        after the run forks its painter only where no other thread runs (painter.py)."""
        self._stream.close()
        self._reader.join(timeout=1.0)


def others_in(running_at_start: set[str], events: list[tuple[float, str, str]],
              container_id: str | None, since: float, until: float) -> int:
    """Of the containers running when the events began, and the events since: how many
    besides container_id ran between since and until. Those running at since, and those
    that did anything between since and until."""
    running, active = set(running_at_start), set()
    for t, cid, action in events:
        if t < since:
            if action == "start":
                running.add(cid)
            elif action in ("die", GONE):
                running.discard(cid)
        elif t <= until:
            active.add(cid)
    return len((running | active) - {container_id})
