"""scenarios/storage, density and allocation on the real engines, small sizes: records
present, values positive and consistent with what the host shows, nothing left behind,
and a density run interrupted half-way cleans up."""

import json

import pytest

from bench.images import ensure_image
from bench.collect.host import du_bytes

from .helpers import container_ids, cvbench, interrupt_run, leftovers, records

pytestmark = pytest.mark.integration
MiB = 2**20

RUNTIMES = """
[runtimes.native]
kind = "native"
[runtimes.runc]
kind = "docker"
oci_runtime = "runc"
[runtimes.runsc]
kind = "docker"
oci_runtime = "runsc"
network = "none"
[runtimes.qemu]
kind = "qemu"
accel = "auto"
"""


def _run(tmp_path, text, *extra):
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(text + RUNTIMES)
    out = tmp_path / "run"
    result = cvbench("run", scenario, "--out", out, *extra, timeout=600)
    print(result.stdout[-3000:], result.stderr[-3000:])
    env = json.loads((out / "environment.json").read_text())
    assert leftovers(env["run"]) == []
    return result, out, [r for r in records(out) if r["value"] is not None]


def _values(rows, runtime, metric, **tags):
    return [r["value"] for r in rows if r["runtime"] == runtime and r["metric"] == metric
            and all(r["tags"].get(k) == v for k, v in tags.items())]


def test_storage(tmp_path):
    result, out, rows = _run(tmp_path, 'name = "storage"\nmode = "storage"\nreps = 1\n'
                                       'timeout_s = 120\n')
    assert result.returncode == 0, result.stderr
    image = ensure_image()
    file_bytes = rows[0]["tags"]["write_file_bytes"]
    assert file_bytes >= 10 * MiB
    # natively: only the instance's own (empty) scratch folder, as du counts a folder here
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _values(rows, "native", "storage.instance_disk_bytes") == [du_bytes(empty)]
    for runtime in ("runc", "runsc"):
        (idle,) = _values(rows, runtime, "storage.instance_disk_bytes")
        (after,) = _values(rows, runtime, "storage.instance_disk_after_write_bytes")
        assert 0 < idle < MiB  # a few directories in the upper dir
        # overlayfs copies the whole file up on the first write, runsc's gofer included
        assert after >= file_bytes
        assert _values(rows, runtime, "storage.first_write_s")[0] > 0
        assert _values(rows, runtime, "storage.second_write_s")[0] > 0
    (overlay,) = _values(rows, "qemu", "storage.instance_disk_bytes")
    (overlay_after,) = _values(rows, "qemu", "storage.instance_disk_after_write_bytes")
    assert 0 < overlay < 0.05 * image.disk.stat().st_size
    # qcow2 copies clusters, not files: the overlay grows by far less than the file
    assert overlay <= overlay_after < overlay + file_bytes
    (copy,) = _values(rows, "qemu", "storage.full_copy_bytes")
    # the copy occupies about what the sparse base disk does (cp also skips zeroed blocks)
    base = du_bytes(image.disk)
    assert 0.9 * base <= copy <= base + MiB
    assert (out / "figures" / "storage.png").exists()


def test_density(tmp_path):
    result, out, rows = _run(tmp_path, 'name = "density"\nreps = 1\nmemory_mib = 256\n'
                                       'timeout_s = 180\n[mode]\nname = "density"\n'
                                       'counts = [1, 2]\nmemory_floor_mib = 1024\n', "--runtimes", "runc,qemu")
    assert result.returncode == 0, result.stderr
    for runtime in ("runc", "qemu"):  # runsc runs in test_storage
        assert _values(rows, runtime, "density.reached_n") == [2]
        for n in (1, 2):
            pss = _values(rows, runtime, "density.pss_per_instance_bytes", n=n)
            cgroup = _values(rows, runtime, "density.cgroup_per_instance_bytes", n=n)
            assert len(pss) == 1 and pss[0] > 0 and cgroup[0] > 0
            assert len(_values(rows, runtime, "density.kth_ready_s", n=n)) == n
            assert _values(rows, runtime, "density.all_ready_s", n=n)[0] > 0
    # a VM's guest RAM is in its QEMU process: PSS and cgroup agree within 25%
    for n in (1, 2):
        pss = _values(rows, "qemu", "density.pss_per_instance_bytes", n=n)[0]
        cgroup = _values(rows, "qemu", "density.cgroup_per_instance_bytes", n=n)[0]
        assert 0.75 < pss / cgroup < 1.25, (pss, cgroup)
        assert pss > 100 * MiB  # a booted guest kernel and its VMM
    assert (out / "figures" / "density.png").exists()


def test_density_stops_at_the_memory_floor(tmp_path):
    floor = 10**7  # MiB: far above any host's memory
    result, out, rows = _run(tmp_path, f'name = "density"\nreps = 1\n[mode]\nname = "density"\n'
                                       f'counts = [1]\nmemory_floor_mib = {floor}\n',
                             "--runtimes", "runc")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    reached = [r for r in rows if r["metric"] == "density.reached_n"]
    assert len(reached) == 1 and reached[0]["value"] == 0
    assert "floor" in reached[0]["tags"]["stop_reason"]
    assert not any(r["metric"].startswith("density.kth") for r in rows)


def test_allocation(tmp_path):
    result, out, rows = _run(tmp_path, 'name = "allocation"\nreps = 1\ntimeout_s = 180\n'
                                       '[mode]\nname = "allocation"\n'
                                       'memory_sizes_mib = [256, 512]\ntouch_mib = 100\n',
                             "--runtimes", "runc,qemu")
    assert result.returncode == 0, result.stderr
    for runtime in ("runc", "qemu"):
        for size in (256, 512):
            (idle,) = _values(rows, runtime, "alloc.pss_bytes", memory_mib=size, phase="idle")
            (after,) = _values(rows, runtime, "alloc.pss_bytes", memory_mib=size, phase="touched")
            assert idle > 0 and after > 0
            if runtime == "runc":  # the process exited: its pages went back to the host
                assert after < idle + 20 * MiB
            else:  # the guest freed into its own free list: the host still holds the pages
                assert after > idle + 50 * MiB
    env = json.loads((out / "environment.json").read_text())
    assert env["scenario"] == "allocation"


def test_density_interrupted_cleans_up(tmp_path):
    scenario = tmp_path / "density.toml"
    scenario.write_text('name = "density"\nreps = 1\n[mode]\nname = "density"\n'
                        'counts = [4]\nmemory_floor_mib = 1024\n' + RUNTIMES)
    out = tmp_path / "run"

    def two_up(run_id):
        """two containers of the density run to be up"""
        return len(container_ids(run_id, running_only=True)) >= 2

    code, output, run_id = interrupt_run([scenario, "--runtimes", "runc"], out, two_up, timeout=120)
    assert code == 130, output
    assert leftovers(run_id) == []
    env = json.loads((out / "environment.json").read_text())
    assert env["interrupted"] is True
    assert any(r["metric"] == "density.kth_ready_s" for r in records(out))
    reached = [r for r in records(out) if r["metric"] == "density.reached_n"]
    assert len(reached) == 1 and reached[0]["value"] == 0  # N=4 not completed
    assert reached[0]["tags"]["stop_reason"].startswith("interrupted")
