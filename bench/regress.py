"""The CI gate: run a scenario, compare it with this machine's stored baseline, fail on regression.

Baselines are kept per machine (as pytest-benchmark keeps its storage per machine),
so a run is only ever judged against numbers from the same host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from bench.errors import UserError
from bench.results import ENVIRONMENT, RECORDS, host_environment

STORE = Path(".benchmarks") / "cvbench"


def machine_id(host: dict | None = None, name: str | None = None) -> str:
    """Host name and a hash of what the numbers depend on; CVBENCH_MACHINE overrides it
    where host names are random (CI runners of one class). A fleet host passes its own
    environment and its name in the fleet."""
    if host is None and (override := os.environ.get("CVBENCH_MACHINE")):
        return override
    host = host or host_environment()
    fingerprint = f"{host['cpu_model']}|{host['cpu_count']}|{host['memory_bytes']}|{host['kernel']}"
    return f"{name or host['hostname']}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:8]}"


def machine_of_run(run_dir: Path) -> str | None:
    """The machine a run's baseline belongs to: a fleet host's run names it by its records'
    host and its own environment; None for a run of this machine."""
    from bench.results import read_environment, read_records

    hosts = {r.get("host") for r in read_records(run_dir)} - {None}
    if not hosts:
        return None
    if len(hosts) > 1:
        raise UserError(f"{run_dir} holds the records of {len(hosts)} fleet hosts",
                        fix="pass one host's folder, DIR/hosts/NAME")
    return machine_id(read_environment(run_dir)["host"], hosts.pop())


def baseline_dir(scenario_name: str, store: Path = STORE, machine: str | None = None) -> Path:
    return store / (machine or machine_id()) / scenario_name


def promote(run_dir: Path, scenario_name: str, store: Path = STORE, machine: str | None = None) -> Path:
    """Make run_dir this machine's baseline for the scenario (records and environment)."""
    target = baseline_dir(scenario_name, store, machine)
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (RECORDS, ENVIRONMENT):
        shutil.copy2(run_dir / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
