"""Parsers against output captured from the real tools and kernels."""

import time

import pytest

from bench.agent import AgentLine, Ready, kernel_cmdline_arg
from bench.collect.cgroups import parse_keyed, parse_proc_cgroup
from bench.collect.processes import parse_smaps_rollup
from bench.workloads import CATALOGUE, parse_sysbench_cpu


def test_sysbench_cpu_single_thread(golden):
    metrics = {m.name: m for m in parse_sysbench_cpu((golden / "sysbench_cpu.txt").read_text())}
    assert metrics["workload.events_per_s"].value == 3507.47
    assert metrics["workload.events_per_s"].unit == "1/s"
    assert metrics["workload.events"].value == 7018
    assert metrics["workload.time_s"].value == 2.0002


def test_sysbench_cpu_two_threads(golden):
    metrics = {m.name: m.value for m in parse_sysbench_cpu((golden / "sysbench_cpu_2threads.txt").read_text())}
    assert metrics["workload.events_per_s"] == 6540.46


def test_sysbench_garbage_is_an_error():
    with pytest.raises(ValueError, match="events per second"):
        parse_sysbench_cpu("sysbench: command not found")


def test_cpu_command_uses_parameters():
    workload = CATALOGUE["cpu"]
    params = workload.resolve({"threads": 2})
    assert workload.command(params) == "sysbench cpu --threads=2 --time=10 --cpu-max-prime=10000 run"
    assert workload.resolve({}, quick=True)["seconds"] == 2
    assert workload.resolve({"seconds": 7}, quick=True)["seconds"] == 7  # explicit wins


def test_smaps_rollup(golden):
    mem = parse_smaps_rollup((golden / "smaps_rollup.txt").read_text())
    # Rss 236 kB, Pss 69 kB, USS = Private_Clean 4 kB + Private_Dirty 32 kB
    assert (mem.rss, mem.pss, mem.uss) == (236 * 1024, 69 * 1024, 36 * 1024)
    assert mem.rss % 1024 == 0


def test_proc_cgroup_v1(golden):
    paths = parse_proc_cgroup((golden / "proc_cgroup_v1.txt").read_text())
    assert paths["memory"] == "/process_api/21602d5402f692c08b248629be1e402b"
    assert paths["systemd"] == "/" and paths[""] == "/"


def test_proc_cgroup_v2(golden):
    assert parse_proc_cgroup((golden / "proc_cgroup_v2.txt").read_text()) == {
        "": "/process_api/45cf387187284b8b95baa36ac725fc6b"}


def test_keyed_files(golden):
    assert parse_keyed((golden / "cgroup_v2" / "cpu.stat").read_text())["usage_usec"] == 35910
    v1_stat = (golden / "cgroup_v1" / "memory" / "memory.stat").read_text()
    assert parse_keyed(v1_stat)["total_inactive_file"] == 61440


@pytest.mark.parametrize("text, event", [
    ("CVBENCH READY 7.19", ("READY", "7.19")),
    ("CVBENCH DONE 0", ("DONE", "0")),
    ("[    9.66] random kernel line CVBENCH READY 1.5", ("READY", "1.5")),  # serial interleaving
    ("events per second: 12", None),
    ("CVBENCH", None),
])
def test_agent_lines(text, event):
    assert AgentLine(0.0, text).event == event


def test_ready_line_carries_uptime_and_kernel():
    line = AgentLine(0.0, "CVBENCH READY 7.19 6.1.0-56-cloud-amd64")
    assert line.fields == ["READY", "7.19", "6.1.0-56-cloud-amd64"]
    assert AgentLine(0.0, "CVBENCH DONE 0").fields == ["DONE", "0"]
    assert AgentLine(0.0, "no protocol here").fields == []


HOST_BOOT_ID = "15b62711-ca4b-43e1-bd8b-0a4b56f62785"


@pytest.mark.parametrize("text, shared", [
    # a VM that boots the host's own kernel release still runs a kernel of its own
    ("CVBENCH READY 7.19 6.1.0-41-amd64 0c5e7a9e-3f7b-4b6e-9a51-8d2d8f1f6a10", False),
    (f"CVBENCH READY 2051.3 6.1.0-41-amd64 {HOST_BOOT_ID}", True),  # runc, native
    ("CVBENCH READY 0.21 4.4.0 -", False),  # an agent with no boot id to read: release decides
    ("CVBENCH READY 2051.3 6.1.0-41-amd64", True),  # a line of an agent before the boot id
])
def test_kernel_sharing_is_judged_by_boot_id(text, shared):
    ready = Ready.of(AgentLine(0.0, text))
    assert ready.shares_kernel_with("6.1.0-41-amd64", HOST_BOOT_ID) is shared


def test_ready_line_fields():
    ready = Ready.of(AgentLine(0.0, f"CVBENCH READY 7.19 6.1.0-56-cloud-amd64 {HOST_BOOT_ID}"))
    assert ready == Ready(7.19, "6.1.0-56-cloud-amd64", HOST_BOOT_ID)
    assert Ready.of(AgentLine(0.0, "CVBENCH READY 0.21 4.4.0 -")).boot_id is None


def test_kernel_cmdline_arg_is_one_word():
    arg = kernel_cmdline_arg("sysbench cpu --time=10 run; echo 'x y'")
    assert " " not in arg and arg.startswith("cvbench.cmd=")


def test_line_reader_knows_when_an_instance_is_done_without_waiting():
    import threading

    from bench.agent import LineReader

    gate = threading.Event()

    def stream():
        yield b"CVBENCH READY 0.1 6.1.0\nworking\n"
        gate.wait(5)  # the instance runs on

    running = LineReader(stream(), "t")
    running.wait_for("READY", time.monotonic() + 5)
    assert not running.finished()
    gate.set()
    ended = LineReader(iter([b"CVBENCH READY 0.1 6.1.0\n"]), "t")  # died: output ended, no DONE
    ended.drain(1)  # an error message read the rest first
    assert ended.finished() and ended.finished()
    done = LineReader(iter([b"CVBENCH READY 0.1 6.1.0\nCVBENCH DONE 0\n"]), "t")
    time.sleep(0.2)
    assert done.finished()
