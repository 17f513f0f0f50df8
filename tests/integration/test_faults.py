"""Faults on the real engines: a runtime that cannot start, a workload that hangs,
SIGINT and SIGTERM in the middle of a run."""

import json
import os
import signal

import pytest

from .helpers import (container_ids, cvbench, interrupt_run, leftovers, libvirt_domains,
                      oci_pids, podman_ids, records, vm_pids)

pytestmark = pytest.mark.integration

FAULTY = """
name = "faulty"
reps = 1
warmup = 0
timeout_s = 4
[runtimes.native]
kind = "native"
[runtimes.bogus]
kind = "docker"
oci_runtime = "no-such-runtime"
[workloads.hang]
workload = "idle"
seconds = 60
[workloads.noop]
"""


def test_unusable_runtime_and_hang_are_recorded_and_the_run_goes_on(tmp_path):
    scenario = tmp_path / "faulty.toml"
    scenario.write_text(FAULTY)
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--out", out, timeout=300)
    assert result.returncode == 2, result.stderr  # a runtime was unusable
    assert "no-such-runtime" in result.stderr and "daemon.json" in result.stderr
    rows = records(out)
    bogus = [r for r in rows if r["runtime"] == "bogus"]
    assert {r["cell"] for r in bogus} == {"hang@bogus", "noop@bogus"}
    assert all(r["value"] is None and "no-such-runtime" in r["error"] for r in bogus)
    # it started, then hung: the start is measured, the failure is the workload's
    hang = {r["metric"]: r for r in rows if r["cell"] == "hang@native"}
    assert set(hang) == {"startup.ready_s", "workload.idle"}
    assert 0 < hang["startup.ready_s"]["value"] < 4 and "error" not in hang["startup.ready_s"]
    assert hang["workload.idle"]["value"] is None and "timed out" in hang["workload.idle"]["error"]
    noop = {r["metric"]: r["value"] for r in rows if r["cell"] == "noop@native"}
    assert noop["startup.ready_s"] > 0  # the run went on after the hang
    assert leftovers(json.loads((out / "environment.json").read_text())["run"]) == []
    assert (out / "report.html").exists()


def _running_vm(run_id):
    """a VM of this run to be running"""
    return bool(vm_pids(run_id))


def _running_container(run_id):
    """a container of this run to be running"""
    return bool(container_ids(run_id, running_only=True))


def _running_podman(run_id):
    """a Podman container of this run to be running"""
    return bool(podman_ids(run_id, running_only=True))


def _running_libvirt(run_id):
    """a libvirt domain of this run to be running"""
    return bool(libvirt_domains(run_id))


def _running_oci(run_id):
    """an OCI runtime (runc or runsc on a bundle) of this run to be running"""
    return bool(oci_pids(run_id))


@pytest.mark.parametrize("sig, busy", [(signal.SIGINT, _running_vm), (signal.SIGTERM, _running_container),
                                       (signal.SIGINT, _running_podman), (signal.SIGINT, _running_oci)],
                         ids=["sigint-during-vm", "sigterm-during-container", "sigint-during-podman",
                              "sigint-during-oci"])
def test_signal_mid_run_cleans_up_and_keeps_records(tmp_path, sig, busy):
    out = tmp_path / "run"
    code, output, _ = interrupt_run(["scenarios/smoke.toml"], out, busy, sig)
    assert code == 130, output
    assert "interrupted" in output
    env = json.loads((out / "environment.json").read_text())
    assert env["interrupted"] is True
    assert leftovers(env["run"]) == []
    kept = records(out)
    assert kept and all(r["run"] == env["run"] for r in kept)
    report = cvbench("report", out)
    assert report.returncode == 0, report.stderr
    assert (out / "report.html").exists()


def test_sigint_during_a_libvirt_domain_leaves_none(tmp_path):
    out = tmp_path / "run"
    code, output, run_id = interrupt_run(["scenarios/matrix.toml", "--runtimes", "libvirt"], out,
                                         _running_libvirt)
    assert code == 130, output
    assert leftovers(run_id) == []


def test_no_docker_engine_still_runs_native(tmp_path):
    out = tmp_path / "run"
    result = cvbench("run", "scenarios/smoke.toml", "--quick", "--runtimes", "native,runc",
                     "--out", out, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"},
                     timeout=300)
    assert result.returncode == 2
    assert "unix:///nonexistent.sock" in result.stderr and "dockerd" in result.stderr
    rows = records(out)
    assert all(r["value"] is None for r in rows if r["runtime"] == "runc")
    assert any(r["metric"] == "workload.events_per_s" and r["value"] for r in rows
               if r["runtime"] == "native")
