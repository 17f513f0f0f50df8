"""A locked-down instance, checked from the engines' own view while it runs: containers
unprivileged with the engine's default seccomp (and AppArmor, where the host has it) and no
added capabilities, no host network for a workload that serves nothing, a VM with no network
device at all, and the workload reaching the instance as argv."""

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from .helpers import REPO, container_ids, leftovers, podman_ids, run_id_of, vm_pids

pytestmark = pytest.mark.integration

SCENARIO = """
name = "locked"
reps = 1
warmup = 0
timeout_s = 120
[runtimes.runc]
kind = "docker"
oci_runtime = "runc"
[runtimes.runsc]
kind = "docker"
oci_runtime = "runsc"
network = "none"
[runtimes.podman]
kind = "podman"
[runtimes.vm]
kind = "qemu"
machine = "microvm"
accel = "auto"
initrd = false
pvh = true
[workloads.idle]
seconds = 6
"""


def apparmor_enabled() -> bool:
    path = Path("/sys/module/apparmor/parameters/enabled")
    return path.exists() and path.read_text().strip() == "Y"


def inspect(engine: str, ident: str) -> dict:
    out = subprocess.run([engine, "inspect", ident], capture_output=True, text=True)
    return json.loads(out.stdout)[0] if out.returncode == 0 else {}


def test_instances_run_locked_down(tmp_path):
    scenario, out = tmp_path / "locked.toml", tmp_path / "run"
    scenario.write_text(SCENARIO)
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", str(scenario), "--out", str(out),
                             "--no-report"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: dict[str, dict] = {}  # docker:ID / podman:ID / qemu:PID -> what the engine says
    try:
        while proc.poll() is None:
            if run_id := run_id_of(out):
                for ident in container_ids(run_id, running_only=True):
                    seen.setdefault(f"docker:{ident}", inspect("docker", ident))
                for ident in podman_ids(run_id, running_only=True):
                    seen.setdefault(f"podman:{ident}", inspect("podman", ident))
                for pid in vm_pids(run_id):
                    seen.setdefault(f"qemu:{pid}", {"cmdline": psutil.Process(pid).cmdline()})
            time.sleep(0.2)
        output = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output[-3000:])
    assert proc.returncode == 0
    containers = {k: v for k, v in seen.items() if not k.startswith("qemu:") and v}
    runtimes = sorted(f"{k.split(':')[0]}:{v['HostConfig'].get('Runtime')}" for k, v in containers.items())
    assert runtimes == ["docker:runc", "docker:runsc", "podman:oci"], runtimes
    for key, info in containers.items():
        host = info["HostConfig"]
        assert host["Privileged"] is False, key
        assert not host.get("CapAdd"), (key, host.get("CapAdd"))
        options = " ".join(host.get("SecurityOpt") or [])
        assert "unconfined" not in options and "seccomp=" not in options, (key, options)
        assert host["NetworkMode"] != "host", key  # idle serves nothing
        if apparmor_enabled():
            assert info["AppArmorProfile"] in ("docker-default", "containers-default-0.50.1"), key
        command = info["Config"]["Cmd"]
        assert isinstance(command, list) and "sleep 6" not in command[:1], (key, command)
    if key := next((k for k in seen if k.startswith("docker:")), None):
        # docker's own seccomp: on unless a profile was turned off
        assert "name=seccomp" in subprocess.run(["docker", "info", "--format", "{{.SecurityOptions}}"],
                                                capture_output=True, text=True).stdout
    vms = [v["cmdline"] for k, v in seen.items() if k.startswith("qemu:")]
    assert vms, "no VM seen running"
    for argv in vms:
        assert "-nodefaults" in argv  # no default NIC, no default devices
        assert not {"-netdev", "-nic", "-net"} & set(argv), argv
    assert leftovers(run_id_of(out)) == []
