"""What a metric means: its unit, which way is better, whether the gate may judge it, an
absolute noise floor, a label for people. Those who produce metrics (the workloads and
their parsers, the runtime kinds' startup phases) register them here; bench/metrics.py
is the whole registry, with every producer loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER = "lower"
HIGHER = "higher"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    unit: str
    better: str | None  # LOWER, HIGHER, or None: neither way is better (a count, an echo)
    label: str
    # A change can fail the gate: where it is the cell's main metric, or the thresholds
    # file gates it. Only a metric with a better direction can be gated.
    gated: bool = True
    # In the metric's unit: a median that moved less than this is noise, whatever the
    # relative change. None registered today: thresholds.toml's per-metric min_change is
    # relative and machine-specific, so it stays in the thresholds file.
    floor: float | None = None
    key: bool = False  # a row of the report's summary table

    def __post_init__(self):
        if self.better not in (LOWER, HIGHER, None):
            raise ValueError(f"{self.name}: better must be {LOWER!r}, {HIGHER!r} or None")
        if self.gated and self.better is None:
            raise ValueError(f"{self.name}: a metric without a better direction cannot be gated")

    @property
    def sign(self) -> int | None:
        """What the gate reads: +1 higher is better, -1 lower is better, None not judged."""
        if not self.gated:
            return None
        return +1 if self.better == HIGHER else -1


def lower(name: str, unit: str, label: str, **more) -> MetricInfo:
    """A cost: time, memory, disk. Gated unless told otherwise."""
    return MetricInfo(name, unit, LOWER, label, **more)


def higher(name: str, unit: str, label: str, **more) -> MetricInfo:
    """A rate of work done. Gated unless told otherwise."""
    return MetricInfo(name, unit, HIGHER, label, **more)


def neither(name: str, unit: str, label: str) -> MetricInfo:
    """Not a performance metric: an echo of the scenario, a count, what happened around
    the measurement. Shown, never gated."""
    return MetricInfo(name, unit, None, label, gated=False)


_REGISTRY: dict[str, MetricInfo] = {}


def register(*infos: MetricInfo) -> tuple[MetricInfo, ...]:
    """Add metrics; registering a name again is fine only with the same meaning."""
    for info in infos:
        known = _REGISTRY.setdefault(info.name, info)
        if known != info:
            raise ValueError(f"metric {info.name} registered twice, differently: {known} vs {info}")
    return infos


def registered() -> dict[str, MetricInfo]:
    """What is registered so far, in the order registered (bench.metrics: all of it)."""
    return dict(_REGISTRY)
