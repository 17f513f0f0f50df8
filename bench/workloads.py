"""Workload catalogue: the command run inside the guest and the parser of its output.

A command is a POSIX sh string; the agent runs it with `sh -c` in every runtime,
so the bytes executed are those of the guest image everywhere. A serving workload
(net, redis) also has host rounds: sh commands the host runs, from the same guest
root (chroot), against the instance, one per `CVBENCH SERVING` line the guest prints.

Each workload declares the metrics its parsers emit (registered with bench/metrics.py)
and the roles it plays in the report, so that the report asks for "the startup probe"
rather than for a workload by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from bench.hostclient import connection_refused
from bench.meaning import MetricInfo, neither, register
from bench.params import Param
from bench.toolparsers import (
    DD_SYSCALL_METRICS,
    FIO_METRICS,
    FORK_LOOP_METRICS,
    IPERF3_METRICS,
    REDIS_METRICS,
    REDIS_ROUND_TRIP_METRICS,
    SYSBENCH_CPU_METRICS,
    SYSBENCH_MEMORY_METRICS,
    Metric,
    fio_direct,
    parse_dd_syscalls,
    parse_fio_json,
    parse_fork_loop,
    parse_iperf3_both,
    parse_redis_benchmark_csv,
    parse_redis_round_trip,
    parse_sysbench_cpu,
    parse_sysbench_memory,
)


__all__ = ["CATALOGUE", "NO_NEEDS", "Metric", "Needs", "Workload", "parse_sysbench_cpu"]

# Roles, named after what the report uses a workload for:
# starts and exits at once, so its instance costs only its startup (time and CPU)
STARTUP_PROBE = "startup_probe"
# sleeps after READY: the memory an instance holds at rest
RESTING_FOOTPRINT = "resting_footprint"
# busy for seconds after READY: where memory settles when no resting workload ran
LONG_LIVED = "long_lived"

#: Where the disk workload writes, per target: the instance's own root (container
#: writable layer, VM disk, a scratch directory natively) or a host volume.
DISK_DIRS = {"root": "/var/tmp", "volume": "/mnt/volume"}


@dataclass(frozen=True)
class Needs:
    """What an instance must have beyond a root and the agent."""

    serves: bool = False  # a TCP port the host connects to
    direct_net: bool = False  # reached without translation: host network, tap (not NAT)
    scratch: bool = False  # writes under /var/tmp: natively a scratch dir, not the shared root
    volume_mib: int = 0  # a host volume (bind mount, extra VM disk) of this size at /mnt/volume


NO_NEEDS = Needs()


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    command: Callable[[dict], str]
    parse: Callable[[str], list[Metric]] = lambda output: []
    params: dict[str, Param] = field(default_factory=dict)
    main_metric: Callable[[dict], str | None] = lambda params: None
    needs: Callable[[dict], Needs] = lambda params: NO_NEEDS
    output_tags: Callable[[str], dict] = lambda output: {}
    # Serving workloads: the host's commands (one per SERVING line), their parser, and
    # whether a round's output means the server did not answer yet (then it is retried).
    host_rounds: Callable[[dict], list[str]] | None = None
    parse_host: Callable[[list[str]], list[Metric]] = lambda outputs: []
    refused: Callable[[str], bool] = connection_refused
    metrics: tuple[MetricInfo, ...] = ()  # what parse or parse_host emit
    roles: tuple[str, ...] = ()  # what the report uses it for (the role names above)

    def resolve(self, given: dict, quick: bool = False) -> dict:
        """Parameters with defaults filled in (validation is scenario.py's job)."""
        values = {}
        for key, param in self.params.items():
            value = given.get(key, param.default)
            if quick and param.quick is not None and key not in given:
                value = param.quick
            values[key] = value
        return values


# -- commands ------------------------------------------------------------------------


def _fork_command(p: dict) -> str:
    # fork + exec + wait of /bin/true, timed by the guest's own clock. Reading the clock
    # is itself a process ($(date)): the span s..e holds one such process besides the N,
    # so a span c0..s of one clock read alone is printed for the parser to subtract.
    return (f"n={p['count']}; i=0; c0=$(date +%s%N); s=$(date +%s%N); "
            "while [ $i -lt $n ]; do /bin/true; i=$((i+1)); done; "
            'e=$(date +%s%N); echo "cvbench-fork processes=$n ns=$((e-s)) clock_ns=$((s-c0))"')


_FIO_RW = {"randread": "randread", "randwrite": "randwrite", "seqread": "read", "seqwrite": "write"}


def _block_size(p: dict) -> str:
    if p["block_size"] != "auto":
        return p["block_size"]
    return "4k" if p["pattern"].startswith("rand") else "1m"


def _disk_command(p: dict) -> str:
    # O_DIRECT first: overlayfs and gVisor may refuse it, and then the run is buffered
    # and says so (tag direct_io) rather than failing.
    path = f"{DISK_DIRS[p['target']]}/cvbench-fio.dat"
    return (
        f'f={path}; '
        'if err=$(dd if=/dev/zero of="$f" bs=4096 count=1 oflag=direct 2>&1); then '
        'direct=1; echo "cvbench-disk direct=1"; else direct=0; '
        'echo "cvbench-disk direct=0 reason=$(printf %s "$err" | tail -n 1)"; fi; '
        f'fio --name=cvbench --filename="$f" --size={p["size_mib"]}M --rw={_FIO_RW[p["pattern"]]} '
        f'--bs={_block_size(p)} --direct=$direct --ioengine=psync --runtime={p["seconds"]} '
        '--time_based --output-format=json; rc=$?; rm -f "$f"; exit $rc'
    )


def _disk_main_metric(p: dict) -> str:
    return "workload.iops" if _block_size(p) == "4k" else "workload.bytes_per_s"


# sysbench memory walks one block per thread over and over: a block inside the last-level
# cache measures the cache (40-45 GB/s on one thread here, 32 MiB L3), one past it the RAM.
MEMORY_BLOCK_KIB = 64 * 1024
CACHE_BLOCK_KIB = 1024


def _sysbench_memory(name: str, block_kib: int, what: str) -> Workload:
    return Workload(
        name=name,
        description=f"sysbench memory, {block_kib // 1024} MiB blocks: {what}",
        command=lambda p: (
            f"sysbench memory --threads={p['threads']} --time={p['seconds']} "
            f"--memory-block-size={p['block_kib']}K --memory-total-size={p['total_gib']}G "
            f"--memory-oper={p['operation']} run"
        ),
        parse=parse_sysbench_memory,
        metrics=SYSBENCH_MEMORY_METRICS,
        main_metric=lambda p: "workload.bytes_per_s",
        params={
            "seconds": Param(int, 10, "run time limit in seconds", quick=2),
            "threads": Param(int, 1, "worker threads"),
            "block_kib": Param(int, block_kib, "bytes per operation, KiB (the buffer each thread "
                               "walks: past the last-level cache for RAM, inside it for cache)"),
            "total_gib": Param(int, 1000, "stop after this much, GiB (seconds usually ends it first)"),
            "operation": Param(str, "read", "read or write the block", choices=("read", "write")),
        },
    )


# Shared by the serving workloads: print SERVING once the port is listening (read
# from /proc/net/tcp*, as minbase has no ss), or after 3 s: gVisor on the host network
# lists no sockets there, and the host retries a refused connection anyway.
_WAIT_LISTENING = (
    'listening() { grep -q ":$(printf %04X "$1") [0-9A-F]*:0000 0A" '
    '/proc/net/tcp /proc/net/tcp6 2>/dev/null; }; '
    'wait_listening() { i=0; until listening "$1" || [ $i -ge 30 ]; do i=$((i+1)); '
    'sleep 0.1; done; }; '
)


def _net_command(p: dict) -> str:
    # iperf3 -1 serves one test and exits: once for host to guest, once reversed
    return (_WAIT_LISTENING +
            'for direction in host_to_guest guest_to_host; do '
            f'iperf3 -s -1 -B {p["bind"]} -p {p["port"]} >/dev/null 2>&1 & pid=$!; '
            f'wait_listening {p["port"]}; echo "CVBENCH SERVING {p["port"]} $direction"; '
            'wait $pid; done')  # a failed direction is the client's to report


def _net_rounds(p: dict) -> list[str]:
    client = f"iperf3 -c {p['address']} -p {p['port']} -t {p['seconds']} -J"
    return [client, client + " -R"]


def _redis_command(p: dict) -> str:
    # No persistence: the server must write nothing into the root (shared, natively)
    return (_WAIT_LISTENING +
            f"redis-server --port {p['port']} --bind {p['bind']} --protected-mode no "
            "--save '' --appendonly no --dir /tmp --daemonize no >/dev/null 2>&1 & pid=$!; "
            f'wait_listening {p["port"]}; echo "CVBENCH SERVING {p["port"]}"; wait $pid')


def _redis_rounds(p: dict) -> list[str]:
    # The shutdown ends the guest's redis-server, so the instance exits by itself. The
    # timeout: with its connections reset (QEMU user networking, a starved guest)
    # redis-benchmark was seen spinning for minutes instead of exiting.
    return [f"timeout {p['client_timeout_s']} "
            f"redis-benchmark -h {p['address']} -p {p['port']} -t set,get -n {p['requests']} "
            f"-c {p['clients']} --csv; redis-cli -h {p['address']} -p {p['port']} shutdown nosave "
            ">/dev/null 2>&1"]

# The network path from host to a serving instance: a dimension of every serving workload.
PATH_PARAM = Param(str, "default", "network path from the host: default (the runtime's serving "
                   "network: Docker bridge with a published port, QEMU user networking) or direct "
                   "(no address translation: Docker host network, a QEMU tap device)",
                   choices=("default", "direct"))


def _serving(p: dict) -> Needs:
    return Needs(serves=True, direct_net=p["path"] == "direct")


def _redis_refused(output: str) -> bool:
    """Refused only when it never connected (no CSV header): a reset mid-run is the
    result's error, not a server to wait for."""
    return '"test"' not in output and connection_refused(output)


def _rr_rounds(p: dict) -> list[str]:
    return [f"timeout {p['client_timeout_s']} "
            f"redis-benchmark -h {p['address']} -p {p['port']} -t ping_inline -n {p['requests']} "
            f"-c 1 --csv; redis-cli -h {p['address']} -p {p['port']} shutdown nosave >/dev/null 2>&1"]


CATALOGUE: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            name="noop",
            description="READY, then exit at once: startup and teardown latency",
            command=lambda p: "true",
            main_metric=lambda p: "startup.ready_s",
            roles=(STARTUP_PROBE,),
        ),
        Workload(
            name="idle",
            description="READY, then sleep: the instance's resting footprint",
            command=lambda p: f"sleep {p['seconds']}",
            main_metric=lambda p: "mem.pss_bytes",
            params={"seconds": Param(float, 5.0, "how long the instance idles", quick=2.0)},
            roles=(RESTING_FOOTPRINT,),
        ),
        Workload(
            name="cpu",
            description="sysbench cpu (prime search): CPU throughput",
            command=lambda p: (
                f"sysbench cpu --threads={p['threads']} --time={p['seconds']} "
                f"--cpu-max-prime={p['max_prime']} run"
            ),
            parse=parse_sysbench_cpu,
            metrics=SYSBENCH_CPU_METRICS,
            roles=(LONG_LIVED,),
            main_metric=lambda p: "workload.events_per_s",
            params={
                "seconds": Param(int, 10, "run time in seconds", quick=2),
                "threads": Param(int, 1, "worker threads"),
                "max_prime": Param(int, 10000, "upper bound of the prime search"),
            },
        ),
        _sysbench_memory("memory", MEMORY_BLOCK_KIB, "memory (RAM) bandwidth: a block per "
                         "thread past the last-level cache"),
        _sysbench_memory("cache", CACHE_BLOCK_KIB, "cache bandwidth: a block per thread that "
                         "fits in the last-level cache"),
        Workload(
            name="syscall",
            description="dd bs=1 from /dev/zero to /dev/null: a read and a write per byte",
            command=lambda p: f"LC_ALL=C dd if=/dev/zero of=/dev/null bs=1 count={p['count']} 2>&1",
            parse=parse_dd_syscalls,
            metrics=DD_SYSCALL_METRICS,
            main_metric=lambda p: "workload.ns_per_syscall",
            params={"count": Param(int, 1_000_000, "bytes copied (2 system calls each)",
                                   quick=100_000)},
        ),
        Workload(
            name="fork",
            description="a shell loop running /bin/true: process creation (fork + exec + wait)",
            command=_fork_command,
            parse=parse_fork_loop,
            metrics=FORK_LOOP_METRICS,
            main_metric=lambda p: "workload.processes_per_s",
            params={"count": Param(int, 2000, "processes started, one after the other", quick=200)},
        ),
        Workload(
            name="disk",
            description="fio, one job, psync engine, direct I/O where the file system allows",
            command=_disk_command,
            parse=parse_fio_json,
            metrics=FIO_METRICS,
            output_tags=fio_direct,
            main_metric=_disk_main_metric,
            needs=lambda p: Needs(scratch=p["target"] == "root",
                                  volume_mib=p["size_mib"] + 64 if p["target"] == "volume" else 0),
            params={
                "pattern": Param(str, "randread", "access pattern",
                                 choices=tuple(_FIO_RW)),
                "block_size": Param(str, "auto", "fio block size; auto: 4k random, 1m sequential"),
                "size_mib": Param(int, 256, "size of the file fio reads or writes", quick=32),
                "seconds": Param(int, 10, "run time in seconds", quick=2),
                "target": Param(str, "root", "the instance's root or a host volume",
                                choices=tuple(DISK_DIRS)),
            },
        ),
        Workload(
            name="net",
            description="iperf3 server in the instance, client on the host: both directions",
            command=_net_command,
            host_rounds=_net_rounds,
            parse_host=parse_iperf3_both,
            metrics=IPERF3_METRICS,
            main_metric=lambda p: "workload.host_to_guest_bytes_per_s",
            needs=_serving,
            params={"seconds": Param(int, 5, "seconds per direction", quick=1), "path": PATH_PARAM},
        ),
        Workload(
            name="redis",
            description="redis-server in the instance, redis-benchmark on the host: SET and GET",
            command=_redis_command,
            host_rounds=_redis_rounds,
            parse_host=parse_redis_benchmark_csv,
            metrics=REDIS_METRICS,
            refused=_redis_refused,
            main_metric=lambda p: "workload.get_ops_per_s",
            needs=_serving,
            params={
                "requests": Param(int, 100_000, "requests per test (SET, GET)", quick=5000),
                "clients": Param(int, 50, "parallel connections"),
                "client_timeout_s": Param(int, 120, "the host client is stopped after this"),
                "path": PATH_PARAM,
            },
        ),
        Workload(
            name="rr",
            description="request/response round trips host -> instance: redis PING, one client",
            command=_redis_command,
            host_rounds=_rr_rounds,
            parse_host=parse_redis_round_trip,
            metrics=REDIS_ROUND_TRIP_METRICS,
            refused=_redis_refused,
            main_metric=lambda p: "workload.rtt_p50_s",
            needs=_serving,
            params={"requests": Param(int, 20_000, "round trips, one after the other",
                                      quick=2000),
                    "client_timeout_s": Param(int, 120, "the host client is stopped after this"),
                    "path": PATH_PARAM},
        ),
    ]
}


for _workload in CATALOGUE.values():
    register(*_workload.metrics,
             # what the runner records under the workload's name when it failed
             neither(f"workload.{_workload.name}", "1", f"{_workload.name}: failed or unparsable"))


def roles_of(workload: str) -> tuple[str, ...]:
    """The roles of a record's workload. Records name a workload as the scenario did and
    do not carry the catalogue entry it came from: a name that is a catalogue name is that
    entry; any other name (a scenario's own, as `[workloads.disk-randread]`) has none."""
    entry = CATALOGUE.get(workload)
    return entry.roles if entry else ()


def with_role(workloads: list[str], *roles: str) -> list[str]:
    """The workloads (records' names, in their order) that play one of roles."""
    return [w for w in workloads if set(roles_of(w)) & set(roles)]


def names_with_role(role: str) -> list[str]:
    """The catalogue's workloads that play role, for telling people what to run."""
    return [name for name, entry in CATALOGUE.items() if role in entry.roles]
