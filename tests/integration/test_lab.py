"""The lab end to end: `cvbench lab --quick` boots the lab (systemd, cgroup v2, Docker's
systemd driver, nested KVM) under emulation here, runs the lab scenario and the host-shape
tests inside it, and brings the results back. About 15 minutes on 2 cores, the lab image
build (3-4 minutes, cached) included."""

import json
import time

import pytest

from .helpers import REPO, cvbench, records

# The lab takes longer than the suite's default per-test limit
pytestmark = [pytest.mark.integration, pytest.mark.lab, pytest.mark.timeout(3600)]

RUNTIMES = {"native", "runc", "crun", "runsc", "qemu", "microvm"}


@pytest.fixture(scope="module")
def lab():
    out = REPO / "results" / time.strftime("lab-test-%Y%m%dT%H%M%S")
    # cvbench stops a wedged lab itself, before this test gives up on cvbench
    result = cvbench("lab", "--quick", "--out", out, "--timeout", 2400, timeout=3300)
    return result, out


def test_the_lab_job_passed(lab):
    result, out = lab
    console = (out / "lab" / "console.log").read_text(errors="replace")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed" in console and " failed" not in console  # the host-shape tests inside


def test_the_lab_is_the_host_shape_users_have(lab):
    _, out = lab
    env = json.loads((out / "environment.json").read_text())
    assert env["host"]["cgroup_version"] == 2
    assert env["host"]["host_shape"] == "lab" and env["host"]["under_hypervisor"] is True
    assert {env["runtimes"][r]["cgroup_driver"] for r in ("runc", "crun", "runsc")} == {"systemd"}
    assert {env["runtimes"][r]["accel_used"] for r in ("qemu", "microvm")} == {"kvm"}


def test_every_runtime_is_measured_in_the_lab(lab):
    _, out = lab
    rows = [r for r in records(out) if r["workload"] in ("cpu", "idle")]
    for runtime in RUNTIMES:
        for metric in ("startup.ready_s", "cpu.seconds", "mem.cgroup_bytes"):
            values = [r["value"] for r in rows if r["runtime"] == runtime and r["metric"] == metric]
            assert values and None not in values, (runtime, metric, values)
    assert all(r["tags"]["host_shape"] == "lab" for r in rows)
    vms = [r["tags"] for r in rows if r["kind"] == "qemu"]
    assert all(t["accel"] == "kvm" and t["nested"] is True and t["emulated"] is False for t in vms)


def test_the_report_says_it_is_a_lab_run(lab):
    _, out = lab
    page = (out / "report.html").read_text()
    assert "Lab run" in page and "nested" in page
