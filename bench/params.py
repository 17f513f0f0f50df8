"""Typed parameters of workloads and runtimes, as a scenario file sets them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    type: type
    default: object
    help: str
    quick: object = None  # value under --quick; None keeps the default
    choices: tuple = ()

    def check(self, value) -> str | None:
        """Why value is not acceptable, or None."""
        ok_types = (int, float) if self.type is float else (self.type,)
        if isinstance(value, bool) and self.type is not bool or not isinstance(value, ok_types):
            return f"expected {self.type.__name__}, got {type(value).__name__} {value!r}"
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(map(str, self.choices))}, got {value!r}"
        return None
