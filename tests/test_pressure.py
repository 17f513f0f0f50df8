"""Startup under pressure, without engines: the agent's await on its own shell, and the
report's findings pinned on real runs (tests/golden/run_limit: density grown to its cap,
native and runc; run_warm: scenarios/warm.toml on this host, VMs emulated)."""

import base64
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.compare import Thresholds, compare_frames
from bench.agent import AWAIT, boots_the_agent, kernel_cmdline_arg, workload_line
from bench.errors import RuntimeFailure
from bench.report import pressure, sharing
from bench.results import load_frame
from bench.runtimes.oci import errors_of
from bench.runtimes.qemu import kernel_args
from bench.runtimes import Limits
from bench.workloads import NO_NEEDS

AGENT = Path(__file__).parent.parent / "bench" / "agent" / "agent.sh"


def test_an_awaiting_agent_takes_its_workload_as_one_line_then_reports_ready():
    out = subprocess.run(["sh", str(AGENT), AWAIT], input=workload_line("echo hello; exit 3"),
                         capture_output=True, timeout=30).stdout.decode().splitlines()
    assert out[0].startswith("CVBENCH WAITING ")
    assert out[1].startswith("CVBENCH READY ")
    assert out[2:] == ["hello", "CVBENCH DONE 3"]


def test_a_vm_that_awaits_has_no_workload_on_its_command_line():
    args = kernel_args(AWAIT, Limits(1, 256), NO_NEEDS)
    assert "cvbench.await=1" in args and "cvbench.cmd=" not in args
    assert boots_the_agent(args) and boots_the_agent(kernel_args("true", Limits(1, 256), NO_NEEDS))
    assert kernel_cmdline_arg("true") == "cvbench.cmd=" + base64.b64encode(b"true").decode()
    assert workload_line("true") == base64.b64encode(b"true") + b"\n"


def test_density_limit_finding_and_its_own_section(golden, tmp_path):
    frame = load_frame(golden / "run_limit")
    assert pressure.limit_finding(frame, set()) == (
        "native reached N=24, 441.1 KiB PSS each, stopped by cap (reached the cap of 24); "
        "runc reached N=24, 3.21 MiB PSS each, stopped by cap (reached the cap of 24).")
    titles = [s["title"] for s in sharing.sections(frame, tmp_path)]
    assert titles == ["Density until something gives"]  # not density's fixed-N section
    assert (tmp_path / "density-limit.png").stat().st_size > 10_000


def test_warm_finding_compares_restore_with_cold_and_says_why_not(golden, tmp_path):
    frame = load_frame(golden / "run_warm")
    text = pressure.warm_finding(frame, {"qemu", "qemu-microvm"})
    assert text.startswith("qemu (emulated): restore 636.0 ms against 15.5 s cold (24.4x "
                           "faster), snapshot 123.5 MiB, PSS after READY 203.0 MiB restored vs "
                           "364.0 MiB cold;")
    assert "oci-runsc: restore 250.2 ms against 238.5 ms cold (about the same)" in text
    assert "not restored: oci-runc: runc checkpoints with CRIU, which fails here" in text
    assert pressure.warm_figure(frame, tmp_path / "warm.png", set()).stat().st_size > 10_000


def test_no_warm_section_without_warm_records(golden):
    assert pressure.warm_finding(load_frame(golden / "run_limit"), set()) is None
    assert pressure.burst_finding(load_frame(golden / "run_warm"), set()) is None


def _burst(runtime, k, ready, together):
    rows = [{"runtime": runtime, "metric": "burst.ready_s", "value": v, "tag.k": k}
            for v in ready]
    rows.append({"runtime": runtime, "metric": "burst.all_ready_s", "value": together, "tag.k": k})
    return rows


@pytest.mark.parametrize("together, worth, queued", [(0.4, 1.0, True), (0.1, 4.0, False)])
def test_parallelism_is_k_launches_alone_over_the_burst(together, worth, queued):
    frame = pd.DataFrame(_burst("x", 1, [0.1], 0.1) + _burst("x", 4, [0.1] * 4, together))
    frame = frame.assign(warmup=False, workload="burst", error=None)
    assert pressure.parallelism(frame, "x", 4) == pytest.approx(worth)
    assert ("barely overlap in x" in pressure.burst_finding(frame, set())) is queued


def test_speedup_words():
    assert pressure._speedup(np.array([10.0]), np.array([1.0])) == "10.0x faster"
    assert pressure._speedup(np.array([1.0]), np.array([1.05])) == "about the same"
    assert pressure._speedup(np.array([1.0]), np.array([2.0])) == "2.0x slower"


def test_the_gate_compares_cold_with_cold_and_warm_with_warm(golden):
    frame = load_frame(golden / "run_warm")
    keys = {(c.cell, c.metric) for c in compare_frames(frame, frame, Thresholds())}
    # the same metric, measured after a cold start and after a restore: two conditions
    assert ("warm@qemu [start=cold]", "warm.pss_after_ready_bytes") in keys
    assert ("warm@qemu [start=warm]", "warm.pss_after_ready_bytes") in keys


def test_burst_finding_on_scenarios_burst(golden, tmp_path):
    """tests/golden/run_burst: scenarios/burst.toml here, 3 reps, K = 1..16."""
    frame = load_frame(golden / "run_burst")
    text = pressure.burst_finding(frame, {"qemu-microvm-fast"})
    assert text.startswith("native K=16: READY p50 143.6 ms, p99 170.0 ms, all in 163.2 ms, "
                           "3.5 launches' worth at once;")
    assert ("runc K=16: READY p50 2.45 s, p99 3.03 s, all in 2.68 s, manager CPU 315.6 ms per "
            "launch, 1.5 launches' worth at once") in text
    assert "barely overlap in podman, qemu-microvm-fast (emulated) (under 1.5" in text
    assert pressure.parallelism(frame, "podman", 16) == pytest.approx(1.351, abs=0.001)
    assert len(pressure.burst_rows(frame, "runsc", 16, "burst.ready_s")) == 48  # 16 x 3 reps
    assert pressure.burst_figure(frame, tmp_path / "burst.png", set()).stat().st_size > 20_000


def test_criu_errors_put_the_cause_first(golden):
    """`criu check` on this host's kernel (6.18): the vDSO layout CRIU 3.17 cannot read."""
    text = (golden / "criu_check_vdso.txt").read_text()
    assert errors_of(text) == ("vdso: Unexpected rt vDSO area bounds; vdso: Failed to fill self "
                               "vdso symtable; kerndat_vdso_fill_symtable failed when "
                               "initializing kerndat.")
    # a dump.log's lines carry a timestamp
    assert errors_of("(00.01) Warn (a.c:1): x\n(00.02) Error (mount.c:9): mnt: busy\n") == "mnt: busy"


def test_a_workload_too_long_for_a_console_line_is_refused():
    workload_line("x" * 3000)  # 4000 in base64: fits
    with pytest.raises(RuntimeFailure, match="too long for one console line"):
        workload_line("x" * 3100)
