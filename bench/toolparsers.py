"""Parsers of the workload tools' output: text in, Metric list out.

Each is tested against output captured from the real tool (tests/golden/). A parser
that does not find what it needs raises ValueError: the runner records the cell as
unparsable instead of inventing a number.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from bench.meaning import higher, lower, neither
from bench.units import MiB


# Each parser's metrics are declared beside it (a *_METRICS tuple); the workload
# catalogue registers them with the metric registry (bench/metrics.py).
RUN_TIME = neither("workload.time_s", "s", "the run's length (set by the scenario)")


@dataclass(frozen=True)
class Metric:
    name: str  # dotted, under workload.
    value: float | None
    unit: str
    error: str | None = None  # a part of the output that failed while the rest counts


# -- sysbench ---------------------------------------------------------------------------

_SYSBENCH_EPS = re.compile(r"events per second:\s*([0-9.]+)")
_SYSBENCH_EVENTS = re.compile(r"total number of events:\s*([0-9]+)")
_SYSBENCH_TIME = re.compile(r"total time:\s*([0-9.]+)s")
# "10240.00 MiB transferred (5117.97 MiB/sec)"
_SYSBENCH_TRANSFERRED = re.compile(r"([0-9.]+) MiB transferred \(([0-9.]+) MiB/sec\)")


SYSBENCH_CPU_METRICS = (
    higher("workload.events_per_s", "1/s", "CPU events per second", key=True),
    neither("workload.events", "1", "events in the run"),
    RUN_TIME,
)


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


SYSBENCH_MEMORY_METRICS = (
    higher("workload.bytes_per_s", "bytes/s", "bytes moved per second"),
    neither("workload.bytes", "bytes", "bytes moved in the run"),
    RUN_TIME,
)


def parse_sysbench_memory(output: str) -> list[Metric]:
    found = _SYSBENCH_TRANSFERRED.search(output)
    if not found:
        raise ValueError("no 'MiB transferred (... MiB/sec)' in sysbench memory output")
    metrics = [Metric("workload.bytes_per_s", float(found.group(2)) * MiB, "bytes/s"),
               Metric("workload.bytes", float(found.group(1)) * MiB, "bytes")]
    if total := _SYSBENCH_TIME.search(output):
        metrics.append(Metric("workload.time_s", float(total.group(1)), "s"))
    return metrics


# -- dd: a syscall loop -----------------------------------------------------------------

# GNU dd's last line: "1000000 bytes (1.0 MB, 977 KiB) copied, 0.5 s, 2.0 MB/s"
_DD_COPIED = re.compile(r"^(\d+) bytes .*copied, ([0-9.e+-]+) s,", re.MULTILINE)
_DD_RECORDS_IN = re.compile(r"^(\d+)\+(\d+) records in", re.MULTILINE)


DD_SYSCALL_METRICS = (
    lower("workload.ns_per_syscall", "ns", "time per system call"),
    neither("workload.syscalls", "1", "system calls made"),
    RUN_TIME,
)


def parse_dd_syscalls(output: str) -> list[Metric]:
    """bs=1 dd: one read and one write per record, so 2 system calls per record."""
    copied, records = _DD_COPIED.search(output), _DD_RECORDS_IN.search(output)
    if not copied or not records:
        raise ValueError("no 'records in' and 'copied, ... s' lines in dd output")
    blocks = int(records.group(1)) + int(records.group(2))
    seconds = float(copied.group(2))
    if blocks == 0 or seconds <= 0:
        raise ValueError(f"dd copied {blocks} records in {seconds} s: nothing to divide")
    return [Metric("workload.ns_per_syscall", seconds / (2 * blocks) * 1e9, "ns"),
            Metric("workload.syscalls", 2.0 * blocks, "1"),
            Metric("workload.time_s", seconds, "s")]


# -- fork: the guest's own shell loop ---------------------------------------------------

# Printed by the fork workload's command (workloads.py): processes and nanoseconds.
# clock_ns: one clock read ($(date), itself a process) timed alone; absent in old output
_FORK_LINE = re.compile(r"^cvbench-fork processes=(\d+) ns=(\d+)(?: clock_ns=(\d+))?$",
                        re.MULTILINE)


FORK_LOOP_METRICS = (
    higher("workload.processes_per_s", "1/s", "processes started (fork + exec + wait) per second"),
    RUN_TIME,
)


def parse_fork_loop(output: str) -> list[Metric]:
    found = _FORK_LINE.search(output)
    if not found:
        raise ValueError("no 'cvbench-fork processes=N ns=T' line in output")
    # the span holds the N processes and one clock read: only the N are timed
    processes, ns = int(found.group(1)), int(found.group(2)) - int(found.group(3) or 0)
    if processes == 0 or ns <= 0:
        raise ValueError(f"{processes} processes in {ns} ns: nothing to divide")
    return [Metric("workload.processes_per_s", processes / (ns / 1e9), "1/s"),
            Metric("workload.time_s", ns / 1e9, "s")]


# -- fio --------------------------------------------------------------------------------

# Printed by the disk workload's command before fio runs: whether O_DIRECT was usable.
_DIRECT_LINE = re.compile(r"^cvbench-disk direct=([01])(?: reason=(.*))?$", re.MULTILINE)


def fio_direct(output: str) -> dict:
    """Tags: whether the run used direct I/O, and why not when it fell back."""
    found = _DIRECT_LINE.search(output)
    if not found:
        return {}
    tags = {"direct_io": found.group(1) == "1"}
    if found.group(2):
        tags["direct_io_fallback"] = found.group(2).strip()
    return tags


FIO_METRICS = (
    higher("workload.iops", "1/s", "I/O operations per second"),
    higher("workload.bytes_per_s", "bytes/s", "bytes moved per second"),
    lower("workload.lat_p50_s", "s", "I/O completion latency, median"),
    lower("workload.lat_p99_s", "s", "I/O completion latency, 99th percentile"),
)


def parse_fio_json(output: str) -> list[Metric]:
    """One job's read or write side (whichever did I/O) from fio --output-format=json."""
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON object in fio output")
    try:
        report, _ = json.JSONDecoder().raw_decode(output[start:])
        job = report["jobs"][0]
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"fio JSON without jobs: {exc}") from None
    if job.get("error"):
        raise ValueError(f"fio job error {job['error']}")
    sides = [side for side in ("read", "write") if job.get(side, {}).get("total_ios", 0) > 0]
    if not sides:
        raise ValueError("fio did no I/O")
    io_side = job[sides[0]]
    percentiles = io_side.get("clat_ns", {}).get("percentile", {})
    metrics = [Metric("workload.iops", float(io_side["iops"]), "1/s"),
               Metric("workload.bytes_per_s", float(io_side["bw_bytes"]), "bytes/s")]
    for label, key in (("p50", "50.000000"), ("p99", "99.000000")):
        if key in percentiles:
            metrics.append(Metric(f"workload.lat_{label}_s", percentiles[key] / 1e9, "s"))
    return metrics


# -- iperf3 -----------------------------------------------------------------------------


def parse_iperf3_json(output: str) -> float:
    """Bytes per second the receiver saw (iperf3 -J): what arrived, not what was sent."""
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON object in iperf3 output")
    try:
        report, _ = json.JSONDecoder().raw_decode(output[start:])
    except ValueError as exc:
        raise ValueError(f"iperf3 output is not JSON: {exc}") from None
    if report.get("error"):
        raise ValueError(f"iperf3: {report['error']}")
    try:
        return report["end"]["sum_received"]["bits_per_second"] / 8
    except KeyError:
        raise ValueError("iperf3 JSON without end.sum_received") from None


IPERF3_DIRECTIONS = ("host_to_guest", "guest_to_host")
IPERF3_METRICS = tuple(higher(f"workload.{d}_bytes_per_s", "bytes/s",
                              f"TCP throughput, {d.replace('_', ' ')}")
                       for d in IPERF3_DIRECTIONS)


def parse_iperf3_both(outputs: list[str]) -> list[Metric]:
    """Two iperf3 client runs: host to guest, then guest to host (-R). One direction can
    fail while the other works (gVisor's host network did): each keeps its own error."""
    if len(outputs) != 2:
        raise ValueError(f"expected 2 iperf3 runs, got {len(outputs)}")
    metrics, errors = [], []
    for direction, output in zip(IPERF3_DIRECTIONS, outputs):
        name = f"workload.{direction}_bytes_per_s"
        try:
            metrics.append(Metric(name, parse_iperf3_json(output), "bytes/s"))
        except ValueError as exc:
            errors.append(str(exc))
            metrics.append(Metric(name, None, "bytes/s", error=str(exc)))
    if len(errors) == len(outputs):
        raise ValueError("; ".join(errors))
    return metrics


# -- redis-benchmark --------------------------------------------------------------------


REDIS_TESTS = ("set", "get")
REDIS_METRICS = tuple(m for test in REDIS_TESTS for m in (
    higher(f"workload.{test}_ops_per_s", "1/s", f"redis {test.upper()} requests per second"),
    lower(f"workload.{test}_p50_s", "s", f"redis {test.upper()} latency, median"),
    lower(f"workload.{test}_p99_s", "s", f"redis {test.upper()} latency, 99th percentile")))
REDIS_ROUND_TRIP_METRICS = (
    lower("workload.rtt_p50_s", "s", "request/response round trip, median"),
    lower("workload.rtt_p99_s", "s", "request/response round trip, 99th percentile"),
    higher("workload.round_trips_per_s", "1/s", "round trips per second, one at a time"),
)


def _redis_rows(text: str) -> dict[str, dict]:
    lines = [line for line in text.splitlines() if line.startswith('"')]
    return {(row.get("test") or "").lower(): row
            for row in csv.DictReader(io.StringIO("\n".join(lines)))}


def parse_redis_round_trip(outputs: list[str]) -> list[Metric]:
    """redis-benchmark -t ping_inline -c 1 --csv: one request in flight, so each latency is
    a round trip over the network path plus the server's trivial reply."""
    text = "\n".join(outputs)
    row = _redis_rows(text).get("ping_inline")
    if row is None:
        raise ValueError("no PING_INLINE row in redis-benchmark --csv output: "
                         + " | ".join(text.strip().splitlines()[-2:]))
    try:
        return [Metric("workload.rtt_p50_s", float(row["p50_latency_ms"]) / 1e3, "s"),
                Metric("workload.rtt_p99_s", float(row["p99_latency_ms"]) / 1e3, "s"),
                Metric("workload.round_trips_per_s", float(row["rps"]), "1/s")]
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"redis-benchmark row {row}: {exc}") from None


def parse_redis_benchmark_csv(outputs: list[str]) -> list[Metric]:
    """redis-benchmark --csv: ops/s and latency percentiles (ms) per test. A test without
    its row (its connections reset) keeps an error, so it is not silently missing."""
    text = "\n".join(outputs)
    rows = _redis_rows(text)
    if not any(test in rows for test in REDIS_TESTS):
        raise ValueError("no SET or GET rows in redis-benchmark --csv output: "
                         + " | ".join(text.strip().splitlines()[-2:]))
    complaints = " | ".join(line for line in text.splitlines() if not line.startswith('"'))
    metrics = []
    for test in REDIS_TESTS:
        names = [(f"workload.{test}_ops_per_s", "1/s", "rps", 1.0)] + [
            (f"workload.{test}_{label}_s", "s", f"{label}_latency_ms", 1e-3) for label in ("p50", "p99")]
        row = rows.get(test)
        for name, unit, column, scale in names:
            if row is None:
                metrics.append(Metric(name, None, unit, error=f"no {test.upper()} row: {complaints}"))
                continue
            try:
                metrics.append(Metric(name, float(row[column]) * scale, unit))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"redis-benchmark row {row}: {exc}") from None
    return metrics
