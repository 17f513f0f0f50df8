"""Finding the engine's cgroups, on trees laid out like /proc and /sys/fs/cgroup.

/proc/PID/cgroup of dockerd captured on this Debian 12 host (cgroup v1) before and after
cvbench moved it; counters from the golden cgroup folders (tests/test_cgroups.py)."""

import json
import shutil

import pytest

from bench.collect.engine import OWN_CGROUP, locate_engine
from bench.runtimes.docker_events import others_in

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


# -- which containers ran beside an instance: dockerd's container events, as `docker events
# --format '{{json .}}'` printed them during a run here: a runc noop (-2), a runsc noop (-3),
# then a container still running when they were taken (-6)


def _events(golden):
    rows = [json.loads(line) for line in (golden / "docker_events" / "events.jsonl").read_text().splitlines()]
    names = {r["id"]: r["Actor"]["Attributes"]["name"].rsplit("-", 1)[1] for r in rows}
    events = [(r["timeNano"] / 1e9, r["id"], r["Action"]) for r in rows]
    ids = {number: cid for cid, number in names.items()}
    when = {(names[cid], action): t for t, cid, action in events}
    return events, ids, when


def test_an_instance_alone_has_no_other_containers(golden):
    events, ids, when = _events(golden)
    for n in ("2", "3"):  # each from its creation to its removal: the other had gone or not come
        assert others_in(set(), events, ids[n], when[(n, "create")], when[(n, "destroy")]) == 0


def test_a_container_that_did_anything_in_the_span_counts(golden):
    events, ids, when = _events(golden)
    # -2 removed after -3's span began: one other
    assert others_in(set(), events, ids["3"], when[("2", "die")], when[("3", "destroy")]) == 1
    # seen from no container of its own: both
    assert others_in(set(), events, None, when[("2", "start")], when[("3", "start")]) == 2


def test_a_container_running_through_the_span_counts_and_one_gone_before_does_not(golden):
    events, ids, when = _events(golden)
    after = when[("6", "start")] + 1  # -6 runs on: no event of its own in this span
    assert others_in(set(), events, None, after, after + 5) == 1
    # running before the events began, silent since: counted; -2, gone before: not
    assert others_in({"long-lived", ids["2"]}, events, None, after, after + 5) == 2
