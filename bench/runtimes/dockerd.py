"""The Docker engine on this host: cvbench's OCI runtimes registered with it, and dockerd
answering (started here when no service manager runs it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.errors import UserError
from bench.runtimes.base import wait_for_daemon

DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKERD_LOG = Path("/var/log/cvbench-dockerd.log")
# ptrace works everywhere, nested virtualisation included; gVisor's own network
# stack cannot start in the root network namespace, so the sandbox has none.
RUNSC_CONFIG = {"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=none"]}
# The serving workloads (net, redis) need a network: runsc on the host's stack, with
# Docker's host network mode, reached on 127.0.0.1.
RUNSC_HOST_CONFIG = {"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=host"]}
# crun works on a pure cgroup v2 host only ("cgroups in hybrid mode not supported")
CRUN_CONFIG = {"path": "/usr/bin/crun"}


def oci_runtimes(crun: bool) -> dict:
    wanted = {"runsc": RUNSC_CONFIG, "runsc-host": RUNSC_HOST_CONFIG}
    return {**wanted, "crun": CRUN_CONFIG} if crun else wanted


def missing_runtimes(daemon_json: Path, crun: bool) -> dict:
    """cvbench's OCI runtimes that daemon_json does not register (the user's own win)."""
    config = json.loads(daemon_json.read_text()) if daemon_json.exists() else {}
    return {name: c for name, c in oci_runtimes(crun).items() if name not in config.get("runtimes", {})}


def write_oci_runtimes(daemon_json: Path, crun: bool) -> None:
    config = json.loads(daemon_json.read_text()) if daemon_json.exists() else {}
    config.setdefault("runtimes", {}).update(missing_runtimes(daemon_json, crun))
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    daemon_json.write_text(json.dumps(config, indent=2) + "\n")


def register_runtimes() -> bool:
    """runsc, runsc-host and (where installed) crun registered with the engine."""
    crun = Path(CRUN_CONFIG["path"]).exists()
    missing = missing_runtimes(DAEMON_JSON, crun)
    if not missing:
        return False
    if os.geteuid() != 0:
        raise UserError(f"{', '.join(missing)} not registered in {DAEMON_JSON}",
                        fix=f'add to "runtimes" there as root: {json.dumps(missing)}')
    write_oci_runtimes(DAEMON_JSON, crun)
    print(f"[setup] registered {', '.join(missing)} in {DAEMON_JSON}", flush=True)
    return True


def docker_answers() -> bool:
    result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                            capture_output=True, text=True)
    return result.returncode == 0


def start_dockerd(timeout: float = 60.0) -> None:
    if Path("/run/systemd/system").exists() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "start", "docker"], check=False)
    else:
        print(f"[setup] starting dockerd (log: {DOCKERD_LOG})", flush=True)
        with open(DOCKERD_LOG, "ab") as log:
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    wait_for_daemon(docker_answers, "dockerd", DOCKERD_LOG, timeout, every=0.5)
    from bench.collect.engine import locate_engine

    # Started by hand it sits in the root cgroup: give it one whose CPU is the engine's
    engine = locate_engine()
    print(f"[setup] engine CPU read from {engine.describe()}", flush=True)


def reload_dockerd() -> None:
    """dockerd re-reads its runtimes on SIGHUP."""
    pids = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    for pid in pids:
        os.kill(int(pid), signal.SIGHUP)
    time.sleep(1)


def ensure_engine() -> None:
    """OCI runtimes registered, dockerd answering (reloaded if the registration changed)."""
    changed = register_runtimes()
    if not docker_answers():
        if os.geteuid() != 0:
            raise UserError("no Docker engine answers on /var/run/docker.sock",
                            fix="sudo dockerd >/var/log/dockerd.log 2>&1 &  (or: sudo systemctl start docker)")
        start_dockerd()
    elif changed:
        reload_dockerd()
