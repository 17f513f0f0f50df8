"""Records, the append-only store of a run, and loading a run back."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bench.errors import RecordsNotKept

RECORDS = "records.jsonl"
ENVIRONMENT = "environment.json"
# The error of a cell a runtime cannot run: recorded, neither measured nor failed
SKIPPED = "skipped: "
# The format of a record. 1: records written before the field existed (no "schema" key);
# 2: the same fields plus "schema". A format change bumps it, and upgrade() reads the old.
SCHEMA = 2


@dataclass(frozen=True)
class Record:
    """One measured value (DESIGN.md §6). value None means the measurement failed."""

    run: str
    scenario: str
    cell: str
    workload: str
    runtime: str
    kind: str
    rep: int
    warmup: bool
    metric: str
    value: float | None
    unit: str
    t: float
    image: str
    tags: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    schema: int = SCHEMA
    host: str | None = None  # the fleet host it came from (bench/fleet); None on one machine

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        for optional in ("error", "host"):
            if data[optional] is None:
                del data[optional]
        return json.dumps(data, sort_keys=False)


class RecordStore:
    """Appends records to DIR/records.jsonl, flushed and synced one by one.

    A crash or Ctrl-C therefore loses at most the cell in progress.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / RECORDS
        self._file = None
        self.count = 0

    def append(self, records: Iterable[Record]) -> None:
        self.append_lines(record.to_json() for record in records)

    def append_lines(self, lines: Iterable[str]) -> None:
        """Records already in their JSON form (a fleet host's, as it wrote them)."""
        lines = list(lines)
        try:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write("".join(line + "\n" for line in lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise RecordsNotKept(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.count += len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_records(directory: Path) -> list[dict]:
    """Every whole record of records.jsonl, in the current format whatever schema wrote it.
    A line that is not one (torn by a crash mid-write, damaged) is named and skipped."""
    path = Path(directory) / RECORDS
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                row = f"not JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
            if isinstance(row, dict) and {"cell", "metric"} <= row.keys():
                out.append(upgrade(row))
            elif line.strip():
                why = row if isinstance(row, str) else "not a record (no cell or metric)"
                print(f"{path}:{number}: {why}: skipped", file=sys.stderr)
    return out


def upgrade(row: dict) -> dict:
    """One record as the current schema reads it; the only place that knows how the
    format changed. "schema" keeps the version the record was written in."""
    if "schema" not in row:
        # schema 1 lacks only the version itself
        row = {**row, "schema": 1}
    return row


def load_frame(directory: Path):
    """The run's records as a pandas DataFrame, tags flattened to tag.<name> columns."""
    import pandas as pd

    frame = pd.DataFrame(read_records(directory))
    if "tags" in frame:
        # Building the tag columns in one go is ~5x faster than json_normalize on large runs.
        tags = pd.DataFrame([t if isinstance(t, dict) else {} for t in frame.pop("tags")])
        frame = pd.concat([frame, tags.add_prefix("tag.")], axis=1)
    if "error" not in frame:
        frame["error"] = None
    return frame


def aggressor_column(frame):
    """Per record, the aggressor it was measured beside ("" alone, isolation scenarios)."""
    if "tag.aggressor" not in frame:
        return frame.index.to_series().map(lambda _: "")
    tag = frame["tag.aggressor"].fillna("").astype(str)
    return tag.where(tag != "none", "")


def write_environment(directory: Path, environment: dict) -> None:
    """Written whole or not at all: a full disk leaves the last whole one in place."""
    path = Path(directory) / ENVIRONMENT
    staged = path.with_name(ENVIRONMENT + ".new")
    try:
        staged.write_text(json.dumps(environment, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def read_environment(directory: Path) -> dict:
    path = Path(directory) / ENVIRONMENT
    return json.loads(path.read_text()) if path.exists() else {}


def host_environment() -> dict:
    """What the numbers depend on: host, kernel, CPU, memory, cgroup version."""
    import platform

    import psutil

    from bench import __version__
    from bench.collect.cgroups import cgroup_version

    cpu_model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "os": _os_release(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "cgroup_version": cgroup_version(),
        "python": platform.python_version(),
        "cvbench": __version__,
        "kvm_device": os.path.exists("/dev/kvm"),
        # "lab": the VM of `cvbench lab`, standing in for a user's host (bench/lab)
        "host_shape": os.environ.get("CVBENCH_HOST_SHAPE", "host"),
        "under_hypervisor": running_under_hypervisor(),
        "boot_id": host_boot_id(),
    }


def running_under_hypervisor() -> bool:
    """The CPU says it is virtual: KVM here is nested, VMs run inside a VM."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " hypervisor" in line for line in cpuinfo)
    except OSError:
        return False


def host_boot_id() -> str | None:
    """The running kernel's identity: an instance that reads the same one shares it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _os_release() -> str | None:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None
