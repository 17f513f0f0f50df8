"""The startup waterfall: layers from what instances recorded, and a manager's cost."""

import math

import pandas as pd
import pytest

from bench.report.data import complete
from bench.results import load_frame, read_environment

from bench.agent import AgentLine, Ready
from bench.report.waterfall import (INIT, KERNEL, MANAGER, RUNTIME, manager_costs, split,
                                    waterfalls)


def test_an_instance_on_the_host_kernel_splits_at_the_agents_start():
    layers, clock = split({"startup.ready_s": 0.300, "startup.create_s": 0.120,
                           "startup.start_s": 0.150, "startup.agent_start_s": 0.280},
                          ("startup.create_s",))
    assert layers[MANAGER] == pytest.approx(0.120) and layers[RUNTIME] == pytest.approx(0.160)
    assert layers[KERNEL] is None and layers[INIT] == pytest.approx(0.020)
    assert clock == "host clock"


def test_a_vm_splits_at_the_guest_clock():
    layers, clock = split({"startup.ready_s": 17.5, "startup.overlay_s": 0.02, "startup.libvirt_s": 0.5,
                           "startup.guest_uptime_s": 14.7, "startup.guest_kernel_s": 14.2},
                          ("startup.libvirt_s",))
    assert layers[MANAGER] == pytest.approx(0.5)
    assert layers[RUNTIME] == pytest.approx(17.5 - 0.5 - 14.7)  # VMM, firmware, kernel load
    assert layers[KERNEL] == pytest.approx(14.2) and layers[INIT] == pytest.approx(0.5)
    assert "guest" in clock


def test_records_from_before_the_agent_said_when_it_started_have_no_split():
    assert split({"startup.ready_s": 0.3, "startup.create_s": 0.1}, ("startup.create_s",)) is None
    assert split({"startup.ready_s": math.nan}, ()) is None


def test_the_ready_line_says_when_the_agent_started():
    ready = Ready.of(AgentLine(1.0, "CVBENCH READY 4.08 6.12.118 abc 3.91 1795953415.191694313"))
    assert ready.started_uptime_s == 3.91 and ready.started_wall == pytest.approx(1795953415.1917)
    old = Ready.of(AgentLine(1.0, "CVBENCH READY 4.08 6.12.118 abc"))
    assert old.started_uptime_s is None and old.started_wall is None


def _rows(runtime, kind, ready_values, agent=None, create=None):
    rows = []
    for rep, ready in enumerate(ready_values):
        values = {"startup.ready_s": ready, "startup.agent_start_s": agent or ready * 0.9}
        if create is not None:
            values["startup.create_s"] = create
        rows += [{"run": "r", "cell": f"noop@{runtime}", "workload": "noop", "runtime": runtime,
                  "kind": kind, "rep": rep, "warmup": False, "metric": m, "value": v}
                 for m, v in values.items()]
    return rows


def test_a_manager_costs_the_difference_to_its_bare_twin():
    frame = pd.DataFrame(_rows("docker-runc", "docker", [0.30, 0.31, 0.29, 0.30, 0.32], create=0.1)
                         + _rows("oci-runc", "oci", [0.06, 0.05, 0.06, 0.07, 0.06])
                         + _rows("oci-runsc", "oci", [0.20, 0.21, 0.22, 0.20, 0.19]))
    env = {"runtimes": {"docker-runc": {"oci_runtime": "runc"}, "oci-runc": {"oci_runtime": "runc"},
                        "oci-runsc": {"oci_runtime": "runsc"}}}
    found = waterfalls(frame, env)
    assert [w.runtime for w in found] == ["docker-runc", "oci-runc", "oci-runsc"]
    assert found[0].manager == "dockerd + containerd" and found[0].layers[MANAGER] == pytest.approx(0.1)
    assert found[1].manager is None and found[1].layers[MANAGER] == 0
    [cost] = manager_costs(found, env)
    assert (cost.managed, cost.bare) == ("docker-runc", "oci-runc")  # runc with runc, not runsc
    assert cost.difference.difference == pytest.approx(0.30 - 0.06)
    assert cost.difference.ci_low <= 0.24 <= cost.difference.ci_high


def test_a_recorded_spectrum_run(golden):
    """scenarios/spectrum.toml's noop, 2 reps, on this 2-core host (VMs under TCG)."""
    folder = golden / "run_spectrum"
    environment = read_environment(folder)
    found = {w.runtime: w for w in waterfalls(complete(load_frame(folder)), environment)}
    assert len(found) == 11
    docker, libvirt, fast = found["docker-runc"], found["libvirt"], found["qemu-microvm-fast"]
    assert docker.layers[MANAGER] == pytest.approx(0.409, abs=5e-4)  # docker create
    assert docker.layers[KERNEL] is None and docker.manager_cpu_source == "cgroup"
    assert found["docker-runsc"].layers[KERNEL] == pytest.approx(0.300)  # gVisor's Sentry clock
    assert libvirt.manager == "libvirtd" and libvirt.manager_cpu_s == pytest.approx(0.145)
    assert fast.layers[KERNEL] == pytest.approx(3.255) and fast.ready == pytest.approx(4.828, abs=1e-3)
    costs = {(c.managed, c.bare): c.difference.difference for c in manager_costs(list(found.values()),
                                                                              environment)}
    assert costs == pytest.approx({("docker-runc", "oci-runc"): 0.654, ("docker-runsc", "oci-runsc"): 0.2946,
                                   ("podman-runc", "oci-runc"): 0.184, ("podman-runsc", "oci-runsc"): 0.1894,
                                   ("libvirt", "qemu-pc"): 0.5748}, abs=5e-4)
