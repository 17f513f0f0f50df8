"""Memory samples: what memory_of reads, what a sample sees of a running and an ended
instance, and which samples make the steady and peak values. The processes are laid out
from smaps_rollup files captured on this Debian 12 host: a containerd-shim-runc-v2 and
the `sleep 30` it served, in a cgroup v1 tree captured from a Docker container."""

import shutil

import pytest

from bench.collect.cgroups import Cgroup
from bench.collect.processes import memory_of
from bench.collect.sampler import GONE, Sample, Sampler, summarise

# pids no host can have (above the kernel's PID_MAX_LIMIT): psutil finds no such process
SHIM, SLEEP, EXITED = 999_999_901, 999_999_902, 999_999_903
KB = 1024
SHIM_PSS, SLEEP_PSS = 12068 * KB, 1585 * KB  # the captured files' Pss lines


@pytest.fixture
def proc(tmp_path, golden):
    root = tmp_path / "proc"
    for pid, name in ((SHIM, "smaps_rollup_containerd_shim.txt"),
                      (SLEEP, "smaps_rollup_container_sleep.txt")):
        (root / str(pid)).mkdir(parents=True)
        shutil.copy(golden / name, root / str(pid) / "smaps_rollup")
    return root


@pytest.fixture
def cgroup(tmp_path, golden):
    dirs = {}
    for controller in ("memory", "cpu", "cpuacct", "pids"):
        dirs[controller] = tmp_path / controller / "inst"
        shutil.copytree(golden / "cgroup_v1" / controller, dirs[controller])
        (dirs[controller] / "cgroup.procs").write_text(f"{SLEEP}\n")
    return Cgroup(1, dirs)


def test_memory_of_sums_the_processes_it_can_read(proc):
    mem = memory_of([SHIM, SLEEP, EXITED], proc)
    assert mem.pss == SHIM_PSS + SLEEP_PSS
    assert mem.rss == (13056 + 1592) * KB
    assert mem.uss == (9588 + 2364 + 1484 + 100) * KB  # Private_Clean + Private_Dirty


def test_memory_of_nothing_read_is_none_not_zero(proc):
    assert memory_of([EXITED], proc) is None
    assert memory_of([], proc) is None


def test_sample_of_a_running_container_counts_its_shim(cgroup, proc):
    sample = Sampler(cgroup, lambda: [SHIM], proc=proc).sample()
    assert sample.live
    assert sample.pss == SHIM_PSS + SLEEP_PSS
    assert sample.cgroup_working_set == 4087808 - 61440  # usage less inactive file
    assert sample.cgroup_cpu_s == 2.058293179
    assert sample.helper_cpu_s == 0.0  # the shim's pid is no process here


def test_sample_after_the_container_exited_is_not_live(cgroup, proc, tmp_path):
    for controller in cgroup.dirs.values():
        (controller / "cgroup.procs").write_text("")
    shutil.rmtree(proc / str(SLEEP))
    sampler = Sampler(cgroup, lambda: [SHIM], proc=proc)
    left = sampler.sample()  # the shim outlives its container briefly
    assert not left.live and left.pss == SHIM_PSS
    shutil.rmtree(proc / str(SHIM))
    empty = sampler.sample()  # only the cgroup's counters are left
    assert not empty.live and empty.pss is None and empty.cgroup_cpu_s == 2.058293179
    for d in cgroup.dirs.values():
        shutil.rmtree(d)
    assert sampler.sample() is None
    assert len(sampler.samples) == 2


def test_stop_returns_a_copy_that_a_later_sample_does_not_join(cgroup, proc):
    sampler = Sampler(cgroup, lambda: [SHIM], hz=1000, proc=proc).start()
    samples = sampler.stop()
    count = len(samples)
    sampler.sample()
    assert len(samples) == count and len(sampler.samples) == count + 1


def _sample(t, pss, live=True, working_set=None, peak=None):
    return Sample(t, live, working_set if working_set is not None else pss, peak, 1.0,
                  pss, pss, pss, 0.0)


def test_summarise_keeps_samples_after_done_out_of_steady_and_peak():
    ready, done = 10.0, 12.0
    samples = [
        _sample(9.9, 50, peak=60),    # starting: counts for the peak only
        _sample(10.5, 100, peak=100),
        _sample(11.0, 120, peak=130),
        _sample(11.5, 110, peak=130),
        _sample(12.3, 500, peak=600),  # after DONE reached the host: tearing down
        _sample(12.4, 7, live=False, peak=900),  # its shim alone, after the exit
    ]
    out = summarise(samples, ready, done)
    assert out["pss"] == (110, None)  # median of 100, 120, 110
    assert out["pss_peak"] == (120, None)  # not 500, not 7
    assert out["cgroup_working_set"] == (110, None)
    # the kernel's high-water mark, read after exit, covers the whole life
    assert out["cgroup_peak"] == (900, None)


def test_summarise_an_instance_gone_before_a_sample_is_null_with_the_reason():
    # noop in a container: every sample (at READY, after exit) found only its remains
    samples = [_sample(10.1, 7, live=False, working_set=151552, peak=409600),
               _sample(10.2, None, live=False, working_set=151552, peak=409600)]
    out = summarise(samples, 10.0, 10.05)
    for view in ("pss", "pss_peak", "cgroup_working_set", "rss", "uss"):
        assert out[view] == (None, GONE)
    assert out["cgroup_peak"] == (409600, None)
    assert summarise([], 10.0, 10.05)["pss"] == (None, GONE)


def test_summarise_a_sample_only_before_ready_gives_a_peak_but_no_steady_value():
    out = summarise([_sample(9.5, 80)], 10.0, 10.01)
    assert out["pss_peak"] == (80, None)
    value, why = out["pss"]
    assert value is None and "between READY and DONE" in why


def test_find_by_cmdline_matches_name_and_command_line_of_a_live_process():
    # A real process: its name (comm) and a word of its command line, as a shim's "-id ID"
    import os
    import subprocess
    import time

    from bench.collect.processes import find_by_cmdline

    mine = f"30.{os.getpid()}"  # no other test run's sleep has it
    process = subprocess.Popen(["sleep", mine])
    try:
        for _ in range(200):  # Popen may return before the child has exec'd sleep
            if open(f"/proc/{process.pid}/cmdline", "rb").read():
                break
            time.sleep(0.01)
        assert find_by_cmdline("sleep", mine) == process.pid
        assert find_by_cmdline("sleep", mine + "1") is None
        assert find_by_cmdline("containerd-shim", mine) is None
    finally:
        process.kill()
        process.wait()
    assert find_by_cmdline("sleep", mine) is None
