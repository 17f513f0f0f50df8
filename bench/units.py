"""Numbers for people: one rule for every table, sentence and label cvbench writes.

Metrics are recorded in SI units (s, bytes, 1/s, bytes/s: DESIGN.md §6); people read
bytes in KiB/MiB and short times in ms, so that scaling is done here and nowhere else.
"""

from __future__ import annotations

import math

KiB = 2**10
MiB = 2**20
GiB = 2**30
# Shown for a value that is missing or not a number
MISSING = "—"
# Units a table shows in a larger unit, with the divisor: every row of a column alike
TABLE_UNITS = {"bytes": ("MiB", MiB), "bytes/s": ("MiB/s", MiB)}


def number(value: float | None) -> str:
    """About three significant digits, with fixed decimals per magnitude so that a column
    of numbers lines up: 12,345 / 123.4 / 1.23 / 0.0123."""
    if value is None or math.isnan(value):
        return MISSING
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table_unit(unit: str) -> tuple[str, float]:
    """The unit a table column shows values of `unit` in, and what to divide them by."""
    return TABLE_UNITS.get(unit, (unit, 1))


def quantity(value: float | None, unit: str) -> str:
    """One value with its unit, scaled to read well on its own: bytes in KiB, MiB or GiB,
    times below a second in ms, a count ("1") without a unit."""
    if value is None or math.isnan(value):
        return MISSING
    if unit in ("bytes", "bytes/s"):
        per = unit.removeprefix("bytes")
        scale, name = next(((s, n) for s, n in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB"))
                            if abs(value) >= s), (1, "bytes"))
        return f"{number(value / scale)} {name}{per}"
    if unit == "s" and 0 < abs(value) < 1:
        return f"{number(value * 1000)} ms"
    if unit in ("", "1"):
        return number(value)
    return f"{number(value)} {unit}"
