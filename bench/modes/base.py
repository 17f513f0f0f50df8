"""The contract of a mode: how a scenario is run (cells, density, storage...)."""

from __future__ import annotations

from typing import ClassVar

from bench.params import Param


class Mode:
    """A way to run a scenario. Its options come from the scenario's [mode] table, typed
    like workload parameters; run() gets the session and uses only its public interface."""

    name: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Param]] = {}
    needs_workloads: ClassVar[bool] = False  # False: it builds its own guest commands

    def __init__(self, options: dict):
        self.options = options

    @classmethod
    def checked(cls, options: dict) -> dict:
        """The options with this mode's own rules applied; ValueError("key: problem") if not."""
        return options

    def run(self, session) -> None:
        raise NotImplementedError


def positive(options: dict, *keys: str) -> None:
    for key in keys:
        if options[key] <= 0:
            raise ValueError(f"{key}: must be positive, got {options[key]}")


def positive_ints(options: dict, key: str) -> tuple[int, ...]:
    values = options[key]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{key}: expected a list of positive integers, got {values!r}")
    return tuple(values)
