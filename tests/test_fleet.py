"""Fleets without a cluster: choosing hosts from what `ray.nodes()` really returned
(tests/golden/ray_nodes.json: a local cluster of alpha, beta, a dead gamma, two nodes named
by their shared IP and a plain worker), the fleet folder's bookkeeping, and the fleet
report on a real two-host run (tests/golden/fleet_run: scenarios/fleet.toml on alpha and
beta of a local cluster on this 2-core host)."""

import json
import shutil
import sys

import pytest

from bench import cli, regress
from bench.errors import UserError
from bench.fleet.driver import Fleet, Host, choose_hosts
from bench.fleet.host import _Tail
from bench.report import build_report
from bench.report.fleet import host_spread
from bench.results import load_frame, read_environment, read_records
from bench.scenario import load_scenario

SCENARIO = "scenarios/fleet.toml"


@pytest.fixture
def nodes(golden):
    return json.loads((golden / "ray_nodes.json").read_text())


def test_every_live_benchmark_host_is_chosen_and_nodes_of_one_name_are_told_apart(nodes):
    hosts = choose_hosts(nodes)
    assert [h.name for h in hosts] == ["beta", "192.0.2.2-b17f70", "192.0.2.2-22abe7", "alpha"]
    assert all(h.status == "waiting" for h in hosts)  # no dead gamma, no head, no plain worker
    assert hosts[0].labels == {"pool": "b"}  # Ray's own ray.io/ labels left out


def test_hosts_are_chosen_by_name_label_or_id_and_a_dead_or_unknown_one_is_unreachable(nodes):
    by_label = choose_hosts(nodes, ["pool=a"])
    assert [(h.name, h.status) for h in by_label] == [("alpha", "waiting")]  # gamma is dead
    hosts = choose_hosts(nodes, ["beta", "gamma", "nosuch",
                                 "22abe7c68df9b0832ad90866a48a54a02482febb76a549b839381e55"])
    assert [(h.name, h.status) for h in hosts] == [
        ("beta", "waiting"), ("gamma", "unreachable"), ("nosuch", "unreachable"),
        ("192.0.2.2-22abe7", "waiting")]
    assert hosts[1].reason == "its Ray node is dead"
    assert "no benchmark host of the cluster is 'nosuch'" in hosts[2].reason
    assert "alpha" in hosts[2].reason and "gamma" not in hosts[2].reason


def test_without_ray_cluster_says_how_to_install_it_and_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "out"
    assert cli.main(["run", SCENARIO, "--cluster", "127.0.0.1:6379", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs Ray" in err and "pip install 'cvbench[fleet]'" in err
    assert not out.exists()


def test_hosts_without_a_cluster_is_refused(capsys):
    assert cli.main(["run", SCENARIO, "--hosts", "alpha"]) == 2
    assert "pass --cluster" in capsys.readouterr().err


def test_records_are_tagged_with_their_host_in_both_the_fleet_and_the_host_folder(tmp_path):
    fleet = Fleet(load_scenario(SCENARIO), "unused", tmp_path)
    host = Host("alpha", "id")
    line = json.dumps({"run": "r", "cell": "noop@native", "metric": "startup.ready_s", "value": 0.5})
    fleet._keep(host, [line, '{"torn'])
    fleet.store.close()
    fleet._stores["alpha"].close()
    for folder in (tmp_path, tmp_path / "hosts" / "alpha"):
        assert read_records(folder) == [{"run": "r", "cell": "noop@native", "metric": "startup.ready_s",
                                         "value": 0.5, "host": "alpha", "schema": 1}]
    assert host.records == 1


def record_line(cell: str, value=0.5) -> str:
    return json.dumps({"run": "20261129T000000Z-beta", "cell": cell, "metric": "startup.ready_s",
                       "value": value})


def closed(fleet: Fleet) -> list[dict]:
    fleet.store.close()
    return read_records(fleet.out_dir)


def test_a_lost_host_keeps_its_records_and_fails_the_cell_in_progress_and_those_never_reached(tmp_path):
    fleet = Fleet(load_scenario(SCENARIO), "unused", tmp_path)
    host = Host("beta", "id", status="running", run="20261129T000000Z-beta")
    fleet._keep(host, [record_line("noop@native"), record_line("noop@runc"), record_line("noop@native")])
    fleet._lost(host, "ActorDiedError: the node died")
    assert host.status == "lost" and host.reason == "lost after 3 records: ActorDiedError: the node died"
    rows = closed(fleet)
    assert [r["value"] for r in rows[:3]] == [0.5, 0.5, 0.5]  # what it sent is kept
    assert [(r["cell"], r["host"], r["run"], r["value"], r["error"]) for r in rows[3:]] == [
        ("noop@native", "beta", "20261129T000000Z-beta", None,
         "host beta lost mid-run: ActorDiedError: the node died")]  # runc had finished a rep since

    fleet = Fleet(load_scenario(SCENARIO), "unused", tmp_path / "2")
    host = Host("beta", "id", status="running")
    fleet._keep(host, [record_line("noop@native")])
    fleet._lost(host, "gone")
    assert [r["cell"] for r in closed(fleet) if r["value"] is None] == ["noop@native", "noop@runc"]


def test_a_host_whose_stream_breaks_after_ctrl_c_was_interrupted_not_lost(tmp_path):
    fleet = Fleet(load_scenario(SCENARIO), "unused", tmp_path)
    fleet.interrupted = True
    host = Host("beta", "id", status="running")
    fleet._keep(host, [record_line("noop@native")])
    fleet._lost(host, "ActorDiedError: killed")
    assert host.status == "interrupted" and "after Ctrl-C" in host.reason
    assert [r["value"] for r in closed(fleet)] == [0.5]  # no failure records


@pytest.mark.parametrize("payload, records, status, reason, failed_cells", [
    ({"code": 0, "step": "run"}, 1, "done", "", 0),
    ({"code": 1, "step": "run"}, 1, "done", "some cells failed", 0),
    ({"code": 130, "step": "run"}, 1, "interrupted", "stopped by Ctrl-C on the driver", 0),
    ({"code": 130, "step": "setup"}, 0, "interrupted", "stopped by Ctrl-C on the driver", 0),
    ({"code": 1, "step": "setup"}, 0, "failed", "host setup (python -m bench.hostsetup) exited 1", 0),
    ({"code": 2, "step": "run"}, 0, "failed", "its run could not start: see its lines above", 2),
])
def test_how_a_host_ended_follows_its_exit(tmp_path, payload, records, status, reason, failed_cells):
    fleet = Fleet(load_scenario(SCENARIO), "unused", tmp_path)
    host = Host("alpha", "id", status="running")
    fleet._keep(host, [record_line("noop@native")] * records)
    fleet._take(host, "exit", payload)
    assert (host.status, host.reason, host.exit_code) == (status, reason, payload["code"])
    assert sum(r["value"] is None for r in (closed(fleet) if fleet.store.count else [])) == failed_cells


def test_a_restarted_host_keeps_its_name_and_odd_names_become_folder_names(nodes):
    beta = next(n for n in nodes if n["NodeName"] == "beta")
    dead_beta = {**beta, "NodeID": "ff" + beta["NodeID"][2:], "Alive": False, "Resources": {}}
    odd = {**beta, "NodeID": "ee" + beta["NodeID"][2:], "NodeName": "../rack 7#b"}
    hosts = choose_hosts([dead_beta, *nodes, odd])
    assert "beta" in [h.name for h in hosts] and "rack-7-b" in [h.name for h in hosts]
    assert [h.node_id for h in choose_hosts([dead_beta, *nodes], ["beta"])] == [beta["NodeID"]]


def test_the_fleet_run_id_is_the_time_and_fleet(tmp_path, monkeypatch):
    import re

    monkeypatch.setattr("socket.gethostname", lambda: "ci-runner-7.example")
    assert re.fullmatch(r"\d{8}T\d{6}Z-fleet", Fleet(load_scenario(SCENARIO), "x", tmp_path).run_id)


def test_a_fleet_hosts_folder_is_promoted_as_that_hosts_baseline(fleet_run, golden, tmp_path):
    host_dir = tmp_path / "alpha"
    host_dir.mkdir()
    rows = [r for r in read_records(fleet_run) if r["host"] == "alpha"]
    (host_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    environment = read_environment(fleet_run)["hosts"]["alpha"]
    (host_dir / "environment.json").write_text(json.dumps(environment))
    assert regress.machine_of_run(host_dir) == regress.machine_id(environment["host"], "alpha")
    with pytest.raises(UserError, match="holds the records of 2 fleet hosts"):
        regress.machine_of_run(fleet_run)
    assert regress.machine_of_run(golden / "run_smoke") is None  # a run of this machine


def test_a_torn_last_line_waits_until_it_is_whole(tmp_path):
    path = tmp_path / "records.jsonl"
    tail = _Tail(path)
    assert tail.read() == []  # not there yet
    path.write_text('{"a": 1}\n{"b"')
    assert tail.read() == ['{"a": 1}']
    with open(path, "a") as f:
        f.write(': 2}\n')
    assert tail.read() == ['{"b": 2}'] and tail.read() == []


def test_each_fleet_host_has_a_baseline_of_its_own():
    host = {"cpu_model": "x", "cpu_count": 2, "memory_bytes": 1, "kernel": "6", "hostname": "same"}
    assert regress.machine_id(host, "alpha") != regress.machine_id(host, "beta")
    assert regress.machine_id(host, "alpha").startswith("alpha-")


@pytest.fixture
def fleet_run(golden, tmp_path):
    folder = tmp_path / "fleet"
    shutil.copytree(golden / "fleet_run", folder)
    return folder


def test_the_fleet_report_shows_both_hosts_side_by_side(fleet_run):
    page = build_report(fleet_run).read_text()
    assert "cvbench fleet: fleet" in page and "on 2 hosts" in page
    # the overhead matrix: runc over native on each host, pinned from the real run
    assert "16.19×" in page and "11.02×" in page
    assert (fleet_run / "figures" / "fleet_startup.png").stat().st_size > 10_000
    assert "hosts/alpha/report.html" not in page  # no host folder here: no link to one


def test_how_much_a_metric_varies_from_host_to_host(fleet_run):
    frame = load_frame(fleet_run)
    names = list(read_environment(fleet_run)["fleet"]["hosts"])
    rows = {(r["cell"], r["metric"]): r for r in host_spread(frame, names)}
    native = rows[("noop@native", "startup.ready_s")]
    assert native["medians"] == ["28.0 ms", "37.0 ms"] and native["spread"] == "1.32×"
    assert native["differ"] == "not shown (p = 0.13)"  # 3 values a host cannot show 32%
    # PSS is sampled in some instances only: fewer than 3 values on a host are not judged
    assert rows[("noop@native", "mem.pss_bytes")]["differ"].startswith("not judged")


def test_a_fleet_folder_is_compared_host_by_host_not_as_one_sample(fleet_run, capsys):
    assert cli.main(["compare", str(fleet_run), str(fleet_run)]) == 2
    err = capsys.readouterr().err
    assert "holds a fleet's run" in err and f"{fleet_run}/hosts/NAME" in err


def test_a_cluster_that_takes_no_connection_fails_at_once_and_makes_no_folder(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    assert cli.main(["run", SCENARIO, "--cluster", "127.0.0.1:1", "--out", str(out)]) == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1: Connection refused" in capsys.readouterr().err
    assert not out.exists()
