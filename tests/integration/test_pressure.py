"""Startup under pressure on the real engines: a burst of 4, a density run grown until its
memory floor stops it, warm starts restored from snapshots (QEMU, gVisor) against cold ones,
and Ctrl-C during each, leaving nothing behind."""

import json

import pytest

from bench.collect.host import mem_available
from bench.runtimes.oci import criu_failure

from .helpers import container_ids, cvbench, interrupt_run, leftovers, records, vm_pids

pytestmark = pytest.mark.integration
MiB = 2**20

RUNTIMES = """
[runtimes.native]
kind = "native"
[runtimes.runc]
kind = "docker"
oci_runtime = "runc"
[runtimes.qemu]
kind = "qemu"
accel = "auto"
[runtimes.oci-runsc]
kind = "oci"
oci_runtime = "runsc"
[runtimes.oci-runc]
kind = "oci"
"""
BURST = ('name = "burst"\nreps = 1\nmemory_mib = 128\ntimeout_s = 120\n[mode]\nname = "burst"\n'
         'sizes = [1, 4]\nmemory_floor_mib = 1024\n')
GROW = 'name = "limit"\nreps = 1\nmemory_mib = 64\ntimeout_s = 120\n[mode]\nname = "density"\ngrow = true\n'
WARM = 'name = "warm"\nreps = 1\nmemory_mib = 256\ntimeout_s = 180\n[mode]\nname = "warm"\n'


def _scenario(tmp_path, text):
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(text + RUNTIMES)
    return scenario


def _run(tmp_path, text, runtimes):
    out = tmp_path / "run"
    result = cvbench("run", _scenario(tmp_path, text), "--out", out, "--runtimes", runtimes,
                     timeout=600)
    print(result.stdout[-3000:], result.stderr[-3000:])
    env = json.loads((out / "environment.json").read_text())
    assert leftovers(env["run"]) == []
    return result, out, records(out)


def _values(rows, runtime, metric, **tags):
    return [r["value"] for r in rows if r["runtime"] == runtime and r["metric"] == metric
            and r["value"] is not None and all(r["tags"].get(k) == v for k, v in tags.items())]


def test_a_burst_of_four_launches_together(tmp_path):
    result, out, rows = _run(tmp_path, BURST, "native,runc")
    assert result.returncode == 0, result.stderr
    for runtime in ("native", "runc"):
        assert len(_values(rows, runtime, "burst.ready_s", k=4)) == 4
        assert len(_values(rows, runtime, "burst.launches_per_s", k=4)) == 1
    # four containers through one dockerd on 2 cores: never as fast as one alone
    assert _values(rows, "runc", "burst.all_ready_s", k=4)[0] > _values(rows, "runc",
                                                                        "burst.ready_s", k=1)[0]
    # launched one after the other, the four would take their latencies' sum
    assert _values(rows, "native", "burst.all_ready_s", k=4)[0] < sum(
        _values(rows, "native", "burst.ready_s", k=4))
    (cpu,) = _values(rows, "runc", "burst.manager_cpu_per_launch_s", k=4)
    assert cpu > 0.01  # dockerd, containerd and the shims worked for each launch
    assert not _values(rows, "native", "burst.manager_cpu_per_launch_s")
    assert (out / "figures" / "burst.png").stat().st_size > 10_000
    assert "worth at once" in (out / "report.html").read_text()


def test_a_grown_density_run_stops_at_its_memory_floor(tmp_path):
    floor = int(mem_available() / MiB) - 150  # a few containers' worth above the floor
    result, out, rows = _run(tmp_path, GROW + f"memory_floor_mib = {floor}\n", "runc")
    assert result.returncode == 0, result.stderr
    (stop,) = [r for r in rows if r["metric"] == "density.reached_n"]
    assert stop["tags"]["stop_rule"] == "memory floor", stop
    assert 1 <= stop["value"] < 64
    ns = [r["tags"]["n"] for r in rows if r["metric"] == "density.kth_ready_s"]
    assert ns == list(range(1, int(stop["value"]) + 1))
    # an idle container and its shim: a few MiB here (2.9 at N=64), far under its 64 MiB limit
    assert all(0 < v < 32 * MiB for v in _values(rows, "runc", "density.pss_per_instance_bytes"))
    html = (out / "report.html").read_text()
    assert "Density until something gives" in html and "memory floor" in html


def test_warm_starts_restore_qemu_and_gvisor_and_runc_where_criu_works(tmp_path):
    result, out, rows = _run(tmp_path, WARM, "qemu,oci-runsc,oci-runc")
    assert result.returncode == 0, result.stderr
    for runtime in ("qemu", "oci-runsc"):
        (cold,) = _values(rows, runtime, "startup.ready_s", start="cold")
        (warm,) = _values(rows, runtime, "startup.restore_s", start="warm")
        assert cold > 0 and warm > 0
        (size,) = _values(rows, runtime, "warm.snapshot_bytes")
        assert size > 0
        for start in ("cold", "warm"):
            assert _values(rows, runtime, "warm.pss_after_ready_bytes", start=start)[0] > 0
    # a VM's restore skips its boot: far faster than a cold boot, the more so under TCG
    assert (_values(rows, "qemu", "startup.restore_s")[0]
            < _values(rows, "qemu", "startup.ready_s")[0] / 5)
    # gVisor's image is compressed: 88-160 KiB here for the idle agent
    assert _values(rows, "oci-runsc", "warm.snapshot_bytes")[0] < 10 * MiB
    # the guest's memory went into the state file: at least what a booted kernel holds
    assert _values(rows, "qemu", "warm.snapshot_bytes")[0] > 30 * MiB
    # pages the guest never touched are not in the file: a restored VM holds less than a
    # booted one (here 203 against 364 MiB; 163 against 208 in the lab, on KVM)
    (restored,) = _values(rows, "qemu", "warm.pss_after_ready_bytes", start="warm")
    (booted,) = _values(rows, "qemu", "warm.pss_after_ready_bytes", start="cold")
    assert restored < booted
    if criu_failure() is None:  # a kernel CRIU works on (the lab's): runc restores too
        assert _values(rows, "oci-runc", "startup.restore_s", start="warm")
    else:
        (skipped,) = [r for r in rows if r["runtime"] == "oci-runc"]
        assert skipped["error"].startswith("skipped: ") and "CRIU" in skipped["error"]
    assert "Warm start" in (out / "report.html").read_text()


def _interrupted(tmp_path, text, runtimes, busy):
    code, output, run_id = interrupt_run([_scenario(tmp_path, text), "--runtimes", runtimes],
                                         tmp_path / "run", busy, timeout=240)
    assert code == 130, output
    assert leftovers(run_id) == []
    kept = tmp_path / "run" / "records.jsonl"  # none yet where the first step was cut
    return records(tmp_path / "run") if kept.exists() else []


def test_ctrl_c_during_a_burst(tmp_path):
    def bursting(run_id):
        """two containers of the burst to be up"""
        return len(container_ids(run_id, running_only=True)) >= 2

    _interrupted(tmp_path, BURST.replace("sizes = [1, 4]", "sizes = [8]"), "runc", bursting)


def test_ctrl_c_while_density_grows(tmp_path):
    def three_up(run_id):
        """three containers of the run to be up"""
        return len(container_ids(run_id, running_only=True)) >= 3

    rows = _interrupted(tmp_path, GROW, "runc", three_up)
    (stop,) = [r for r in rows if r["metric"] == "density.reached_n"]
    assert stop["tags"]["stop_rule"] == "interrupted"


def test_ctrl_c_during_a_warm_run(tmp_path):
    def booting_after_the_snapshot(run_id):
        """the cold VM to boot, the snapshot saved"""
        kept = tmp_path / "run" / "records.jsonl"
        return (kept.exists() and "warm.snapshot_s" in kept.read_text()
                and bool(vm_pids(run_id)))

    _interrupted(tmp_path, WARM, "qemu", booting_after_the_snapshot)


@pytest.mark.parametrize("options, rule, reached", [
    ("latency_factor = 0.01\n", "latency", 0),  # every launch is slow against 1% of alone
    ("max_instances = 3\n", "cap", 3),
])
def test_a_grown_density_run_stops_by_latency_or_cap(tmp_path, options, rule, reached):
    result, out, rows = _run(tmp_path, GROW + options, "native")
    assert result.returncode == 0, result.stderr
    (stop,) = [r for r in rows if r["metric"] == "density.reached_n"]
    assert (stop["tags"]["stop_rule"], stop["value"]) == (rule, reached), stop
    launched = len(_values(rows, "native", "density.kth_ready_s"))
    assert launched == (2 if rule == "latency" else 3)  # two slow in a row stop it


WARM_CELLS = """
name = "warm-cells"
reps = 1
warmup = 0
timeout_s = 180
warm_workloads = true
[runtimes.qemu]
kind = "qemu"
accel = "auto"
[runtimes.fast]
kind = "qemu"
machine = "microvm"
accel = "auto"
initrd = false
pvh = true
[runtimes.native]
kind = "native"
[workloads.noop]
[workloads.syscall]
count = 2000
[workloads.syscall-again]
workload = "syscall"
count = 2000
[workloads.disk]
pattern = "randwrite"
size_mib = 8
seconds = 1
[workloads.rr]             # a server in the instance: restored with the network it was saved with
requests = 200
runtimes = ["qemu", "native"]
[workloads.rr-direct]
workload = "rr"
path = "direct"
requests = 200
runtimes = ["qemu", "native"]
"""


def test_warm_workload_cells_restore_a_vm_that_can_and_boot_the_others(tmp_path):
    """A VM's workload cells start from one snapshot of the run; a start stays a boot; a VM
    that cannot restore (root on NVMe), and a process, start cold; each record says which."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(WARM_CELLS)
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--out", out, "--no-report", timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "fast: workload cells start cold: QEMU cannot migrate" in result.stdout
    # one for the syscall cells and the disk's (its root's cache mode is the host's, set at
    # the restore), one per network path
    assert result.stdout.count("qemu: snapshot for warm workload cells in") == 3
    rows = records(out)

    def cell(name):
        return {r["metric"]: r for r in rows if r["cell"] == name}

    boot = cell("noop@qemu")["startup.ready_s"]["value"]
    for name in ("syscall@qemu", "syscall-again@qemu"):
        restored = cell(name)
        # a restore loads saved memory: a fraction of a boot (0.7-1.8 s against 15-21 s here)
        assert 0 < restored["startup.restore_s"]["value"] < boot / 5 and "startup.ready_s" not in restored
        assert "startup.exit_s" not in restored and "startup.guest_uptime_s" not in restored
        # the workload runs as in a booted VM of the same emulation: the fast microVM's
        # syscall cost (1,587 vs 1,600 ns here), not native's (5 times less)
        fast = cell("syscall@fast")["workload.ns_per_syscall"]["value"]
        assert fast / 2 < restored["workload.ns_per_syscall"]["value"] < fast * 2
        assert {r["tags"]["start"] for r in restored.values()} == {"warm"}
    disk = cell("disk@qemu")
    assert 0 < disk["startup.restore_s"]["value"] < boot / 5
    # fio ran in the restored guest: through an emulated virtio-blk, fewer IOPS than natively
    assert 0 < disk["workload.iops"]["value"] < cell("disk@native")["workload.iops"]["value"]
    assert disk["workload.iops"]["tags"]["disk_cache"] == "none"
    assert disk["workload.iops"]["tags"]["host_page_cache"] is False
    assert cell("syscall@qemu")["startup.restore_s"]["tags"]["disk_cache"] == "writeback"
    for name, path in (("rr@qemu", "user networking"), ("rr-direct@qemu", "tap device")):
        served = cell(name)
        assert 0 < served["startup.restore_s"]["value"] < boot / 5
        assert path in served["workload.rtt_p50_s"]["tags"]["net_path"]
        assert {r["tags"]["start"] for r in served.values()} == {"warm"}
        # the host reached the restored server through the VM's network: a round trip
        # through QEMU's NIC, slower than to the process (0.5-1.1 against 0.05-0.37 ms here)
        native = cell(name.replace("qemu", "native"))["workload.rtt_p50_s"]["value"]
        assert served["workload.rtt_p50_s"]["value"] > native
        assert served["workload.round_trips_per_s"]["value"] > 100
    for name in ("noop@qemu", "syscall@fast", "syscall@native"):
        booted = cell(name)
        assert booted["startup.ready_s"]["value"] > 0 and "startup.restore_s" not in booted
        assert {r["tags"].get("start") for r in booted.values()} == {None}  # keys as ever
    # a boot is what a start costs in a VM: seconds under emulation, milliseconds natively
    assert boot > 50 * cell("noop@native")["startup.ready_s"]["value"]
    assert leftovers(json.loads((out / "environment.json").read_text())["run"]) == []
