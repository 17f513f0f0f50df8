"""Storage, density and allocation: parsers on captured output, the verdicts and findings on
small frames whose answer is known."""

import json
import os

import pandas as pd
import pytest

from bench.collect.host import du_bytes, parse_meminfo
from bench.modes.allocation import command, touch_mib
from bench.report import sharing, verdicts
from bench.report.verdicts import CONTRADICTED, INCONCLUSIVE, INDICATIVE, NOT_MEASURED, SUPPORTED
from bench.scenario import load_scenario
from bench.errors import UserError
from bench.modes.storage import largest_file, parse_write_times, write_command
from bench.runtimes.docker import upper_dir
from bench.runtimes.qemu import qcow2_actual_size

MiB = 2**20


def test_upper_dir_from_docker_inspect(golden):
    inspect = json.loads((golden / "storage" / "docker_inspect.json").read_text())[0]
    path = upper_dir(inspect)
    assert str(path).startswith("/var/lib/docker/overlay2/") and path.name == "diff"
    assert path.parent == __import__("pathlib").Path(inspect["GraphDriver"]["Data"]["MergedDir"]).parent


def test_upper_dir_refuses_a_driver_without_one():
    with pytest.raises(Exception, match="no UpperDir"):
        upper_dir({"GraphDriver": {"Name": "vfs", "Data": None}})


def test_qcow2_actual_size_from_qemu_img_info(golden):
    info = json.loads((golden / "storage" / "qemu_img_info.json").read_text())
    assert qcow2_actual_size(info) == 200704  # a fresh overlay: metadata only
    assert info["virtual-size"] == 722468864  # the base disk's size, not what it occupies


def test_meminfo_in_bytes(golden):
    info = parse_meminfo((golden / "storage" / "meminfo.txt").read_text())
    assert info["MemTotal"] > info["MemAvailable"] > 0
    assert info["MemTotal"] % 1024 == 0
    assert info["HugePages_Total"] == int(
        [line for line in (golden / "storage" / "meminfo.txt").read_text().splitlines()
         if line.startswith("HugePages_Total")][0].split()[1])  # a count, not kB


def test_write_times_from_guest_output(golden):
    times = parse_write_times((golden / "storage" / "write_test_output.txt").read_text()
                              + "noise line\nCVBENCH DONE 0\n")
    assert times == {"storage.first_write_s": 0.021634112, "storage.second_write_s": 0.002297343}


def test_write_command_writes_in_place_and_synced():
    cmd = write_command("/usr/lib/big file")
    assert cmd.count("conv=notrunc,fsync") == 2 and "'/usr/lib/big file'" in cmd


def test_du_bytes_counts_blocks_and_hard_links_once(tmp_path):
    data = tmp_path / "a"
    data.write_bytes(b"x" * 10000)
    os.link(data, tmp_path / "b")
    (tmp_path / "sparse").open("wb").truncate(50 * MiB)  # a hole costs nothing
    total = du_bytes(tmp_path)
    assert 10000 <= total - os.lstat(tmp_path).st_blocks * 512 < 10000 + 8192


def test_largest_file_prefers_usr(tmp_path):
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "boot").mkdir()
    (tmp_path / "usr" / "lib" / "big").write_bytes(b"\0" * (11 * MiB))
    (tmp_path / "boot" / "bigger").write_bytes(b"\0" * (12 * MiB))
    assert largest_file(tmp_path) == ("/usr/lib/big", 11 * MiB)


def test_touch_is_capped_below_the_instance_memory():
    assert touch_mib(256, 200) == 102 and touch_mib(1024, 200) == 200
    assert "perl" in command(102) and " 102 " in command(102)


def test_scenario_modes_load(tmp_path):
    for name in ("storage", "density", "allocation"):
        scenario = load_scenario(f"scenarios/{name}.toml")
        assert scenario.mode == name and scenario.workloads == ()
    assert load_scenario("scenarios/density.toml").mode_options["counts"] == (1, 2, 4)
    bad = tmp_path / "bad.toml"
    bad.write_text('[mode]\nname = "density"\ncounts = [0, 2]\n[runtimes.n]\nkind = "native"\n')
    with pytest.raises(UserError, match="mode.counts: expected a list of positive integers"):
        load_scenario(bad)
    plain = tmp_path / "plain.toml"
    plain.write_text('[runtimes.n]\nkind = "native"\n')
    with pytest.raises(UserError, match="workloads"):  # cells mode still needs workloads
        load_scenario(plain)


# -- verdicts and findings on frames with a known answer -----------------------------------------


def rows(runtime, kind, metric, values, cell="storage", **tags):
    return [{"run": "r", "scenario": "s", "cell": f"{cell}@{runtime}", "workload": cell,
             "runtime": runtime, "kind": kind, "rep": rep, "warmup": False, "metric": metric,
             "value": value, "unit": "", "t": 0.0, "image": "i", "error": None,
             **{f"tag.{k}": v for k, v in tags.items()}} for rep, value in enumerate(values)]


def storage_frame(first_runc=(0.03, 0.028, 0.031), runc_disk=4096):
    tags = {"write_file": "/usr/lib/udev/hwdb.bin", "write_file_bytes": 13 * MiB,
            "image_disk_bytes": 700 * MiB}
    return pd.DataFrame(
        rows("native", "native", "storage.instance_disk_bytes", [0, 0, 0], layer="none", **tags)
        + rows("runc", "docker", "storage.instance_disk_bytes", [runc_disk] * 3, **tags)
        + rows("runc", "docker", "storage.first_write_s", list(first_runc), **tags)
        + rows("runc", "docker", "storage.second_write_s", [0.003, 0.004, 0.0035], **tags)
        + rows("runc", "docker", "storage.instance_disk_after_write_bytes", [13 * MiB] * 3, **tags)
        + rows("qemu", "qemu", "storage.instance_disk_bytes", [330000] * 3, **tags)
        + rows("qemu", "qemu", "storage.full_copy_bytes", [700 * MiB], **tags))


def test_storage_supported_when_layers_are_small_and_the_first_write_costs_more():
    verdict = verdicts.storage_verdict(verdicts.complete(storage_frame()))
    assert verdict.status == SUPPORTED, verdict
    assert any("runc: after the writes" in n and "13.0 MiB" in n for n in verdict.notes)


def test_storage_copy_up_shown_on_disk_even_when_the_timing_is_noisy():
    frame = storage_frame(first_runc=(0.003, 0.0035, 0.004))
    verdict = verdicts.storage_verdict(verdicts.complete(frame))
    assert verdict.status == SUPPORTED and "not shown with 95% confidence for runc" in verdict.reason
    without_disk = frame[frame["metric"] != "storage.instance_disk_after_write_bytes"]
    assert verdicts.storage_verdict(verdicts.complete(without_disk)).status == INCONCLUSIVE


def test_storage_contradicted_when_a_write_does_not_copy_the_file():
    frame = storage_frame()
    frame.loc[frame["metric"] == "storage.instance_disk_after_write_bytes", "value"] = 8192
    assert verdicts.storage_verdict(verdicts.complete(frame)).status == CONTRADICTED


def test_storage_contradicted_when_an_instance_copies_the_image():
    verdict = verdicts.storage_verdict(verdicts.complete(storage_frame(runc_disk=600 * MiB)))
    assert verdict.status == CONTRADICTED


def test_storage_not_measured_without_records():
    assert verdicts.storage_verdict(verdicts.complete(pd.DataFrame())).status == NOT_MEASURED


def test_storage_finding_names_every_runtime_and_the_copy():
    text = sharing.storage_finding(verdicts.complete(storage_frame()), {"qemu"})
    assert "0 bytes for native" in text and "4.00 KiB for runc" in text
    assert "qemu (emulated)" in text and "700.0 MiB for a VM's full disk copy" in text
    assert "runc 30.0 ms vs 3.50 ms" in text


def allocation_frame(vm_after, container_after):
    out = []
    for size, touch in ((256, 102), (512, 200), (1024, 200), (1024, 300), (2048, 300)):
        for runtime, kind, idle, after in (("runc", "docker", 14, container_after),
                                           ("qemu", "qemu", 400, vm_after)):
            for phase, value in (("idle", idle), ("touched", idle + after * touch)):
                out += rows(runtime, kind, "alloc.pss_bytes", [value * MiB], cell="allocation",
                            phase=phase, memory_mib=size, touch_mib=touch)
                out += rows(runtime, kind, "alloc.paid_fraction", [value / size],
                            cell="allocation", phase=phase, memory_mib=size, touch_mib=touch)
    return pd.DataFrame(out)


def test_allocation_supported_when_the_vm_keeps_what_it_touched():
    frame = verdicts.complete(allocation_frame(vm_after=1.0, container_after=0.0))
    verdict = verdicts.allocation_verdict(frame, {"qemu"})
    assert verdict.status == INDICATIVE, verdict
    assert any("qemu (emulated): still pays for 100%" in n for n in verdict.notes)
    assert verdicts.allocation_verdict(frame, set()).status == SUPPORTED
    three = frame[frame["tag.memory_mib"] < 2048]  # 4 instances a runtime
    assert verdicts.allocation_verdict(three, set()).status == INCONCLUSIVE


def test_allocation_contradicted_when_the_container_keeps_more():
    frame = verdicts.complete(allocation_frame(vm_after=0.0, container_after=1.0))
    assert verdicts.allocation_verdict(frame, set()).status == CONTRADICTED


def test_density_finding_reports_the_largest_n_and_a_stop():
    out = []
    for runtime, kind, per in (("runc", "docker", 5), ("qemu", "qemu", 400)):
        for n in (1, 2):
            out += rows(runtime, kind, "density.pss_per_instance_bytes", [per * MiB], cell="density", n=n)
            out += rows(runtime, kind, "density.all_ready_s", [0.5 * n], cell="density", n=n)
    out += rows("qemu", "qemu", "density.reached_n", [2], cell="density",
                stop_reason="N=4: below the floor")
    out += rows("runc", "docker", "density.reached_n", [2], cell="density", stop_reason=None)
    text = sharing.density_finding(verdicts.complete(pd.DataFrame(out)), {"qemu"})
    assert "5.00 MiB for runc (N=2)" in text and "400.0 MiB for qemu (emulated) (N=2)" in text
    assert "2 runc in 1.00 s" in text
    assert "stopped early: qemu reached N=2 (N=4: below the floor)" in text
    assert "runc reached" not in text


def test_sections_draw_a_figure_per_scenario_kind(tmp_path):
    frame = verdicts.complete(pd.concat([storage_frame(), allocation_frame(1.0, 0.0)]))
    found = sharing.sections(frame, tmp_path / "figures", {})
    assert [s["title"] for s in found] == ["Storage", "Allocation"]
    for section in found:
        assert (tmp_path / section["src"]).stat().st_size > 1000
        assert section["finding"].endswith(".")


def test_an_unusable_runtime_of_a_mode_scenario_leaves_a_record(tmp_path):
    from bench.session import Session

    session = Session(load_scenario("scenarios/density.toml"), tmp_path / "run", report=False)
    session.unusable["qemu"] = "qemu-system-x86_64 not found"
    session.context = type("Context", (), {"image": type("Image", (), {"digest": "sha256:x"})})()
    session.environment = {"host": {"host_shape": "host"}}
    session._record_unusable()
    session.store.close()
    kept = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [(r["cell"], r["value"], r["error"]) for r in kept] == [
        ("density@qemu", None, "qemu-system-x86_64 not found")]
    # like every record, it carries the run's limits and the host's shape
    assert kept[0]["tags"] == {"cpus": 1, "memory_mib": 256, "host_shape": "host"}


def test_memory_claim_judged_on_a_density_run():
    out = []
    for runtime, kind, per in (("runc", "docker", (14, 8, 5.5, 4.8, 4.4)),
                               ("qemu", "qemu", (400, 390, 383, 381, 380))):
        for n, value in zip((1, 2, 4, 6, 8), per):
            out += rows(runtime, kind, "density.pss_per_instance_bytes", [value * MiB],
                        cell="density", n=n)
    frame = verdicts.complete(pd.DataFrame(out))
    verdict = verdicts.memory_verdict(frame, set())
    assert verdict.status == SUPPORTED, verdict
    assert verdict.comparisons[0].n == 5 and "all N pooled" in verdict.comparisons[0].workload
    assert verdicts.memory_verdict(frame, {"qemu"}).status == INDICATIVE
