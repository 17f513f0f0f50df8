"""A fleet on a real local Ray cluster: two benchmark hosts (alpha, beta) on this machine,
each a Ray node that advertises cvbench_host, running scenarios/fleet.toml (native and runc
noop) through `cvbench run --cluster`. Both hosts share this machine's 2 cores."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.results import read_environment

from .helpers import REPO, cvbench, leftovers, records

pytestmark = [pytest.mark.integration, pytest.mark.fleet]
ray = pytest.importorskip("ray")

SCENARIO = "scenarios/fleet.toml"
HOSTS = ("alpha", "beta")


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPUs (nothing runs there) and one node per benchmark host."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    cluster.nodes_by_name = {name: add_host(cluster, name) for name in HOSTS}
    yield cluster
    cluster.shutdown()


def add_host(cluster, name: str):
    return cluster.add_node(num_cpus=1, resources={"cvbench_host": 1}, node_name=name,
                            labels={"pool": "fleet"})


def host_runs(out: Path) -> dict[str, str]:
    """Each host's own run id, as its environment.json says."""
    return {h.name: read_environment(h)["run"] for h in (out / "hosts").iterdir()
            if read_environment(h)}


def wait_for_leftovers_gone(runs, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while (found := [item for run in runs for item in leftovers(run)]) and time.monotonic() < deadline:
        time.sleep(1)
    return found


def start_driver(cluster, out: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", SCENARIO, "--cluster",
                             cluster.address, "--out", str(out), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for_records_from(out: Path, hosts, proc, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not all((out / "hosts" / h / "records.jsonl").exists() for h in hosts):
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no records from every host"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fleet_run(cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet") / "run"
    result = cvbench("run", SCENARIO, "--cluster", cluster.address, "--out", out, timeout=600)
    print(result.stdout[-4000:], result.stderr[-3000:])
    return out, result


def test_a_scenario_runs_on_every_host_and_lands_in_one_folder(fleet_run):
    out, result = fleet_run
    assert result.returncode == 0
    rows = records(out)
    for host in HOSTS:
        mine = [r for r in rows if r["host"] == host]
        # 4 instances each of native and runc (1 warm-up + 3), every one READY
        ready = [r for r in mine if r["metric"] == "startup.ready_s" and r["value"] is not None]
        assert sorted((r["runtime"], r["rep"]) for r in ready) == sorted(
            (rt, rep) for rt in ("native", "runc") for rep in range(4))
        # the host's folder is a complete run of its own: the same records, its environment
        assert records(out / "hosts" / host) == mine
        assert cvbench("report", out / "hosts" / host).returncode == 0
    environment = read_environment(out)
    assert {h: s["status"] for h, s in environment["fleet"]["hosts"].items()} == {
        "alpha": "done", "beta": "done"}
    assert set(environment["hosts"]) == set(HOSTS)
    assert all(env["host"]["cpu_count"] for env in environment["hosts"].values())
    assert len(set(host_runs(out).values())) == 2  # two runs, apart even on one machine
    assert "[alpha] " in result.stdout and "[beta] " in result.stdout  # each host's progress
    page = (out / "report.html").read_text()
    assert "cvbench fleet: fleet" in page and 'href="hosts/beta/report.html"' in page
    assert wait_for_leftovers_gone(host_runs(out).values(), timeout=5) == []


def test_a_missing_host_and_an_unusable_runtime_are_recorded_and_the_rest_runs(cluster, tmp_path):
    scenario = tmp_path / "partial.toml"
    scenario.write_text('name = "partial"\nreps = 1\nwarmup = 0\n[runtimes.native]\nkind = "native"\n'
                        '[runtimes.nosuch]\nkind = "docker"\noci_runtime = "nosuch"\n[workloads.noop]\n')
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--cluster", cluster.address, "--hosts", "alpha,gamma",
                     "--out", out, timeout=300)
    print(result.stdout[-3000:], result.stderr[-2000:])
    assert result.returncode == 2  # a host and a runtime could not run: as on one machine
    hosts = read_environment(out)["fleet"]["hosts"]
    assert hosts["gamma"]["status"] == "unreachable"
    assert "no benchmark host of the cluster is 'gamma' (hosts: " in hosts["gamma"]["reason"]
    assert hosts["alpha"]["status"] == "done" and hosts["alpha"]["exit_code"] == 2
    rows = {r["runtime"]: r for r in records(out) if r["metric"] == "startup.ready_s"}
    assert rows["native"]["value"] > 0 and rows["native"]["host"] == "alpha"
    assert rows["nosuch"]["value"] is None and "nosuch" in rows["nosuch"]["error"]
    assert not (out / "hosts" / "gamma").exists()


def test_regress_gates_each_host_against_its_own_baseline_and_names_the_one_that_regressed(
        cluster, tmp_path):
    # 8 repetitions: with 3 a side no change can reach the gate's significance
    scenario = tmp_path / "fleet.toml"
    scenario.write_text((REPO / SCENARIO).read_text().replace("reps = 3", "reps = 8"))
    store = tmp_path / "store"
    gate = lambda out: cvbench("regress", scenario, "--cluster", cluster.address, "--store", store,
                               "--out", tmp_path / out, timeout=600)
    first = gate("first")
    print(first.stdout[-3000:], first.stderr[-2000:])
    assert first.returncode == 0
    for host in HOSTS:
        assert f"  {host}: no baseline yet: this run is now the baseline ({store}/{host}-" in first.stdout
    # alpha's baseline made 10x faster, beta's 10x slower: today alpha regressed and beta
    # did not, far beyond the noise two hosts on one machine's 2 cores make in each other.
    # The gate judges runc over native, and native's READY alone moved 2.25x between two
    # such runs in CI (9.3 -> 20.9 ms): 3x was not enough
    for host, factor in (("alpha", 1 / 10), ("beta", 10)):
        baseline = next(store.glob(f"{host}-*/fleet"))
        rows = [json.loads(line) for line in (baseline / "records.jsonl").read_text().splitlines()]
        for row in rows:
            if row["runtime"] == "runc" and row["metric"] == "startup.ready_s" and row["value"]:
                row["value"] *= factor
        (baseline / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = gate("second")
    print(second.stdout[-4000:], second.stderr[-2000:])
    assert second.returncode == 1
    assert "regressed on alpha\n" in second.stdout
    assert "  alpha: regressed against" in second.stdout
    assert "  beta: passed the gate against" in second.stdout
    assert (tmp_path / "second" / "hosts" / "alpha" / "compare.md").exists()


def test_ctrl_c_on_the_driver_stops_every_host_and_leaves_nothing(cluster, tmp_path):
    out = tmp_path / "run"
    proc = start_driver(cluster, out, "--reps", "40")
    try:
        wait_for_records_from(out, HOSTS, proc)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output[-4000:])
    assert proc.returncode == 130
    environment = read_environment(out)
    assert environment["fleet"]["interrupted"] is True
    assert {s["status"] for s in environment["fleet"]["hosts"].values()} == {"interrupted"}
    assert all(s["exit_code"] == 130 for s in environment["fleet"]["hosts"].values())
    runs = host_runs(out)
    assert len(runs) == 2 and wait_for_leftovers_gone(runs.values()) == []
    records(out)  # every line whole
    assert cvbench("report", out).returncode == 0


def test_a_killed_host_fails_its_cells_with_the_reason_and_the_other_completes(cluster, tmp_path):
    out = tmp_path / "run"
    proc = start_driver(cluster, out, "--reps", "12")
    try:
        wait_for_records_from(out, HOSTS, proc)
        cluster.remove_node(cluster.nodes_by_name["beta"])  # its raylet and workers die
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
        cluster.nodes_by_name["beta"] = add_host(cluster, "beta")
    print(output[-4000:])
    assert proc.returncode == 1
    hosts = read_environment(out)["fleet"]["hosts"]
    assert hosts["alpha"]["status"] == "done" and hosts["alpha"]["exit_code"] == 0
    assert hosts["beta"]["status"] == "lost" and "lost after" in hosts["beta"]["reason"]
    rows = records(out)
    alpha_ready = [r for r in rows if r["host"] == "alpha" and r["metric"] == "startup.ready_s"
                   and not r["warmup"] and r["value"] is not None]
    assert len(alpha_ready) == 2 * 12  # alpha measured everything
    failed = [r for r in rows if r["host"] == "beta" and r.get("error", "").startswith("host beta lost")]
    sent = [r["cell"] for r in rows if r["host"] == "beta" and not r.get("error")]
    assert sent  # beta's records so far are kept
    # it costs the cell it was in and those it never reached
    assert {r["cell"] for r in failed} == {sent[-1]} | ({"noop@native", "noop@runc"} - set(sent))
    # beta's run got SIGTERM when its worker died, and removed its instances
    runs = host_runs(out)
    assert wait_for_leftovers_gone(runs.values()) == []
    # and its own copy of its records stayed on the host (removed here: a test leaves nothing)
    copy = [d for d in Path(tempfile.gettempdir()).glob("cvbench-fleet-*")
            if read_environment(d / "out").get("run") == runs["beta"]]
    assert len(copy) == 1 and len(records(copy[0] / "out")) >= len(sent)
    shutil.rmtree(copy[0])
