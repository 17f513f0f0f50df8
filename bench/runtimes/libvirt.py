"""libvirt: the qemu runtime's VM (same kernel, initrd, qcow2 overlay, kernel command line
and serial agent line) created through libvirtd, the manager most VM users have.

Each domain is transient and goes into a libvirt resource partition of the instance's own:
libvirt removes a domain's cgroup the moment QEMU exits, while the partition above it keeps
the counters for the last reading. Without systemd cvbench makes the partition (libvirt's
naming: every level ends in .partition, in every hierarchy); with systemd, machined makes it
as a slice. The limits are on the partition, as on the qemu runtime's cgroup: libvirt's
own <memtune> would also raise QEMU's locked-memory rlimit to the limit, which a host
without CAP_SYS_RESOURCE refuses.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from bench.agent import LineReader
from bench.collect.cgroups import ROOT, Cgroup, cgroup_version, parse_proc_cgroup, v1_hierarchies
from bench.collect.engine import EngineCpu
from bench.collect.slices import instance_slice, slice_path, stop_slice
from bench.errors import RuntimeFailure
from bench.params import Param
from bench.runtimes.base import Instance, Limits, Traits, run_tool
from bench.runtimes.libvirtd import (MANAGER_PROCESSES, binding, connect, ensure_libvirtd,
                                     version_text)
from bench.runtimes.qemu import QEMU, QemuRuntime, kernel_args
from bench.units import MiB
from bench.workloads import NO_NEEDS, Needs

PID_DIR = Path("/run/libvirt/qemu")
PARTITIONS = "cvbench.partition"  # libvirt's name for the partition /cvbench


@dataclass
class LibvirtInstance(Instance):
    conn: object = None  # the runtime's libvirt connection
    domain: object = None
    qemu_pid: int = 0
    overlay: Path | None = None
    serial: Path | None = None  # FIFOs serial.in and serial.out
    keep_open: int | None = None  # our own writer on serial.out: no EOF before QEMU opens it
    partition: str | None = None  # below the cgroup root, without systemd
    slice: str | None = None  # with systemd

    def wait_gone(self, timeout: float) -> float:
        """Gone when QEMU has exited (as for the qemu runtime), seen every 5 ms."""
        deadline = time.monotonic() + timeout
        while qemu_alive(self.qemu_pid):
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"{self.name} did not exit within {timeout:.0f} s")
            time.sleep(0.005)
        return time.monotonic()

    def close(self) -> None:
        # Interrupted inside createXML, the domain may exist with no handle here: by name
        domain = self.domain
        if domain is None and self.conn is not None:
            domain = next((d for d in self.conn.listAllDomains() if d.name() == self.name), None)
        if domain is not None:
            try:  # a transient domain vanishes when QEMU exits: destroy only a running one
                # (asking for a gone one would print libvirt's "Domain not found")
                if domain.ID() in domain.connect().listDomainsID():
                    domain.destroy()
            except Exception:  # gone meanwhile
                pass
            self.domain = None
        # libvirt removes the domain's cgroup (inside the partition) once QEMU is gone
        deadline = time.monotonic() + 10
        while self.qemu_pid and qemu_alive(self.qemu_pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.keep_open is not None:
            os.close(self.keep_open)  # with QEMU gone, the reader sees the end
            self.keep_open = None
        if self.slice is not None:
            stop_slice(self.slice)
        elif self.partition is not None:
            remove_partition(self.partition)
        for path in (self.overlay, *self._fifos()):
            if path is not None:
                path.unlink(missing_ok=True)
        self.remove_scratch()

    def _fifos(self) -> tuple[Path, ...]:
        return () if self.serial is None else (Path(f"{self.serial}.in"), Path(f"{self.serial}.out"))


class LibvirtRuntime(QemuRuntime):
    kind = "libvirt"
    traits = Traits("vm", shares_host_kernel=False,
                    phases=(("startup.overlay_s", "qcow2 overlay"),
                            ("startup.libvirt_s", "libvirtd until QEMU's process starts"),
                            ("startup.vmm_s", "QEMU spawn until the domain runs"),
                            ("startup.guest_uptime_s", "guest boot to READY (guest clock)")),
                    disk_layer="qcow2 overlay",
                    manager="libvirtd", manager_phases=("startup.libvirt_s",),
                    bare_twin=("qemu", ("machine", "initrd", "pvh")))
    HOST_NEEDS = {"libvirt": ("root", "cgroups", "guest image", "libvirt", "qemu-system-x86_64",
                              "qemu-img")}
    PACKAGES = {"libvirt-daemon-system": "libvirtd"}
    RECOMMENDS = False  # they include the default NAT network, started with libvirtd
    OPTIONS = {**QemuRuntime.OPTIONS,
               "machine": Param(str, "pc", "QEMU machine type (libvirt has no microvm)",
                                choices=("pc", "q35")),
               "initrd": Param(bool, True, "boot through the image's initrd", choices=(True,)),
               "pvh": Param(bool, False, "PVH boot (not through libvirt yet)", choices=(False,))}

    @classmethod
    def set_up_host(cls) -> None:
        ensure_libvirtd()

    def check(self) -> None:
        super().check()
        connect().close()

    def prepare(self) -> None:
        super().prepare()
        self.conn = connect()
        # libvirtd and virtlogd: QEMU is not their child, so psutil's view holds their own
        # work and the helpers they fork, never the guest's
        self.engine = EngineCpu((), "libvirtd read with psutil", names=MANAGER_PROCESSES)
        self.systemd = Path("/run/systemd/system").exists()

    def describe(self) -> dict:
        return {**super().describe(), "libvirt": version_text(self.conn.getLibVersion())}

    def tags(self) -> dict:
        return {**super().tags(), "manager": "libvirtd"}

    def unsupported(self, needs: Needs) -> str | None:
        if needs.serves:
            return ("libvirt: a path from the host into the guest (user networking with port "
                    "forwarding needs passt, a tap needs a libvirt network) is not set up yet")
        return None

    def cannot_restore(self) -> str | None:
        return ("cvbench does not yet save and restore libvirt domains (virDomainSave and "
                "virDomainRestore would)")

    def sweep(self) -> None:
        """Domains a launch cut short may have left: destroy those of this run."""
        conn = getattr(self, "conn", None)
        if conn is None:
            return
        mine = f"cvbench-{self.context.run_id.lower()}-"
        for domain in conn.listAllDomains():
            if domain.name().startswith(mine):
                try:
                    domain.destroy()
                except binding().libvirtError:
                    pass

    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None, accel: str | None = None) -> Instance:
        if accel is not None:  # the KVM probe boots QEMU on its own: the question is the same
            return super().launch(command, limits, instance, needs, port, accel)
        t0 = time.monotonic()
        workdir = self.context.workdir
        name = instance.removeprefix("cvbench-").replace("-", "_")
        inst = self._register(LibvirtInstance(name=instance, t_launch=t0, conn=self.conn,
                                              overlay=workdir / f"{instance}.qcow2",
                                              serial=workdir / f"{instance}.serial"))
        with self._launching(inst):
            headroom = self.options["memory_headroom_mib"]
            inst.tags["memory_headroom_mib"] = headroom
            memory = (limits.memory_mib + headroom) * MiB
            if self.systemd:
                inst.slice = instance_slice(instance)
                limit_slice(inst.slice, limits.cpus, memory)
            else:
                inst.partition = f"{PARTITIONS}/{name}.partition"
                make_partition(inst.partition)
                Cgroup.at(inst.partition).limit(limits.cpus, memory)
            cache = self._disks(inst, needs)
            volume = self._volume_file(inst, needs.volume_mib) if needs.volume_mib else None
            inst.lines, inst.keep_open = self._serial(inst)
            xml = self.domain_xml(instance, command, limits, needs, inst.overlay, volume,
                                  inst.serial, cache, f"/cvbench/{name}")
            t_overlay = time.monotonic()
            # Paused: cvbench's reading point must hold QEMU before the guest runs
            inst.domain = self.conn.createXML(xml, binding().VIR_DOMAIN_START_PAUSED)
            t_created = time.monotonic()
            inst.qemu_pid = int((PID_DIR / f"{instance}.pid").read_text())
            if inst.slice is not None:
                inst.cgroup = Cgroup.at(slice_path(inst.slice))
            else:
                inst.cgroup = Cgroup.at(inst.partition)
                if moved := join_missing(inst.cgroup, inst.partition, inst.qemu_pid):
                    inst.tags["cgroup_joined_by_cvbench"] = ",".join(moved)
            inst.domain.resume()
            t_resumed = time.monotonic()
            # QEMU's start on the host clock (10 ms ticks): libvirtd's part before, QEMU's after
            t_qemu = min(max(process_start(inst.qemu_pid), t_overlay), t_created)
            inst.phases.update({"startup.overlay_s": t_overlay - t0,
                                "startup.libvirt_s": t_qemu - t_overlay,
                                "startup.vmm_s": t_resumed - t_qemu})
        return inst

    def _serial(self, inst: LibvirtInstance):
        """The guest's serial port as a FIFO pair QEMU opens; read from before it starts."""
        fifo_in, fifo_out = inst._fifos()
        for fifo in (fifo_in, fifo_out):
            os.mkfifo(fifo, 0o600)
        reader = os.open(fifo_out, os.O_RDONLY | os.O_NONBLOCK)
        keep_open = os.open(fifo_out, os.O_WRONLY)
        os.set_blocking(reader, True)
        return LineReader(fifo_chunks(reader), inst.name), keep_open

    def domain_xml(self, instance: str, command: str, limits: Limits, needs: Needs,
                   overlay: Path, volume: Path | None, serial: Path, cache: str,
                   partition: str) -> str:
        """The domain: the qemu runtime's machine, kernel, command line and disks."""
        image = self.context.image
        kvm = self.accel == "kvm"
        domain = ET.Element("domain", type="kvm" if kvm else "qemu")
        ET.SubElement(domain, "name").text = instance
        ET.SubElement(domain, "memory", unit="MiB").text = str(limits.memory_mib)
        ET.SubElement(domain, "vcpu").text = str(max(1, math.ceil(limits.cpus)))
        os_ = ET.SubElement(domain, "os")
        ET.SubElement(os_, "type", arch="x86_64", machine=self.options["machine"]).text = "hvm"
        ET.SubElement(os_, "kernel").text = str(image.kernel)
        ET.SubElement(os_, "initrd").text = str(image.initrd)
        ET.SubElement(os_, "cmdline").text = kernel_args(command, limits, needs)
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "acpi")
        if not kvm:
            tcg = ET.SubElement(features, "tcg")
            ET.SubElement(tcg, "tb-cache", unit="MiB").text = str(self.options["tcg_tb_size_mib"])
        ET.SubElement(domain, "cpu", mode="host-passthrough" if kvm else "maximum")
        for event in ("on_poweroff", "on_reboot", "on_crash"):
            ET.SubElement(domain, event).text = "destroy"
        resource = ET.SubElement(domain, "resource")
        ET.SubElement(resource, "partition").text = partition
        devices = ET.SubElement(domain, "devices")
        ET.SubElement(devices, "emulator").text = shutil.which(QEMU) or QEMU
        for path, kind, target in ((overlay, "qcow2", "vda"), (volume, "raw", "vdb")):
            if path is None:
                continue
            disk = ET.SubElement(devices, "disk", type="file", device="disk")
            ET.SubElement(disk, "driver", name="qemu", type=kind, cache=cache)
            ET.SubElement(disk, "source", file=str(path))
            ET.SubElement(disk, "target", dev=target, bus="virtio")
        serial_el = ET.SubElement(devices, "serial", type="pipe")
        ET.SubElement(serial_el, "source", path=str(serial))
        ET.SubElement(serial_el, "target", port="0")
        # -nodefaults as in the qemu runtime: no USB controller, no balloon
        ET.SubElement(devices, "controller", type="usb", model="none")
        ET.SubElement(devices, "memballoon", model="none")
        # QEMU as root on files cvbench owns, as the qemu runtime runs it: no relabelling
        label = ET.SubElement(domain, "seclabel", type="static", model="dac", relabel="no")
        ET.SubElement(label, "label").text = "+0:+0"
        return ET.tostring(domain, encoding="unicode")


def fifo_chunks(fd: int):
    try:
        while chunk := os.read(fd, 65536):
            yield chunk
    finally:
        os.close(fd)


def process_start(pid: int) -> float:
    """When a process started, on the host's monotonic clock (/proc/PID/stat's start time
    counts clock ticks of CLOCK_BOOTTIME)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot_offset = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
    return ticks / os.sysconf("SC_CLK_TCK") - boot_offset


def qemu_alive(pid: int) -> bool:
    """QEMU is not cvbench's child: a zombie waiting for init to reap it counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def make_partition(relpath: str, root: Path = ROOT) -> None:
    """A libvirt resource partition without systemd: libvirt wants it in every hierarchy,
    and a v1 cpuset with no CPUs or memory nodes of its own takes no process."""
    if cgroup_version(root) == 2:
        Cgroup.create(relpath, root=root)
        return
    for hierarchy in v1_hierarchies(root):
        parent = hierarchy
        for part in Path(relpath).parts:
            here = parent / part
            here.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (here / name).exists() and not (here / name).read_text().strip():
                    (here / name).write_text((parent / name).read_text())
            parent = here


def leftover_partitions(root: Path = ROOT) -> list[str]:
    """Instance partitions (no systemd) that hold no process, in any hierarchy (a removal
    cut short may have left some hierarchies only)."""
    tops = [root] if cgroup_version(root) == 2 else v1_hierarchies(root)
    names = sorted({d.name for top in tops if (top / PARTITIONS).is_dir()
                    for d in (top / PARTITIONS).iterdir() if d.is_dir()})
    return [f"{PARTITIONS}/{name}" for name in names
            if not Cgroup.at(f"{PARTITIONS}/{name}", root).pids()]


def remove_partition(relpath: str, root: Path = ROOT, timeout: float = 5.0) -> None:
    """What a destroyed domain leaves: the partition's own directories (libvirt may still
    be removing its domain's, below them: a busy one is tried again until timeout)."""
    Cgroup.at(relpath, root).remove(timeout)  # kills what is left; every hierarchy's dirs


def limit_slice(name: str, cpus: float, memory_bytes: int) -> None:
    """Limits on a slice machined will make: set before, they hold from its start."""
    run_tool(["systemctl", "set-property", "--runtime", name, f"CPUQuota={cpus * 100:g}%",
              f"MemoryMax={memory_bytes}"])


def join_missing(cgroup: Cgroup, relpath: str, pid: int) -> list[str]:
    """Put QEMU in the partition in the controllers libvirt left it out of (on a v1 host
    with cpu and cpuacct mounted apart, libvirt places it in cpu only): the controllers
    moved."""
    if cgroup.version == 2:
        return []
    now = parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    moved = []
    for controller, directory in cgroup.dirs.items():
        if not now.get(controller, "/").startswith(f"/{relpath}"):
            (directory / "cgroup.procs").write_text(str(pid))
            moved.append(controller)
    return moved
