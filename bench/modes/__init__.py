"""Modes, found by name through this registry: a new mode is one module here, one line
below, and its section in the report."""

from bench.modes.allocation import Allocation
from bench.modes.base import Mode
from bench.modes.burst import Burst
from bench.modes.cells import Cells
from bench.modes.density import Density
from bench.modes.isolation import Isolation
from bench.modes.storage import Storage
from bench.modes.warm import Warm

MODES: dict[str, type[Mode]] = {
    cls.name: cls for cls in (Cells, Density, Burst, Warm, Storage, Allocation, Isolation)
}

__all__ = ["MODES", "Mode"]
