"""Workload catalogue: the command run inside the guest and the parser of its output.

A command is a POSIX sh string; the agent runs it with `sh -c` in every runtime,
so the bytes executed are those of the guest image everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from bench.params import Param


@dataclass(frozen=True)
class Metric:
    name: str  # dotted, under workload.
    value: float
    unit: str


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    command: Callable[[dict], str]
    parse: Callable[[str], list[Metric]] = lambda output: []
    params: dict[str, Param] = field(default_factory=dict)

    def resolve(self, given: dict, quick: bool = False) -> dict:
        """Parameters with defaults filled in (validation is scenario.py's job)."""
        values = {}
        for key, param in self.params.items():
            value = given.get(key, param.default)
            if quick and param.quick is not None and key not in given:
                value = param.quick
            values[key] = value
        return values


_SYSBENCH_EPS = re.compile(r"events per second:\s*([0-9.]+)")
_SYSBENCH_EVENTS = re.compile(r"total number of events:\s*([0-9]+)")
_SYSBENCH_TIME = re.compile(r"total time:\s*([0-9.]+)s")


def parse_sysbench_cpu(output: str) -> list[Metric]:
    eps = _SYSBENCH_EPS.search(output)
    if not eps:
        raise ValueError("no 'events per second' in sysbench output")
    metrics = [Metric("workload.events_per_s", float(eps.group(1)), "1/s")]
    if events := _SYSBENCH_EVENTS.search(output):
        metrics.append(Metric("workload.events", float(events.group(1)), "1"))
    if total := _SYSBENCH_TIME.search(output):
        metrics.append(Metric("workload.time_s", float(total.group(1)), "s"))
    return metrics


CATALOGUE: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            name="noop",
            description="READY, then exit at once: startup and teardown latency",
            command=lambda p: "true",
        ),
        Workload(
            name="idle",
            description="READY, then sleep: the instance's resting footprint",
            command=lambda p: f"sleep {p['seconds']}",
            params={"seconds": Param(float, 5.0, "how long the instance idles", quick=2.0)},
        ),
        Workload(
            name="cpu",
            description="sysbench cpu (prime search): CPU throughput",
            command=lambda p: (
                f"sysbench cpu --threads={p['threads']} --time={p['seconds']} "
                f"--cpu-max-prime={p['max_prime']} run"
            ),
            parse=parse_sysbench_cpu,
            params={
                "seconds": Param(int, 10, "run time in seconds", quick=2),
                "threads": Param(int, 1, "worker threads"),
                "max_prime": Param(int, 10000, "upper bound of the prime search"),
            },
        ),
    ]
}
