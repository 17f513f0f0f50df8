"""What a run prints: a progress bar over its steps, and one line per instance measured."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager

from bench.results import SKIPPED, Record
from bench.units import quantity


class ProgressBar:
    """What a long run shows: the step going on, a line per step done, how far it is."""

    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def start(self, label: str) -> None:
        self.progress.update(self.task, description=label)

    def done(self, line: str) -> None:
        self.progress.console.print(line)
        self.progress.advance(self.task)


class PlainProgress:
    """The same lines without a bar, where nobody watches a terminal (a CI log, a pipe):
    no live redraw, and rich not imported at all."""

    def __init__(self, total: int):
        self.total, self.count = total, 0

    def start(self, label: str) -> None:
        pass

    def done(self, line: str) -> None:
        self.count += 1
        print(MARKUP.sub("", line), flush=True)


# The markup cvbench's own lines use; anything else in brackets is text ("[Errno 28]")
MARKUP = re.compile(r"\[/?(?:bold )?(?:red|yellow|green|bold)\]")


@contextmanager
def progress_bar(total: int):
    if not sys.stdout.isatty():
        yield PlainProgress(total)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    # soft_wrap: a step's line stays one line in a log, whatever the terminal's width.
    # Redrawn twice a second, not rich's 10: the bar shares the host with what it measures.
    with Progress(*columns, console=Console(soft_wrap=True), transient=False,
                  refresh_per_second=2) as progress:
        yield ProgressBar(progress, progress.add_task("starting", total=total))


def say(line: str) -> None:
    print(line, flush=True)


def summary_line(label: str, records: list[Record]) -> str:
    """One instance of a cell: how long to READY, its main metric, its PSS; or why it failed."""
    errors = [r.error for r in records if r.error and not r.metric.startswith("mem.")]
    if errors and errors[0].startswith(SKIPPED):
        return f"  {label}: [yellow]{errors[0][:200]}[/yellow]"
    if errors:
        return f"  {label}: [red]failed[/red] {errors[0][:200]}"
    shown = {r.metric: (r.value, r.unit) for r in records}
    parts = [f"ready {quantity(*shown['startup.ready_s'])}" if "startup.ready_s" in shown else
             f"restored {quantity(*shown['startup.restore_s'])}"]
    main = records[0].tags.get("main_metric") if records else None
    if main in shown and main.startswith("workload."):  # startup and PSS have their own
        parts.append(f"{main.removeprefix('workload.')} {quantity(*shown[main])}")
    if shown.get("mem.pss_bytes", (None,))[0]:
        parts.append(f"PSS {quantity(*shown['mem.pss_bytes'])}")
    return f"  {label}: " + ", ".join(parts)
