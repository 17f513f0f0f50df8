"""The paths that depend on the host's shape, on whatever host the suite runs: instance
cgroups of every runtime kind (cgroup v1 or v2; Docker's cgroupfs or systemd driver),
OOM kills counted, KVM or TCG said and labelled. `nox -s tests` runs them on this host;
`cvbench lab` runs them in the lab (systemd, cgroup v2, nested KVM)."""

import json
import os
import subprocess
import sys

import pytest

from bench.collect.cgroups import Cgroup, cgroup_version
from bench.results import running_under_hypervisor

from .helpers import cvbench, leftovers, records

pytestmark = pytest.mark.integration

SHAPE = """
name = "shape"
reps = 2
warmup = 0
cpus = 1
memory_mib = 256
timeout_s = 300
[runtimes.native]
kind = "native"
[runtimes.runc]
kind = "docker"
oci_runtime = "runc"
[runtimes.crun]
kind = "docker"
oci_runtime = "crun"
[runtimes.oci-runc]
kind = "oci"
[runtimes.oci-crun]
kind = "oci"
oci_runtime = "crun"
[workloads.cpu]
seconds = 1
"""
# `cvbench lab --no-vms` leaves VMs out: nested KVM under the lab's emulation is flaky
VMS = os.environ.get("CVBENCH_NO_VMS") != "1"
QEMU = """
[runtimes.qemu]
kind = "qemu"
accel = "auto"
"""
# crun refuses hybrid hosts: "cgroups in hybrid mode not supported"
CRUN_WORKS = cgroup_version() == 2


@pytest.fixture(scope="module")
def shape(tmp_path_factory):
    scenario = tmp_path_factory.mktemp("shape") / "shape.toml"
    scenario.write_text(SHAPE + (QEMU if VMS else ""))
    out = scenario.parent / "run"
    result = cvbench("run", scenario, "--out", out, "--no-report", timeout=1200)
    return result, json.loads((out / "environment.json").read_text()), records(out)


def docker_info(field: str) -> str:
    return subprocess.run(["docker", "info", "--format", "{{." + field + "}}"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_environment_says_the_shape_of_this_host(shape):
    _, env, rows = shape
    assert env["host"]["cgroup_version"] == cgroup_version()
    assert env["host"]["host_shape"] == os.environ.get("CVBENCH_HOST_SHAPE", "host")
    assert env["host"]["under_hypervisor"] == running_under_hypervisor()
    assert env["runtimes"]["runc"]["cgroup_driver"] == docker_info("CgroupDriver")
    assert rows and all(r["tags"]["host_shape"] == env["host"]["host_shape"] for r in rows)


def test_every_runtime_is_measured_from_its_cgroup(shape):
    result, _, rows = shape
    runtimes = ["native", "runc", "oci-runc"] + (["qemu"] if VMS else []) \
        + (["crun", "oci-crun"] if CRUN_WORKS else [])
    for runtime in runtimes:
        values = {}
        for r in rows:
            if r["runtime"] == runtime:
                values.setdefault(r["metric"], []).append(r["value"])
        for metric in ("startup.ready_s", "cpu.seconds", "mem.cgroup_bytes", "workload.events_per_s"):
            assert len(values.get(metric, [])) == 2 and None not in values[metric], \
                (runtime, metric, values.get(metric), result.stdout[-2000:])
        # 1 s of sysbench: the cgroup saw it, and under a 1-CPU limit no more CPU than the
        # instance's lifetime (a nested KVM guest in the lab spends 50-90 s booting)
        mine = [r for r in rows if r["runtime"] == runtime]
        cpu = {r["rep"]: r["value"] for r in mine if r["metric"] == "cpu.seconds"}
        life = {r["rep"]: r["value"] for r in mine if r["metric"] == "startup.exit_s"}
        assert all(0.5 < cpu[rep] <= life[rep] + 0.5 for rep in cpu), (runtime, cpu, life)
    if not CRUN_WORKS:  # recorded as failed, with crun's reason, and the run went on
        crun = [r for r in rows if r["runtime"] == "crun"]
        assert crun and all(r["value"] is None and r["error"] for r in crun)
        oci_crun = [r for r in rows if r["runtime"] == "oci-crun"]  # unusable: said before launch
        assert oci_crun and all(r["value"] is None and "hybrid" in r["error"] for r in oci_crun)


@pytest.mark.skipif(not VMS, reason="VMs left out (CVBENCH_NO_VMS=1)")
def test_vms_say_how_they_were_accelerated(shape):
    _, env, rows = shape
    accel = env["runtimes"]["qemu"]["accel_used"]
    tags = [r["tags"] for r in rows if r["runtime"] == "qemu"]
    assert tags and all(t["accel"] == accel and t["emulated"] == (accel == "tcg") for t in tags)
    assert all(t["nested"] == (accel == "kvm" and running_under_hypervisor()) for t in tags)


def test_nothing_left_behind(shape):
    _, env, _ = shape
    assert leftovers(env["run"]) == []


def test_oom_kill_is_counted(tmp_path):
    """The kernel's OOM kill in an instance cgroup: memory.events (v2) or oom_control (v1)."""
    group = Cgroup.create(f"cvbench/test-oom-{os.getpid()}", memory_bytes=32 * 2**20)
    try:
        before = group.oom_kills()
        hog = subprocess.run(group.enter_argv([sys.executable, "-c", "b = bytearray(256 << 20)"]))
        assert hog.returncode == -9
        assert before == 0 and group.oom_kills() == 1
    finally:
        group.remove()
