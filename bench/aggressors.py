"""The noisy neighbours of the isolation scenario: one guest command each.

An aggressor always runs under limits (a CPU quota, a memory limit and a process limit,
the same in every runtime) and never ends by itself: the host removes it. Where the
workload catalogue has the tool, the aggressor is that workload's own command, so it is
the same bytes in every runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.workloads import CATALOGUE, NO_NEEDS, Needs

NONE = "none"  # the victim alone
FOREVER_S = 86400


@dataclass(frozen=True)
class Aggressor:
    name: str
    description: str
    command: Callable[[int, int], str]  # (threads, memory_mib) -> sh
    needs: Needs = NO_NEEDS


def _cpu(threads: int, memory_mib: int) -> str:
    return CATALOGUE["cpu"].command({"threads": threads, "seconds": FOREVER_S, "max_prime": 10000})


def _memory(threads: int, memory_mib: int) -> str:
    # A buffer per thread of a quarter of the limit, spread over the threads: far beyond
    # any cache, well inside the limit.
    block_mib = max(1, memory_mib // (4 * threads))
    return CATALOGUE["memory"].command({"threads": threads, "seconds": FOREVER_S,
                                        "block_kib": block_mib * 1024, "total_gib": 10**6,
                                        "operation": "write"})


def _disk(threads: int, memory_mib: int) -> str:
    return CATALOGUE["disk"].command({"pattern": "randwrite", "block_size": "4k", "size_mib": 256,
                                      "seconds": FOREVER_S, "target": "root"})


def _fork_bomb(threads: int, memory_mib: int) -> str:
    # Every process forks for ever: at the process limit, all of them spin on a failing fork
    return "perl -e 'fork while 1'"


def _memory_hog(threads: int, memory_mib: int) -> str:
    # Asks for twice its limit, is OOM-killed, asks again: the neighbour that keeps the
    # memory controller (or the guest kernel) reclaiming
    return (f"while :; do perl -e '$x = \"\\0\" x ($ARGV[0] << 20)' {2 * memory_mib}; "
            "sleep 0.1; done")


AGGRESSORS: dict[str, Aggressor] = {a.name: a for a in [
    Aggressor(NONE, "no neighbour: the victim alone", lambda threads, memory_mib: "true"),
    Aggressor("cpu", "sysbench cpu, a thread per host CPU, under its CPU quota", _cpu),
    Aggressor("memory", "sysbench memory writes, a thread per host CPU: memory bandwidth",
              _memory),
    Aggressor("disk", "fio 4 KiB random writes, direct I/O where allowed, on its own root",
              _disk, Needs(scratch=True)),
    Aggressor("forkbomb", "perl 'fork while 1' under the process limit", _fork_bomb),
    Aggressor("memhog", "allocates twice its memory limit, again after each OOM kill",
              _memory_hog),
]}
