"""Finding the engine's cgroups, on trees laid out like /proc and /sys/fs/cgroup.

/proc/PID/cgroup of dockerd captured on this Debian 12 host (cgroup v1) before and after
cvbench moved it; counters from the golden cgroup folders (tests/test_cgroups.py)."""

import shutil

import pytest

from bench.collect.engine import OWN_CGROUP, locate_engine

DOCKERD, CONTAINERD = 4943, 4956


def _proc(tmp_path, cgroup_files: dict[int, str]):
    for pid, text in cgroup_files.items():
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "cgroup").write_text(text)
    return tmp_path / "proc"


@pytest.fixture
def v1_root(tmp_path, golden):
    root = tmp_path / "sys"
    (root / "cpuacct").mkdir(parents=True)
    shutil.copy(golden / "cgroup_v1" / "cpuacct" / "cpuacct.usage", root / "cpuacct" / "cpuacct.usage")
    return root


def test_v1_engine_in_the_root_cgroup_moves_into_its_own(tmp_path, golden, v1_root):
    in_root = (golden / "proc_cgroup_v1.txt").read_text()  # 2:cpuacct:/
    proc = _proc(tmp_path, {DOCKERD: in_root, CONTAINERD: in_root})
    engine = locate_engine([DOCKERD, CONTAINERD], v1_root, proc)
    own = v1_root / "cpuacct" / OWN_CGROUP
    assert own.is_dir() and (own / "cgroup.procs").exists()  # the pids were written there
    assert engine.source == "cgroup"
    assert [g.dirs for g in engine.cgroups] == [{"cpuacct": own}]
    shutil.copy(golden / "cgroup_v1" / "cpuacct" / "cpuacct.usage", own / "cpuacct.usage")
    assert engine.seconds() == 2.058293179  # never the root's host-wide counter


def test_v1_engine_already_in_its_own_cgroup_is_read_there(tmp_path, golden, v1_root):
    moved = (golden / "proc_cgroup_v1_dockerd_in_engine_cgroup.txt").read_text()
    proc = _proc(tmp_path, {DOCKERD: moved, CONTAINERD: moved})
    engine = locate_engine([DOCKERD, CONTAINERD], v1_root, proc)
    assert [g.dirs for g in engine.cgroups] == [{"cpuacct": v1_root / "cpuacct" / OWN_CGROUP}]


def test_v2_systemd_units_are_read_as_they_are(tmp_path, golden):
    root = tmp_path / "sys"
    shutil.copytree(golden / "cgroup_v2", root)  # cgroup.controllers marks v2
    for unit in ("docker.service", "containerd.service"):
        shutil.copytree(golden / "cgroup_v2", root / "system.slice" / unit)
    proc = _proc(tmp_path, {DOCKERD: "0::/system.slice/docker.service\n",
                            CONTAINERD: "0::/system.slice/containerd.service\n"})
    engine = locate_engine([DOCKERD, CONTAINERD], root, proc)
    assert not (root / OWN_CGROUP).exists()  # a service's cgroup is left where it is
    assert sorted(g.dirs[""].name for g in engine.cgroups) == ["containerd.service", "docker.service"]
    assert engine.seconds() == pytest.approx(2 * 0.03591)  # usage_usec 35910 in each


def test_a_cgroup_inside_another_is_counted_once(tmp_path, golden):
    root = tmp_path / "sys"
    shutil.copytree(golden / "cgroup_v2", root)
    proc = _proc(tmp_path, {DOCKERD: "0::/system.slice\n",
                            CONTAINERD: "0::/system.slice/containerd.service\n"})
    engine = locate_engine([DOCKERD, CONTAINERD], root, proc)
    assert [g.dirs[""] for g in engine.cgroups] == [root / "system.slice"]


def test_no_engine_cgroup_falls_back_to_psutil_and_says_why(tmp_path, v1_root):
    proc = _proc(tmp_path, {})  # the engine exited between listing and reading
    engine = locate_engine([DOCKERD], v1_root, proc)
    assert engine.source == "psutil" and "FileNotFoundError" in engine.why_not_cgroup
    assert locate_engine([], v1_root, proc).why_not_cgroup == \
        "no dockerd or containerd process on this host"
