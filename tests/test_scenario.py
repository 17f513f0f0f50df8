"""Scenario validation: every bad file names the file and the key."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.modes.cells import plan
from bench.scenario import load_scenario

REPO = Path(__file__).parent.parent

GOOD = """
name = "t"
reps = 2
warmup = 1
[runtimes.native]
kind = "native"
[runtimes.runc]
kind = "docker"
oci_runtime = "runc"
[workloads.noop]
[workloads.cpu-2]
workload = "cpu"
threads = 2
"""


def write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_good_scenario(tmp_path):
    s = load_scenario(write(tmp_path, GOOD))
    assert [r.name for r in s.runtimes] == ["native", "runc"]
    assert s.runtimes[1].options == {"oci_runtime": "runc", "network": "none",
                                     "serve_network": "bridge", "serve_oci_runtime": ""}
    assert s.workloads[1].workload == "cpu" and s.workloads[1].params == {"threads": 2}
    assert s.cpus == 1.0 and s.memory_mib == 512


@pytest.mark.parametrize("shipped", sorted((REPO / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(shipped):
    assert load_scenario(shipped).runtimes


@pytest.mark.parametrize("change, key", [
    (GOOD.replace('reps = 2', 'reps = "two"'), "scenario.reps"),
    (GOOD.replace('reps = 2', 'repetitions = 2'), "scenario.repetitions"),
    (GOOD.replace('threads = 2', 'threads = 2\nthreds = 3'), "workloads.cpu-2.threds"),
    (GOOD.replace('threads = 2', 'threads = 2.5'), "workloads.cpu-2.threads"),
    (GOOD.replace('workload = "cpu"', 'workload = "linpack"'), "workloads.cpu-2"),
    (GOOD.replace('kind = "native"', 'kind = "firecracker"'), "runtimes.native.kind"),
    (GOOD.replace('oci_runtime = "runc"', 'oci_runtime = "runc"\nnetwork = "overlay"'),
     "runtimes.runc.network"),
    (GOOD.replace('reps = 2', 'reps = 0'), "reps"),
    (GOOD.replace('[workloads.noop]', 'workloads = 3\n[workloads.noop]'), ""),
    (GOOD.replace('[runtimes.native]', '[mode]\nname = "isolation"\naggressors = ["cpu", "hammer"]\n'
                  '[runtimes.native]'), "mode.aggressors: unknown aggressor 'hammer'"),
    (GOOD.replace('[runtimes.native]', '[mode]\nname = "isolation"\naggressor_pids = 0\n'
                  '[runtimes.native]'), "mode.aggressor_pids"),
    (GOOD.replace('[runtimes.native]', '[mode]\nname = "isolation"\ncounts = [2]\n'
                  '[runtimes.native]'), "mode.counts: unknown key"),
    (GOOD.replace('[runtimes.native]', '[mode]\nname = "stampede"\n[runtimes.native]'), "mode.name"),
    (GOOD.replace('[runtimes.native]', '[mode]\nname = "burst"\nmemory_floor_mib = 512\n[runtimes.native]'),
     "mode.memory_floor_mib: at least 1024"),
    (GOOD.replace('[runtimes.native]', '[mode]\nname = "density"\ngrow = true\nlatency_factor = -1.0\n'
                  '[runtimes.native]'), "mode.latency_factor"),
    # a mode's option outside [mode]: the message says where it goes
    (GOOD.replace('reps = 2', 'reps = 2\nmode = "isolation"\naggressor_pids = 64'),
     "aggressor_pids: an option of mode isolation"),
])
def test_bad_scenarios_name_file_and_key(tmp_path, change, key):
    path = write(tmp_path, change)
    with pytest.raises(UserError) as err:
        load_scenario(path)
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_no_workloads(tmp_path):
    with pytest.raises(UserError, match="workloads"):
        load_scenario(write(tmp_path, GOOD.split("[workloads.noop]")[0]))


def test_unknown_runtime_override(tmp_path):
    with pytest.raises(UserError, match="kata"):
        load_scenario(write(tmp_path, GOOD)).with_overrides(runtimes=["kata"])


def test_plan_interleaves_and_warms_up_first(tmp_path):
    s = load_scenario(write(tmp_path, GOOD))
    steps = plan(s)
    assert len(steps) == 2 * 2 * 3
    assert all(step.warmup for step in steps[:4]) and not any(step.warmup for step in steps[4:])
    assert [step.cell.runtime.name for step in steps[:2]] == ["native", "runc"]
    blocked = plan(load_scenario(write(tmp_path, GOOD.replace("reps = 2", 'reps = 2\norder = "blocked"'))))
    assert [step.rep for step in blocked[:3]] == [0, 1, 2]


def test_cli_bad_scenario_exit_2_and_no_results_folder(tmp_path):
    path = write(tmp_path, GOOD.replace("reps = 2", "reps = -1"))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(path), "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert str(path) in result.stderr and "reps" in result.stderr
    assert not out.exists()


def test_cli_missing_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(tmp_path / "nope.toml")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "nope.toml" in result.stderr


def test_workload_reps_of_its_own(tmp_path):
    s = load_scenario(write(tmp_path, GOOD.replace("threads = 2", "threads = 2\nreps = 4")))
    steps = plan(s)
    cpu2 = [step for step in steps if step.cell.workload.name == "cpu-2"]
    others = [step for step in steps if step.cell.workload.name != "cpu-2"]
    assert len(cpu2) == 2 * (1 + 4) and len(others) == 2 * (1 + 2)
    assert steps[-1].cell.workload.name == "cpu-2"  # the later rounds are its alone
    # the command line decides for every workload
    assert len(plan(s.with_overrides(reps=1))) == 2 * 2 * 2
    with pytest.raises(UserError, match=r"workloads.cpu-2.reps"):
        load_scenario(write(tmp_path, GOOD.replace("threads = 2", "threads = 2\nreps = 0")))


def test_workload_in_some_runtimes_only(tmp_path):
    s = load_scenario(write(tmp_path, GOOD.replace("threads = 2", 'threads = 2\nruntimes = ["runc"]')))
    assert {step.cell.name for step in plan(s)} == {"noop@native", "noop@runc", "cpu-2@runc"}
    assert [c.name for c in s.cells_of(s.runtimes[0])] == ["noop@native"]
    for wrong, says in (('["crun"]', "not runtimes of the scenario: ['crun']"), ("[]", "empty"),
                        ('"runc"', "expected list")):
        with pytest.raises(UserError, match=re.escape(f"workloads.cpu-2.runtimes: {says}")):
            load_scenario(write(tmp_path, GOOD.replace("threads = 2", f"threads = 2\nruntimes = {wrong}")))


def test_workload_warmup_of_its_own(tmp_path):
    s = load_scenario(write(tmp_path, GOOD.replace("threads = 2", "threads = 2\nwarmup = 0\nreps = 1")))
    cpu2 = [step for step in plan(s) if step.cell.workload.name == "cpu-2"]
    assert [(step.rep, step.warmup) for step in cpu2] == [(0, False), (0, False)]  # one per runtime
    noop = [step for step in plan(s) if step.cell.workload.name == "noop"]
    assert [step.warmup for step in noop] == [True, True, False, False, False, False]
    with pytest.raises(UserError, match=r"workloads.cpu-2.warmup"):
        load_scenario(write(tmp_path, GOOD.replace("threads = 2", "threads = 2\nwarmup = -1")))


def test_isolation_runs_the_victim_alone_first(tmp_path):
    s = load_scenario(write(tmp_path, GOOD.replace(
        '[runtimes.native]', '[mode]\nname = "isolation"\naggressors = ["memhog", "cpu", "none", "cpu"]'
        '\n[runtimes.native]')))
    assert s.mode == "isolation" and s.mode_options["aggressors"] == ("none", "memhog", "cpu")
    assert [w.name for w in s.workloads] == ["noop", "cpu-2"]  # the victims


@pytest.mark.parametrize("toml, key", [
    ('name = "../../etc"\n[runtimes.native]\nkind = "native"\n[workloads.noop]\n', "name"),
    ('[runtimes."../x"]\nkind = "native"\n[workloads.noop]\n', "runtimes.../x"),
    ('[runtimes.native]\nkind = "native"\n[workloads."a b"]\nworkload = "noop"\n', "workloads.a b"),
])
def test_names_that_could_climb_out_of_a_folder_are_refused(tmp_path, toml, key):
    path = tmp_path / "s.toml"
    path.write_text(toml)
    with pytest.raises(UserError, match=re.escape(f"{path}: {key}: ") + ".* is not a name cvbench can use"):
        load_scenario(path)


@pytest.mark.parametrize("path, warm", [
    # idle gives the footprint; a disk workload's root, yes, and a network of its own
    # (user networking or a tap link); a volume of its own, no (disk-volume)
    ("scenarios/default.toml", ["cpu", "memory", "cache", "syscall", "fork", "disk-randread",
                                "disk-seqwrite", "net", "redis", "rr", "net-direct", "rr-direct"]),
    ("scenarios/matrix.toml", ["memory", "syscall", "fork", "disk", "net", "net-direct", "redis",
                               "rr", "rr-direct"]),  # no idle: cpu is it
    ("scenarios/smoke.toml", []),  # warm_workloads off
])
def test_which_vm_cells_start_from_a_snapshot(path, warm):
    from bench.measure import starts_warm
    from bench.runtimes.docker import DockerRuntime
    from bench.runtimes.qemu import QemuRuntime
    from bench.workloads import CATALOGUE

    scenario = load_scenario(REPO / path)

    def warm_in(runtime):
        found = []
        for w in scenario.workloads:
            entry = CATALOGUE[w.workload]
            if starts_warm(scenario, runtime, entry, entry.needs(entry.resolve(w.params))):
                found.append(w.name)
        return found

    assert warm_in(QemuRuntime("qemu", {}, None)) == warm
    # a container starts in a blink: it never restores
    assert warm_in(DockerRuntime("runc", {}, None)) == []
