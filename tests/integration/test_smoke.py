"""scenarios/matrix.toml end to end on the real engines: native, runc, runsc (Docker),
runc under Podman, runc and runsc on a bundle with no engine (oci), qemu (pc, and a microvm
booted the fast way), and qemu's pc VM through libvirtd."""

import json
import re

import pytest

from .helpers import leftovers, records

pytestmark = pytest.mark.integration
RUNTIMES = ("native", "runc", "runsc", "podman", "oci-runc", "oci-runsc", "qemu", "qemu-microvm-fast",
            "libvirt")
REQUIRED = ("startup.ready_s", "startup.exit_s", "mem.cgroup_bytes", "mem.pss_bytes", "cpu.seconds")


def test_run_succeeds(smoke):
    out, result = smoke
    assert result.returncode == 0, result.stderr


def test_every_runtime_has_the_required_metrics(smoke):
    out, _ = smoke
    measured = [r for r in records(out) if not r["warmup"]]
    for runtime in RUNTIMES:
        cpu = {r["metric"]: r for r in measured if r["cell"] == f"cpu@{runtime}"}
        for metric in REQUIRED + ("workload.events_per_s",):
            assert metric in cpu and cpu[metric]["value"] is not None, (runtime, metric, cpu.get(metric))
        assert cpu["workload.events_per_s"]["value"] > 0
        noop = [r for r in measured if r["cell"] == f"noop@{runtime}" and r["metric"] == "startup.ready_s"]
        assert len(noop) == 3 and all(r["value"] > 0 for r in noop)


def test_records_follow_the_schema(smoke):
    out, _ = smoke
    env = json.loads((out / "environment.json").read_text())
    for r in records(out):
        assert r["image"] == env["image"]["digest"]  # the same bytes everywhere
        assert r["run"] == env["run"] and r["scenario"] == "matrix"
        assert re.fullmatch(r"[a-z]+(\.[a-z0-9_]+)+", r["metric"])
        assert r["unit"] in ("s", "ns", "bytes", "1/s", "bytes/s", "1")
        assert r["tags"]["cpus"] == 1 and r["tags"]["memory_mib"] == 512


def test_cgroup_cpu_time_respects_the_limit(smoke):
    """The cgroup was charged for the CPU-bound workload, and never more than the
    1-CPU quota allows over the instance's lifetime: the same limit in every runtime."""
    out, _ = smoke
    rows = [r for r in records(out) if r["workload"] == "cpu" and not r["warmup"]]
    for runtime in RUNTIMES:
        by_rep = {}
        for r in rows:
            if r["runtime"] == runtime:
                by_rep.setdefault(r["rep"], {})[r["metric"]] = r["value"]
        for m in by_rep.values():
            assert m["cpu.seconds"] >= 0.5 * m["workload.time_s"], (runtime, m)
            assert m["cpu.seconds"] <= 1.05 * m["startup.exit_s"] + 0.1, (runtime, m)


def test_vm_acceleration_is_labelled(smoke):
    out, _ = smoke
    env = json.loads((out / "environment.json").read_text())
    accel = env["runtimes"]["qemu"]["accel_used"]
    assert accel in ("kvm", "tcg") and env["runtimes"]["qemu"]["accel_reason"]
    for r in records(out):
        if r["runtime"] == "qemu" and r["value"] is not None:
            assert r["tags"]["accel"] == accel and r["tags"]["emulated"] == (accel == "tcg")
    if accel == "tcg":
        assert "emulated" in (out / "report.html").read_text().lower()


def test_report_and_figures(smoke):
    out, _ = smoke
    html = (out / "report.html").read_text()
    pngs = re.findall(r'src="(figures/[^"]+\.png)"', html)
    assert len(pngs) >= 3
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_left_behind(smoke):
    out, _ = smoke
    env = json.loads((out / "environment.json").read_text())
    assert leftovers(env["run"]) == []


def test_cpu_total_is_cgroup_plus_engine_cpu(smoke):
    """Containers add what the engine spent for them (its own cgroup here), Podman what its
    CLI calls spent (rusage), libvirt what libvirtd spent (psutil: QEMU is not its child);
    native, oci and QEMU on its own spend nothing outside their cgroup."""
    out, _ = smoke
    by_instance = {}
    for r in records(out):
        if r["metric"].startswith("cpu.") and r["value"] is not None:
            by_instance.setdefault((r["cell"], r["rep"]), {})[r["metric"]] = r
    for (cell, _rep), m in by_instance.items():
        total = m["cpu.total_seconds"]["value"]
        manager = {"docker": "cgroup", "libvirt": "psutil", "podman": "rusage"}.get(m["cpu.seconds"]["kind"])
        if manager:
            assert m["cpu.engine_seconds"]["tags"]["engine_cpu_source"] == manager, cell
            assert m["cpu.engine_seconds"]["value"] > 0, cell  # every launch costs the manager
            if manager == "psutil":  # QEMU is the VM's: libvirtd spends well under 5% of it
                assert m["cpu.engine_seconds"]["value"] < 0.05 * m["cpu.seconds"]["value"], cell
            assert total == m["cpu.seconds"]["value"] + m["cpu.engine_seconds"]["value"], cell
        else:
            assert "cpu.engine_seconds" not in m and total == m["cpu.seconds"]["value"], cell


def test_memory_is_measured_or_null_with_its_reason(smoke):
    out, _ = smoke
    for r in records(out):
        if r["metric"] == "mem.pss_bytes":  # never 0: a value, or null with the reason
            assert (r["value"] is None) == bool(r.get("error")) and r["value"] != 0, r
