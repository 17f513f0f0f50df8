"""Reading cgroup v1 and v2 files, on trees laid out from files captured on real hosts
(v1: a Docker container on Debian 12, memory and cpuacct; cpu and pids from a cgroup with
cvbench's limits on the same host; v2: a process on Ubuntu 24.04, kernel 6.18). Each v1
controller has its own folder holding only its own files, as the kernel lays them out, so
a read from the wrong hierarchy fails."""

import shutil

from bench.collect.cgroups import Cgroup


def _v2(tmp_path, golden):
    shutil.copytree(golden / "cgroup_v2", tmp_path / "inst")
    return Cgroup(2, {"": tmp_path / "inst"})


def _v1(tmp_path, golden):
    dirs = {}
    for controller in ("memory", "cpu", "cpuacct", "pids"):
        dirs[controller] = tmp_path / controller / "inst"
        shutil.copytree(golden / "cgroup_v1" / controller, dirs[controller])
    return Cgroup(1, dirs)


def test_v2_memory_and_cpu(tmp_path, golden):
    group = _v2(tmp_path, golden)
    mem = group.memory()
    assert mem.usage == 7516160
    assert mem.working_set == 7516160 - 450560  # less inactive_file
    assert mem.peak == 7516160
    assert group.cpu_seconds() == 0.03591


def test_v2_without_memory_peak(tmp_path, golden):
    group = _v2(tmp_path, golden)
    (tmp_path / "inst" / "memory.peak").unlink()  # kernels before 5.19
    assert group.memory().peak is None


def test_v1_memory_and_cpu(tmp_path, golden):
    group = _v1(tmp_path, golden)
    mem = group.memory()
    assert mem.usage == 4087808
    assert mem.working_set == 4087808 - 61440
    assert group.cpu_seconds() == 2.058293179


def test_pids_include_child_cgroups(tmp_path, golden):
    group = _v1(tmp_path, golden)
    child = tmp_path / "pids" / "inst" / "container"
    child.mkdir()
    (child / "cgroup.procs").write_text("4242\n")
    assert sorted(group.pids()) == [4242, 30357, 30386]


def test_enter_argv_writes_every_hierarchy(tmp_path, golden):
    argv = _v1(tmp_path, golden).enter_argv(["qemu", "-m", "512"])
    assert argv[-3:] == ["qemu", "-m", "512"]
    assert argv[2].count("cgroup.procs") == 4


def test_limits_v2(tmp_path, golden):
    group = _v2(tmp_path, golden)
    group.limit(cpus=1.5, memory_bytes=512 * 2**20)
    assert (tmp_path / "inst" / "cpu.max").read_text() == "150000 100000"
    assert (tmp_path / "inst" / "memory.max").read_text() == str(512 * 2**20)


def test_oom_kills_v1_and_v2(tmp_path, golden):
    # v1: captured here after a perl was OOM-killed in a 16 MiB cgroup. v2: this host has
    # no v2 memory controller; the file is a capture published from a v2 host after one
    # OOM kill (35 times at memory.max first).
    v1 = _v1(tmp_path / "a", golden)
    assert v1.oom_kills() == 1
    container = tmp_path / "a" / "memory" / "inst" / "container"  # where its limit is, in v1
    container.mkdir()
    (container / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert v1.oom_kills() == 3
    v2 = _v2(tmp_path / "b", golden)
    assert v2.oom_kills() == 1
    (tmp_path / "b" / "inst" / "memory.events").unlink()
    assert v2.oom_kills() is None


def test_limits_v1_go_to_their_own_controllers(tmp_path, golden):
    group = _v1(tmp_path, golden)
    group.limit(cpus=0.5, memory_bytes=512 * 2**20, pids=32)
    written = {p.relative_to(tmp_path).as_posix(): p.read_text()
               for p in tmp_path.rglob("*") if p.name in
               ("cpu.cfs_quota_us", "cpu.cfs_period_us", "memory.limit_in_bytes", "pids.max")}
    assert written == {"cpu/inst/cpu.cfs_quota_us": "50000",
                       "cpu/inst/cpu.cfs_period_us": "100000",
                       "memory/inst/memory.limit_in_bytes": str(512 * 2**20),
                       "pids/inst/pids.max": "32"}


def test_pids_limit_v1_and_v2(tmp_path, golden):
    v1 = _v1(tmp_path / "a", golden)
    v1.limit(cpus=None, memory_bytes=None, pids=64)
    assert (tmp_path / "a" / "pids" / "inst" / "pids.max").read_text() == "64"
    v2 = _v2(tmp_path / "b", golden)
    v2.limit(cpus=None, memory_bytes=None, pids=128)
    assert (tmp_path / "b" / "inst" / "pids.max").read_text() == "128"


def test_removal_reaches_the_hierarchies_cvbench_does_not_use(tmp_path, monkeypatch):
    """runc and runsc make an instance's path in every v1 hierarchy (blkio, freezer,
    systemd...): thousands were left behind on this host before the removal went there."""
    hierarchies = ("memory", "cpu", "cpuacct", "pids", "blkio", "freezer", "systemd")
    for h in hierarchies:
        (tmp_path / h / "cvbench/run/inst/container").mkdir(parents=True)
    monkeypatch.setattr("bench.collect.cgroups.v1_hierarchies",
                        lambda root: sorted(p for p in root.iterdir()))
    monkeypatch.setattr("bench.collect.cgroups.cgroup_version", lambda root=None: 1)
    Cgroup.at("cvbench/run/inst", tmp_path).remove(timeout=1)
    assert [h for h in hierarchies if (tmp_path / h / "cvbench/run/inst").exists()] == []
    assert all((tmp_path / h / "cvbench/run").is_dir() for h in hierarchies)  # the run's own
