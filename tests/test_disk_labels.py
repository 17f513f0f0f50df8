"""Disk numbers carry the path they took: QEMU's cache mode, gVisor's platform, and the
caveat the report derives from them when "direct I/O" did not reach the disk."""

import pytest

from bench.report.overhead import _tag_notes, disk_caveat
from bench.results import load_frame
from bench.runtimes.gvisor import default_platform, platform_of
from bench.runtimes.qemu import QemuRuntime
from bench.workloads import CATALOGUE, NO_NEEDS


def qemu(**options):
    defaults = {o: p.default for o, p in QemuRuntime.OPTIONS.items()}
    return QemuRuntime("qemu", {**defaults, **options}, None)


def disk_needs(target):
    params = CATALOGUE["disk"].resolve({"target": target})
    return CATALOGUE["disk"].needs(params)


@pytest.mark.parametrize("target", ["root", "volume"])
def test_disk_workloads_on_qemu_bypass_the_host_page_cache_by_default(target):
    assert qemu().disk_cache(disk_needs(target)) == "none"


def test_other_workloads_keep_qemus_default_cache_and_a_set_mode_wins():
    assert qemu().disk_cache(NO_NEEDS) == "writeback"
    assert qemu(disk_cache="writeback").disk_cache(disk_needs("root")) == "writeback"


def test_gvisor_platform_from_the_engines_registration():
    # docker info's Runtimes, as /etc/docker/daemon.json registers them on this host
    assert platform_of({"path": "/usr/bin/runsc",
                        "runtimeArgs": ["--platform=ptrace", "--network=none"]}) == "ptrace"
    assert platform_of({"path": "/usr/bin/runsc", "runtimeArgs": ["--platform", "kvm"]}) == "kvm"
    assert platform_of({"path": "runc"}) is None
    assert platform_of(None) is None


def test_gvisor_default_platform_from_runsc_flags(golden):
    # runsc 0.0~20221219 (Debian 12): ptrace unless told otherwise
    assert default_platform((golden / "runsc_flags.txt").read_text()) == "ptrace"
    assert default_platform("no such flag") is None


@pytest.mark.parametrize("tags, says", [
    ({"direct_io": True, "disk_backing": "virtio-blk, qcow2 overlay", "disk_cache": "writeback"},
     "disk_cache = writeback: the guest's direct I/O goes through the host's page cache"),
    ({"direct_io": True, "disk_backing": "virtio-blk, qcow2 overlay", "disk_cache": "none"}, None),
    ({"direct_io": True, "disk_backing": "container writable layer", "gvisor_platform": "ptrace"},
     "gVisor (platform ptrace) accepts O_DIRECT"),
    ({"direct_io": False, "disk_backing": "container writable layer", "gvisor_platform": "ptrace"},
     None),  # buffered, and labelled so: nothing hidden
    ({"direct_io": True, "disk_backing": "container writable layer"}, None),  # runc
])
def test_disk_caveat_derives_from_the_tags(tags, says):
    caveat = disk_caveat(tags)
    assert caveat == says if says is None else caveat.startswith(says)


def test_report_notes_name_the_cache_only_where_a_disk_was_used(golden):
    # a recorded run whose VM used QEMU's writeback cache under the guest's O_DIRECT
    frame = load_frame(golden / "run_workloads")
    frame.loc[frame["runtime"] == "qemu", "tag.disk_cache"] = "writeback"  # as every VM now has
    disk = _tag_notes(frame, "disk")
    assert "qemu: disk_cache = writeback" in disk
    assert any(n.startswith("qemu: disk_cache = writeback: the guest's direct I/O") for n in disk)
    assert not any("disk_cache" in n for n in _tag_notes(frame, "cpu"))
