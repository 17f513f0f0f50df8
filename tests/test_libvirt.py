"""The libvirt runtime's domain: the qemu runtime's VM, said in libvirt's XML."""

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.cleanup import Cleanup
from bench.images import GuestImage
from bench.runtimes import Limits, RunContext
from bench.runtimes.libvirt import LibvirtRuntime, make_partition, qemu_alive
from bench.runtimes.libvirtd import version_text
from bench.runtimes.qemu import QemuRuntime
from bench.workloads import NO_NEEDS, Needs

IMAGE = GuestImage("k", "sha256:x", "/cache/k", 0.0, 1.0, "6.12.118+deb13-cloud-amd64")
LIMITS = Limits(1, 512, pids=4096)


def runtime(cls, tmp_path):
    context = RunContext("20261129T112544Z-vm", IMAGE, Cleanup(), tmp_path)
    rt = cls(cls.kind, {k: p.default for k, p in cls.OPTIONS.items()}, context)
    rt.accel = "tcg"
    return rt


def domain(tmp_path, needs=NO_NEEDS):
    rt = runtime(LibvirtRuntime, tmp_path)
    return ET.fromstring(rt.domain_xml("cvbench-x-1", "echo hi", LIMITS, needs, tmp_path / "o.qcow2",
                                       tmp_path / "v.raw" if needs.volume_mib else None,
                                       tmp_path / "s.serial", "writeback", "/cvbench/x_1"))


def test_the_domain_boots_what_the_qemu_runtime_boots(tmp_path):
    argv = runtime(QemuRuntime, tmp_path)._argv("cvbench-x-1", "echo hi", LIMITS, "tcg",
                                                tmp_path / "o.qcow2", tmp_path / "q", Needs())
    dom = domain(tmp_path)
    assert dom.get("type") == "qemu"  # TCG, as accel says
    assert dom.findtext("os/kernel") == argv[argv.index("-kernel") + 1]
    assert dom.findtext("os/initrd") == argv[argv.index("-initrd") + 1]
    assert dom.findtext("os/cmdline") == argv[argv.index("-append") + 1]
    assert "cvbench.pids=4096" in dom.findtext("os/cmdline")
    assert dom.find("os/type").get("machine") == "pc" and dom.findtext("memory") == "512"
    assert dom.find("features/tcg/tb-cache").text == "128"
    assert [e.text for e in dom.findall("on_poweroff") + dom.findall("on_reboot")] == ["destroy"] * 2
    assert dom.findtext("resource/partition") == "/cvbench/x_1"
    # limits sit on the partition, as on the qemu runtime's cgroup: none in the domain
    assert dom.find("memtune") is None and dom.find("cputune") is None
    disks = dom.findall("devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda"]
    assert disks[0].find("driver").get("cache") == "writeback"
    assert dom.find("devices/serial").get("type") == "pipe"


def test_a_volume_is_a_second_disk(tmp_path):
    dom = domain(tmp_path, Needs(volume_mib=8))
    assert [d.find("target").get("dev") for d in dom.findall("devices/disk")] == ["vda", "vdb"]
    assert "cvbench.volume=1" in dom.findtext("os/cmdline")


@pytest.mark.skipif(not (shutil.which("virt-xml-validate") and shutil.which("xmllint")),
                    reason="libvirt-clients or libxml2-utils not installed")
def test_libvirt_accepts_the_domain(tmp_path):
    path = tmp_path / "d.xml"
    path.write_text(ET.tostring(domain(tmp_path), encoding="unicode"))
    result = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_serving_workloads_say_why_they_are_skipped(tmp_path):
    why = runtime(LibvirtRuntime, tmp_path).unsupported(Needs(serves=True))
    assert why and "passt" in why
    assert runtime(LibvirtRuntime, tmp_path).unsupported(Needs(scratch=True)) is None


def test_partition_without_systemd_copies_cpuset_and_spans_every_hierarchy(tmp_path, monkeypatch):
    for h in ("cpuset", "memory", "unified"):
        (tmp_path / h).mkdir()
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    monkeypatch.setattr("bench.runtimes.libvirt.v1_hierarchies", lambda root: sorted(root.iterdir()))
    monkeypatch.setattr("bench.runtimes.libvirt.cgroup_version", lambda root: 1)
    # a real cgroupfs makes the files of a new cgroup; here the test does
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        real_mkdir(self, *a, **k)
        if self.parent.name and "cpuset" in self.parts:
            for name in ("cpuset.cpus", "cpuset.mems"):
                (self / name).touch()
    monkeypatch.setattr(Path, "mkdir", mkdir)
    make_partition("cvbench.partition/x_1.partition", tmp_path)
    for h in ("cpuset", "memory", "unified"):
        assert (tmp_path / h / "cvbench.partition" / "x_1.partition").is_dir()
    assert (tmp_path / "cpuset/cvbench.partition/x_1.partition/cpuset.cpus").read_text() == "0-1\n"


def test_a_zombie_qemu_is_gone():
    assert qemu_alive(1) and not qemu_alive(2 ** 22 + 1)


def test_version_numbers_read_as_libvirt_writes_them():
    assert version_text(9000000) == "9.0.0" and version_text(10010002) == "10.10.2"
