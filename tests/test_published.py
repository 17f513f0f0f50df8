"""Published figures against this run's numbers, on recorded runs (tests/golden)."""

import pandas as pd

from bench.report.data import complete
from bench.report.published import published_rows
from bench.results import load_frame, read_environment


def rows_of(golden, name, **host):
    environment = read_environment(golden / name)
    if host:
        environment = {**environment, "host": {**environment.get("host", {}), **host}}
    return {row["figure"]: row for row in published_rows(complete(load_frame(golden / name)), environment)}


def test_a_smoke_run_against_the_published_figures(golden):
    found = rows_of(golden, "run_smoke")
    docker = found["docker run ≈ 150 ms"]
    assert docker["here"] == ["runc: 254.2 ms (median of 3)"]  # noop, launch call to READY
    assert docker["verdict"].startswith("comparable in kind")
    # its agent did not yet say when it started: no boot-to-init to compare
    assert found["boot to init ≤ 125 ms"]["verdict"].startswith("not measured")
    # the smoke run of the time had no fork or syscall workload
    assert found["fork/exec ≈ 1 ms"]["here"] == []
    assert found["fork/exec ≈ 1 ms"]["verdict"].startswith("not measured")


def test_boot_to_init_is_the_guest_kernel_until_the_agent_starts(golden):
    boot = rows_of(golden, "run_spectrum")["boot to init ≤ 125 ms"]
    assert boot["here"] == ["qemu-pc (emulated): 16.4 s (median of 2)",
                            "qemu-microvm (emulated): 12.8 s (median of 2)",
                            "qemu-microvm-fast (emulated): 3.25 s (median of 2)",
                            "libvirt (emulated): 17.2 s (median of 2)"]
    assert boot["verdict"] == "not comparable: the VM ran emulated (QEMU TCG), not on KVM"


def test_the_syscall_and_fork_figures_read_the_workloads(golden):
    found = rows_of(golden, "run_workloads")
    assert found["system call in runc 1.9 µs"]["here"] == ["runc: 0.341 µs (median of 2)"]
    assert found["fork/exec ≈ 1 ms"]["here"] == ["native: 0.866 ms (median of 2)"]


def test_a_lab_run_compares_nothing(golden):
    found = rows_of(golden, "run_smoke", host_shape="lab")
    assert found["docker run ≈ 150 ms"]["verdict"] == "not comparable: a lab run, everything under emulation"


def test_an_empty_run_measures_none():
    assert all(row["here"] == [] for row in published_rows(complete(pd.DataFrame()), {}))
