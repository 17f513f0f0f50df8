"""Burst (mode = "burst"): K instances of one runtime launched at the same moment, a thread
each through the runtime's own API, for each K of `sizes`. What a burst costs:

- every instance's READY latency (p50 and p99 per K are the report's);
- the time until all K are READY, and instances per second;
- the manager's CPU per launch, from the burst's first launch to its last removal.

A runtime whose API serialises launches (one dockerd) shows it: its time until all K are
ready grows like K times one launch. Sizes and runtimes are interleaved within each
repetition, so a slow drift of the host spreads over all of them. The memory floor is
checked before every burst, as in density; every instance is in the run's Cleanup from its
launch on.
"""

from __future__ import annotations

from contextlib import ExitStack

from bench.console import say
from bench.measure import Value
from bench.modes.base import Mode, positive_ints
from bench.modes.density import IDLE_COMMAND, BelowFloor, Pile, floor_mib
from bench.params import Param
from bench.results import SKIPPED

CELL = "burst"
COMMANDS = {"idle": IDLE_COMMAND, "noop": "true"}  # noop: each exits after its READY


class Burst(Mode):
    name = "burst"
    OPTIONS = {
        "sizes": Param(list, [1, 2, 4, 8, 16], "how many instances to launch at the same moment"),
        "workload": Param(str, "idle", "what each instance runs: idle (all K stay up until the "
                          "last is READY) or noop (each exits after its READY)",
                          choices=tuple(COMMANDS)),
        "memory_floor_mib": Param(int, 2048, "no burst that could take host MemAvailable "
                                  "below this"),
    }

    @classmethod
    def checked(cls, options: dict) -> dict:
        return {**options, "sizes": positive_ints(options, "sizes"),
                "memory_floor_mib": floor_mib(options)}

    def run(self, session) -> None:
        sizes = sorted(set(self.options["sizes"]))
        floor, workload = self.options["memory_floor_mib"], self.options["workload"]
        session.announce(f"K in {sizes} launched at once, {workload}, memory floor {floor} MiB")
        piles = {spec.name: Pile(session, spec, runtime, floor, CELL, COMMANDS[workload])
                 for spec, runtime in session.usable()}
        too_big: dict[str, int] = {}  # runtime -> the smallest K the memory floor refused
        failed: set[str] = set()
        for rep in range(session.scenario.reps):
            for k in sizes:
                for name, pile in piles.items():
                    if name in failed or k >= too_big.get(name, k + 1):
                        continue
                    try:
                        burst(pile, k, rep, {"burst_workload": workload})
                    except BelowFloor as exc:  # its smaller bursts go on in every repetition
                        too_big[name] = k
                        pile.save(rep, {"k": k}, Value("burst.all_ready_s", None, "s",
                                                       SKIPPED + str(exc)))
                        say(f"  {name}: no burst of {k} or more: {exc}")
                    except Exception as exc:  # an engine error: this runtime stops
                        failed.add(name)
                        why = f"{type(exc).__name__}: {exc}"
                        session.fail(pile.cell.name)
                        pile.save(rep, {"k": k}, Value("burst.all_ready_s", None, "s", why))
                        say(f"  {name} K={k}: failed: {why[:300]}")


def burst(pile: Pile, k: int, rep: int, tags: dict) -> None:
    """One burst of k, measured and saved."""
    pile.check_floor(k, k, 0)
    engine = pile.runtime.engine
    engine_before = engine.seconds() if engine else None
    with ExitStack() as up:
        _, results = pile.launch_together(up, k)
    tags = {**tags, "k": k}
    # From the first launch call's clock: a native instance's starts once its fence is made
    # (its launch() returns at the exec), and burst.ready_s is on each one's own clock
    all_ready = max(r[2] for r in results) - min(r[0].t_launch for r in results)
    values = [Value("burst.ready_s", ready_s, "s", tags={"i": i})
              for i, (_, ready_s, _) in enumerate(results)]
    values += [Value("burst.all_ready_s", all_ready, "s"),
               Value("burst.launches_per_s", k / all_ready, "1/s")]
    if engine is not None:  # read after the removals: the manager's work for them ends there
        tags["engine_cpu_source"] = engine.source
        values.append(Value("burst.manager_cpu_per_launch_s",
                            engine.spent_since(engine_before, 0.0) / k, "s"))
    pile.save(rep, tags, *values)
    readies = sorted(r[1] for r in results)
    say(f"  {pile.spec.name} K={k} rep {rep}: all ready in {all_ready:.2f} s "
        f"({k / all_ready:.1f}/s), READY p50 {readies[len(readies) // 2]:.3f} s, "
        f"max {readies[-1]:.3f} s")
