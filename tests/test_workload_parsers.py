"""The workload tools' parsers against output captured from the guest image's own
binaries (chroot into its root on this Debian 12 host, kernel 6.18; Debian 12 tools at the
top level, Debian 13 ones under trixie/), and the
commands the catalogue builds from scenario parameters."""

import pytest

from bench.toolparsers import (
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
from bench.units import MiB
from bench.workloads import CATALOGUE, Needs


def by_name(metrics):
    return {m.name: m for m in metrics}


def test_sysbench_memory_read(golden):
    m = by_name(parse_sysbench_memory((golden / "sysbench_memory_read.txt").read_text()))
    assert m["workload.bytes_per_s"].value == pytest.approx(40011.91 * MiB)
    assert m["workload.bytes_per_s"].unit == "bytes/s"
    assert m["workload.bytes"].value == 80055 * MiB
    assert m["workload.time_s"].value == 2.0001


def test_sysbench_memory_past_the_cache(golden):
    # the guest root's sysbench on this host, 64 MiB blocks: RAM, not the 20-45 GB/s of 1 MiB
    text = (golden / "trixie" / "sysbench_memory_read_64m.txt").read_text()
    assert "block size: 65536KiB" in text
    m = by_name(parse_sysbench_memory(text))
    assert m["workload.bytes_per_s"].value == pytest.approx(5707.65 * MiB)


def test_memory_measures_ram_and_cache_measures_the_cache():
    memory, cache = (CATALOGUE[n] for n in ("memory", "cache"))
    assert "--memory-block-size=65536K" in memory.command(memory.resolve({}))  # > 32 MiB L3
    assert "--memory-block-size=1024K" in cache.command(cache.resolve({}))
    assert "RAM" in memory.description and "cache bandwidth" in cache.description


def test_sysbench_memory_write_small_blocks(golden):
    text = (golden / "sysbench_memory_write.txt").read_text()
    assert "block size: 1KiB" in text and "operation: write" in text
    # "11369.90 MiB transferred (5680.66 MiB/sec)"
    assert by_name(parse_sysbench_memory(text))["workload.bytes_per_s"].value == \
        pytest.approx(5680.66 * MiB)


def test_sysbench_memory_garbage():
    with pytest.raises(ValueError, match="MiB transferred"):
        parse_sysbench_memory("FATAL: invalid option")


def test_dd_two_syscalls_per_byte(golden):
    m = by_name(parse_dd_syscalls((golden / "dd_syscalls.txt").read_text()))
    # 200000 records in 0.112075 s, each a read and a write
    assert m["workload.syscalls"].value == 400_000
    assert m["workload.ns_per_syscall"].value == pytest.approx(0.112075 / 400_000 * 1e9)
    assert m["workload.ns_per_syscall"].unit == "ns"


def test_dd_without_summary_is_an_error():
    with pytest.raises(ValueError, match="records in"):
        parse_dd_syscalls("dd: failed to open '/dev/zero': Permission denied")


def test_fork_loop_of_an_agent_before_the_clock_read(golden):
    m = by_name(parse_fork_loop((golden / "fork_loop.txt").read_text()))
    assert m["workload.processes_per_s"].value == pytest.approx(300 / 1.119484234)
    assert m["workload.time_s"].value == pytest.approx(1.119484234)


def test_fork_loop_times_only_the_n_processes(golden):
    # the guest root's sh (chroot), 300 processes: the span held one $(date) besides them,
    # and a clock read alone took 1.56 ms
    m = by_name(parse_fork_loop((golden / "fork_loop_clock.txt").read_text()))
    assert m["workload.time_s"].value == pytest.approx((272197776 - 1555331) / 1e9)
    assert m["workload.processes_per_s"].value == pytest.approx(1108.5, abs=0.1)


def test_fork_command_reads_the_clock_once_alone():
    command = CATALOGUE["fork"].command({"count": 5})
    assert command.index("c0=$(date") < command.index("s=$(date") < command.index("while")
    assert "clock_ns=$((s-c0))" in command


@pytest.mark.parametrize("name, side, block", [
    ("fio_randread_4k.json", "read", 4096), ("fio_randwrite_4k.json", "write", 4096),
    ("fio_read_1m.json", "read", MiB), ("fio_write_1m.json", "write", MiB)])
def test_fio_json(golden, name, side, block):
    import json

    text = (golden / name).read_text()
    raw = json.loads(text)["jobs"][0][side]
    m = by_name(parse_fio_json(text))
    assert m["workload.iops"].value == pytest.approx(raw["iops"])
    assert m["workload.bytes_per_s"].value == raw["bw_bytes"]
    # bytes/s = IOPS x block size, up to fio's rounding
    assert m["workload.bytes_per_s"].value == pytest.approx(raw["iops"] * block, rel=0.01)
    assert m["workload.lat_p50_s"].value == raw["clat_ns"]["percentile"]["50.000000"] / 1e9
    assert 0 < m["workload.lat_p50_s"].value <= m["workload.lat_p99_s"].value


def test_fio_fallback_to_buffered_io(golden):
    # ramfs has no O_DIRECT: the command's dd probe fails, fio runs buffered, the tags say so
    text = (golden / "disk_ramfs_buffered_fallback.txt").read_text()
    assert fio_direct(text) == {
        "direct_io": False,
        "direct_io_fallback": "dd: failed to open '/var/tmp/cvbench-fio.dat': Invalid argument"}
    assert by_name(parse_fio_json(text))["workload.iops"].value == 408798.201798  # job's read side
    assert fio_direct("cvbench-disk direct=1\n{}") == {"direct_io": True}


def test_fio_error_is_an_error():
    with pytest.raises(ValueError, match="no JSON"):
        parse_fio_json("fio: pid=0, err=22/file:filesetup.c:240, func=open, error=Invalid argument")


def test_iperf3_both_directions(golden):
    up = (golden / "iperf3_host_to_guest.json").read_text()
    down = (golden / "iperf3_guest_to_host.json").read_text()
    m = by_name(parse_iperf3_both([up, down]))
    # what the receiver got (end.sum_received: 300,285,952 bytes in 1.000762 s), not what
    # was sent (305,266,688 bytes)
    assert m["workload.host_to_guest_bytes_per_s"].value == pytest.approx(300285952 / 1.000762)
    assert m["workload.guest_to_host_bytes_per_s"].value == pytest.approx(299892736 / 1.000025)
    assert m["workload.host_to_guest_bytes_per_s"].unit == "bytes/s"
    assert all(metric.error is None for metric in m.values())


def test_iperf3_one_direction_failed(golden):
    refused = (golden / "iperf3_refused.json").read_text()
    m = by_name(parse_iperf3_both([refused, (golden / "iperf3_guest_to_host.json").read_text()]))
    assert m["workload.host_to_guest_bytes_per_s"].value is None
    assert "Connection refused" in m["workload.host_to_guest_bytes_per_s"].error
    assert m["workload.guest_to_host_bytes_per_s"].value == pytest.approx(299892736 / 1.000025)
    with pytest.raises(ValueError, match="Connection refused"):
        parse_iperf3_both([refused, refused])


def test_redis_benchmark_csv(golden):
    m = by_name(parse_redis_benchmark_csv([(golden / "redis_benchmark.csv").read_text()]))
    assert m["workload.set_ops_per_s"].value == 7443.25
    assert m["workload.get_ops_per_s"].value == 7202.02
    assert m["workload.get_p50_s"].value == pytest.approx(0.383e-3)
    assert m["workload.get_p99_s"].value == pytest.approx(11.159e-3)
    assert m["workload.set_p99_s"].unit == "s"


def test_redis_refused_is_an_error():
    with pytest.raises(ValueError, match="no SET or GET rows.*Connection refused"):
        parse_redis_benchmark_csv(["Could not connect to Redis at 127.0.0.1:6379: Connection refused"])


# -- the catalogue ----------------------------------------------------------------------


def test_every_workload_has_quick_sizes():
    for name in ("memory", "cache", "syscall", "fork", "disk", "net", "redis", "rr"):
        workload = CATALOGUE[name]
        assert any(p.quick is not None for p in workload.params.values()), name
        assert workload.main_metric(workload.resolve({})).startswith("workload."), name


def test_disk_command_and_needs():
    disk = CATALOGUE["disk"]
    params = disk.resolve({"pattern": "seqwrite", "target": "volume"}, quick=True)
    command = disk.command(params)
    assert "--rw=write --bs=1m" in command and "--size=32M" in command
    assert "/mnt/volume/cvbench-fio.dat" in command and "--output-format=json" in command
    assert disk.needs(params) == Needs(volume_mib=32 + 64)
    assert disk.main_metric(params) == "workload.bytes_per_s"
    random_root = disk.resolve({})
    assert "--rw=randread --bs=4k" in disk.command(random_root)
    assert disk.needs(random_root) == Needs(scratch=True)
    assert disk.main_metric(random_root) == "workload.iops"


def test_serving_workloads_bind_and_rounds():
    net, redis = CATALOGUE["net"], CATALOGUE["redis"]
    params = dict(net.resolve({}, quick=True), port=5555, bind="127.0.0.1", address="127.0.0.1")
    assert "iperf3 -s -1 -B 127.0.0.1 -p 5555" in net.command(params)
    assert "CVBENCH SERVING 5555" in net.command(params)
    assert net.host_rounds(params) == ["iperf3 -c 127.0.0.1 -p 5555 -t 1 -J",
                                       "iperf3 -c 127.0.0.1 -p 5555 -t 1 -J -R"]
    assert net.needs(params).serves and not net.needs(params).direct_net
    params = dict(redis.resolve({"path": "direct"}), port=6000, bind="0.0.0.0", address="10.213.0.2")
    assert redis.needs(params).direct_net
    assert "--save ''" in redis.command(params) and "--bind 0.0.0.0" in redis.command(params)
    (round_,) = redis.host_rounds(params)
    assert "-h 10.213.0.2 -p 6000 -t set,get -n 100000 -c 50 --csv" in round_
    assert "shutdown nosave" in round_
    assert round_.startswith("timeout 120 redis-benchmark")


def test_redis_get_reset_keeps_set_and_says_why(golden):
    # Captured from redis@qemu (TCG, user networking): GET's connections were reset
    text = (golden / "redis_benchmark_get_reset.txt").read_text()
    m = by_name(parse_redis_benchmark_csv([text]))
    assert m["workload.set_ops_per_s"].value == 2427.18 and m["workload.set_ops_per_s"].error is None
    assert m["workload.get_ops_per_s"].value is None
    assert "Connection reset by peer" in m["workload.get_ops_per_s"].error
    redis = CATALOGUE["redis"]
    assert not redis.refused(text)  # SET ran: a result with an error, not a server to wait for
    assert redis.refused("Could not connect to Redis at 127.0.0.1:6379: Connection refused")
    # Seen from redis@qemu under load: connected (CSV header), then every SET reset
    header_only = text.splitlines()[0] + "\nError: Connection reset by peer\n"
    assert not redis.refused(header_only)
    with pytest.raises(ValueError, match="Connection reset by peer"):
        parse_redis_benchmark_csv([header_only])


def test_redis_ping_round_trip(golden):
    from bench.toolparsers import parse_redis_round_trip

    m = by_name(parse_redis_round_trip([(golden / "redis_benchmark_ping_rr.csv").read_text()]))
    assert m["workload.rtt_p50_s"].value == pytest.approx(0.031e-3)
    assert m["workload.rtt_p99_s"].value == pytest.approx(0.095e-3)
    assert m["workload.round_trips_per_s"].value == 28735.63
    with pytest.raises(ValueError, match="PING_INLINE"):
        parse_redis_round_trip([(golden / "redis_benchmark.csv").read_text()])
    rr = CATALOGUE["rr"]
    (round_,) = rr.host_rounds(dict(rr.resolve({}, quick=True), port=7000, bind="127.0.0.1",
                                               address="127.0.0.1"))
    assert "-t ping_inline -n 2000 -c 1 --csv" in round_


# The guest image moved to Debian 13 (trixie): its tools' output, captured the same way
# (chroot into the image's root), through the same parsers.
TRIXIE = [
    ("sysbench_cpu.txt", lambda t: parse_sysbench_cpu(t), "workload.events_per_s", 3591.75),
    ("sysbench_memory_read.txt", lambda t: parse_sysbench_memory(t), "workload.bytes_per_s",
     42324050575.36),
    ("dd_syscalls.txt", lambda t: parse_dd_syscalls(t), "workload.ns_per_syscall", 344.585),
    ("fio_randread_4k.json", lambda t: parse_fio_json(t), "workload.iops", 10410.589411),
    ("iperf3_host_to_guest.json", lambda t: parse_iperf3_both([t, t]),
     "workload.host_to_guest_bytes_per_s", 3096805152.45817),
    ("redis_benchmark.csv", lambda t: parse_redis_benchmark_csv([t]), "workload.get_ops_per_s",
     51282.05),
    ("redis_benchmark_ping_rr.csv", lambda t: parse_redis_round_trip([t]), "workload.rtt_p50_s",
     0.000127),
]


@pytest.mark.parametrize("name, parse, main, value", TRIXIE, ids=[t[0] for t in TRIXIE])
def test_trixie_tools_parse(golden, name, parse, main, value):
    metrics = by_name(parse((golden / "trixie" / name).read_text()))
    assert metrics[main].error is None and metrics[main].value == pytest.approx(value)
    assert all(m.error is None for m in metrics.values()), metrics
