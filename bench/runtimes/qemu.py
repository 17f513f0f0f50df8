"""qemu: a QEMU/KVM (or TCG) virtual machine booting the guest image, controlled over QMP."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from bench.agent import AGENT_PATH, AWAIT, LineReader, kernel_cmdline_arg, workload_line
from bench.collect.cgroups import Cgroup
from bench.errors import RuntimeFailure, UserError
from bench.images import CACHE
from bench.params import Param
from bench.results import host_boot_id, running_under_hypervisor
from bench.collect.host import run_text
from bench.runtimes.base import (Limits, ProcessInstance, Runtime, Snapshot, Traits,
                                 command_version, pipe_chunks, run_tool, spawn)
from bench.units import MiB
from bench.vmlinux import ensure_vmlinux
from bench.workloads import NO_NEEDS, Needs

QEMU = "qemu-system-x86_64"
# keyed by the conditions a probe depends on (accel.json: the older cache by boot only)
ACCEL_CACHE = CACHE / "accel-probes.json"
# quiet: a serial console is slow under emulation, and kernel chatter would cost boot time.
# Direct-path links: a /30 each, picked by a hash of the instance's name
TAP_NET = ipaddress.ip_network("10.213.0.0/16")
TAP_LINKS = TAP_NET.num_addresses // 4
TAP_PREFIX = "cvb"
# QEMU's -drive cache modes; the first two open the host file with O_DIRECT
DISK_CACHES = ("none", "directsync", "writeback", "writethrough", "unsafe")
ROOT_ARG = "root=/dev/vda"
KERNEL_ARGS = f"console=ttyS0 {ROOT_ARG} rw quiet panic=-1 init={AGENT_PATH}"


@dataclass
class VmInstance(ProcessInstance):
    qmp: object = None
    overlay: Path | None = None
    qmp_socket: Path | None = None
    tap: str | None = None  # the host side of the direct network path

    def close(self) -> None:
        if self.qmp is not None:
            if self.process.poll() is None:
                try:
                    self.qmp.cmd("quit")  # let QEMU exit cleanly, then make sure
                    self.process.wait(timeout=5)
                except Exception:
                    pass
            try:
                self.qmp.close()
            except Exception:
                pass
            self.qmp = None
        super().close()
        for path in (self.overlay, self.qmp_socket):
            if path is not None:
                path.unlink(missing_ok=True)
        if self.tap is not None:
            subprocess.run(["ip", "link", "delete", self.tap], capture_output=True)
            self.tap = None


class QemuRuntime(Runtime):
    kind = "qemu"
    traits = Traits("vm", shares_host_kernel=False,
                    phases=(("startup.overlay_s", "qcow2 overlay"),
                            ("startup.vmm_s", "QEMU spawn + QMP"),
                            ("startup.guest_uptime_s", "guest boot to READY (guest clock)")),
                    disk_layer="qcow2 overlay")
    HOST_NEEDS = {"qemu": ("root", "cgroups", "guest image", "mke2fs", "qemu-system-x86_64",
                           "qemu-img")}
    PACKAGES = {"qemu-system-x86": QEMU, "qemu-utils": "qemu-img"}
    OPTIONS = {
        "machine": Param(str, "pc", "QEMU machine type", choices=("pc", "microvm")),
        "accel": Param(str, "auto", "kvm, tcg (emulation) or auto: probe KVM, fall back to TCG",
                       choices=("auto", "kvm", "tcg")),
        "memory_headroom_mib": Param(int, 512, "cgroup memory for QEMU itself beyond guest RAM"),
        # The fast boot: the cloud kernel has virtio-blk as a module (read from its initrd)
        # but NVMe built in, so without an initrd the root disk is NVMe (microvm: on PCIe)
        "initrd": Param(bool, True, "boot through the image's initrd (false: root on NVMe, a "
                        "driver built into the kernel; no network or volume disk then)"),
        "pvh": Param(bool, False, "boot the uncompressed kernel at its PVH entry: no firmware "
                     "real-mode setup, no decompression in the guest"),
        # QEMU 7.2 gives TCG a translation cache of up to 1 GiB: with a guest that churns
        # its memory it grew past 500 MiB here and the VM was OOM-killed in its cgroup
        "tcg_tb_size_mib": Param(int, 128, "TCG translation cache size (emulation only)"),
        "probe_timeout_s": Param(float, 60.0, "how long auto waits for a KVM guest to boot"),
        # auto: "none" for disk workloads, so the guest's direct I/O reaches the host disk
        # (with QEMU's "writeback" it hits the host page cache); "writeback" otherwise
        "disk_cache": Param(str, "auto", "cache mode of the VM's disks (auto: none for disk "
                            "workloads, writeback for the others)",
                            choices=("auto", *DISK_CACHES)),
    }

    def check(self) -> None:
        missing = [t for t in (QEMU, "qemu-img") if not shutil.which(t)]
        if missing:
            raise UserError(f"qemu: {', '.join(missing)} not found",
                            fix="apt-get install qemu-system-x86 qemu-utils")
        if self.options["accel"] == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise UserError("qemu: accel = \"kvm\" but /dev/kvm is missing or not accessible",
                            fix="load kvm_intel/kvm_amd, or set accel = \"auto\"")

    def prepare(self) -> None:
        if self.options["pvh"]:  # once, before any launch is timed
            self._vmlinux()
        self.accel = self.options["accel"]
        self.accel_reason = "set in the scenario"
        if self.accel == "auto":
            self.accel, self.accel_reason = self._probe_kvm()
        # KVM inside a VM: the hardware's virtualisation is itself virtualised
        self.nested = self.accel == "kvm" and running_under_hypervisor()

    @property
    def emulated(self) -> bool:
        return self.accel == "tcg"

    def tags(self) -> dict:
        return {"accel": self.accel, "emulated": self.emulated, "machine": self.options["machine"],
                "nested": self.nested, "initrd": self.options["initrd"], "pvh": self.options["pvh"],
                "root_disk": self._root_device().split(",")[0],
                "disk_cache": self.disk_cache(NO_NEEDS),
                **({"guest_tsc_khz": host_tsc_khz()} if self._tells_tsc() else {})}

    def _tells_tsc(self) -> bool:
        return self.options["machine"] == "microvm" and self.accel == "tcg" and bool(host_tsc_khz())

    def disk_cache(self, needs: Needs) -> str:
        """The cache mode of this instance's disks."""
        if self.options["disk_cache"] != "auto":
            return self.options["disk_cache"]
        return "none" if needs.scratch or needs.volume_mib else "writeback"

    def serve_bind(self, needs: Needs) -> str:
        # the guest's own interface: reached only through hostfwd from 127.0.0.1, or over
        # a tap link to the host that routes nowhere else
        return "0.0.0.0"

    def net_path(self, needs: Needs) -> str:
        if needs.direct_net:
            return "tap device, a /30 link between host and guest (no NAT)"
        return "qemu user networking (slirp), hostfwd on 127.0.0.1"

    def unsupported(self, needs: Needs) -> str | None:
        if not self.options["initrd"] and (needs.serves or needs.volume_mib):
            return ("initrd = false: the kernel has virtio-net and virtio-blk as modules, which "
                    "only the initrd loads: no network, no volume disk")
        if not needs.direct_net:
            return None
        if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ip"):
            return "a tap device needs root, /dev/net/tun and ip (iproute2) on the host"
        return None

    @classmethod
    def usable_as(cls, checks_ok: dict[str, bool]) -> str:
        return ("usable with KVM" if checks_ok.get("kvm") else
                "usable, EMULATED (TCG): KVM cannot boot a guest here; results are labelled")

    def memory_overhead_mib(self) -> int:
        return self.options["memory_headroom_mib"]

    def instance_disk(self, inst: VmInstance) -> int:
        """Its qcow2 overlay's size on the host; -U reads it while QEMU holds it."""
        return qcow2_actual_size(json.loads(run_text(
            ["qemu-img", "info", "-U", "--output=json", str(inst.overlay)])))

    def describe(self) -> dict:
        return {"kind": self.kind, **self.options, "accel_used": self.accel,
                "accel_reason": self.accel_reason, "version": command_version([QEMU, "--version"])}

    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None, accel: str | None = None) -> VmInstance:
        accel = accel or self.accel
        workdir = self.context.workdir
        t0 = time.monotonic()
        # The cgroup limits guest RAM plus QEMU's own memory: a limit of exactly the
        # guest size would let the OOM killer take QEMU itself.
        headroom = self.options["memory_headroom_mib"]
        cgroup = Cgroup.create(self.context.cgroup_path(instance), limits.cpus,
                               (limits.memory_mib + headroom) * MiB)
        inst = self._register(VmInstance(name=instance, t_launch=t0, cgroup=cgroup,
                                         overlay=workdir / f"{instance}.qcow2",
                                         qmp_socket=workdir / f"{instance}.qmp"))
        with self._launching(inst):
            inst.tags["memory_headroom_mib"] = headroom
            cache = self._disks(inst, needs)
            net = self._tap(inst) if needs.direct_net else self._network(port) if needs.serves else []
            argv = self._argv(instance, command, limits, accel, inst.overlay, inst.qmp_socket,
                              needs, inst.tags.get("guest_net"), cache) + net
            if needs.volume_mib:
                argv += ["-drive", f"file={self._volume_file(inst, needs.volume_mib)},if=none,"
                         f"id=volume,format=raw,cache={cache}",
                         "-device", f"{self._disk_device()},drive=volume"]
            t_overlay = time.monotonic()
            inst.process = spawn(cgroup.enter_argv(argv))
            inst.lines = LineReader(pipe_chunks(inst.process), instance)
            inst.qmp = self._connect_qmp(inst)
            t_vmm = time.monotonic()
            inst.phases["startup.overlay_s"] = t_overlay - t0
            inst.phases["startup.vmm_s"] = t_vmm - t_overlay
            if accel == "kvm":
                kvm = inst.qmp.cmd("query-kvm")
                if not kvm.get("enabled"):
                    raise RuntimeFailure(f"{instance}: QEMU reports KVM not enabled: {kvm}")
        return inst

    # -- warm starts: the guest's state saved by migration to a file, while its agent
    # waits; a restore is a new QEMU with -incoming on a qcow2 overlay of the saved disk

    def cannot_restore(self) -> str | None:
        if not self.options["initrd"]:
            return "QEMU cannot migrate a VM with an NVMe device (root on NVMe: initrd = false)"
        return None

    def snapshot(self, limits: Limits, instance: str, timeout_s: float,
                 needs: Needs = NO_NEEDS) -> Snapshot:
        t0 = time.monotonic()
        state = self.context.workdir / f"{instance}.state"
        disk = self.context.workdir / f"{instance}.snapshot.qcow2"
        with self.running(AWAIT, limits, instance, needs=needs) as inst:
            deadline = inst.t_launch + timeout_s
            inst.lines.wait_for("WAITING", deadline)
            inst.qmp.cmd("stop")  # one pass: a stopped guest's memory does not change
            inst.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 2**40})  # no throttle
            inst.qmp.cmd("migrate", uri=f"exec:cat > {shlex.quote(str(state))}")
            while (status := inst.qmp.cmd("query-migrate"))["status"] != "completed":
                if status["status"] == "failed" or time.monotonic() > deadline:
                    raise RuntimeFailure(f"saving {instance} failed: "
                                         f"{status.get('error-desc', status['status'])}")
                time.sleep(0.01)
            # The disk as the saved guest left it: QEMU flushed it when the migration ended
            inst.overlay.rename(disk)
            inst.overlay = None
        return Snapshot((state, disk), limits, time.monotonic() - t0,
                        {"snapshot_state_bytes": state.stat().st_size,
                         "snapshot_disk_bytes": qcow2_actual_size(json.loads(run_text(
                             ["qemu-img", "info", "--output=json", str(disk)])))}, needs, instance)

    def restore(self, snapshot: Snapshot, command: str, instance: str,
                timeout_s: float, port: int | None = None, needs: Needs | None = None) -> VmInstance:
        state, disk = snapshot.files
        limits = snapshot.limits
        t0 = time.monotonic()
        headroom = self.options["memory_headroom_mib"]
        cgroup = Cgroup.create(self.context.cgroup_path(instance), limits.cpus,
                               (limits.memory_mib + headroom) * MiB)
        workdir = self.context.workdir
        inst = self._register(VmInstance(name=instance, t_launch=t0, cgroup=cgroup,
                                         overlay=workdir / f"{instance}.qcow2",
                                         qmp_socket=workdir / f"{instance}.qmp"))
        with self._launching(inst):
            run_tool(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", "qcow2",
                      str(inst.overlay)])
            saved = snapshot.needs
            # The guest kept the network it was saved with: a tap link of the saved
            # instance's address, or user networking, whose port forward is the host's
            net = (self._tap(inst, snapshot.origin) if saved.direct_net
                   else self._network(port) if saved.serves else [])
            # The root's cache mode is the host's alone (the guest sees a write cache either
            # way): a disk workload's bypasses the host's page cache, restored as booted
            cache = self._disk_tags(inst, needs or saved)
            argv = self._argv(instance, AWAIT, limits, self.accel, inst.overlay, inst.qmp_socket,
                              saved, inst.tags.get("guest_net"), cache) + net
            t_overlay = time.monotonic()
            inst.process = spawn(cgroup.enter_argv(argv + ["-incoming", "defer"]),
                                 stdin=subprocess.PIPE)
            inst.lines = LineReader(pipe_chunks(inst.process), instance)
            inst.qmp = self._connect_qmp(inst)
            t_vmm = time.monotonic()
            inst.qmp.cmd("migrate-incoming", uri=f"exec:cat {shlex.quote(str(state))}")
            # The serial port's state arrives with the rest: write to it once the guest runs
            while inst.qmp.cmd("query-status")["status"] == "inmigrate":
                if inst.process.poll() is not None:
                    raise RuntimeFailure(f"restoring {instance} failed: {inst.lines.drain()[-600:]}")
                if time.monotonic() > t0 + timeout_s:
                    raise RuntimeFailure(f"{instance}: QEMU had not loaded the saved state "
                                         f"after {timeout_s:.0f} s")
                time.sleep(0.005)
            inst.qmp.cmd("cont")  # saved stopped, it loads paused
            t_loaded = time.monotonic()
            inst.process.stdin.write(workload_line(command))
            inst.process.stdin.flush()
            inst.phases.update({"startup.overlay_s": t_overlay - t0,
                                "startup.vmm_s": t_vmm - t_overlay,
                                "startup.incoming_s": t_loaded - t_vmm})
        return inst

    def _disks(self, inst, needs: Needs) -> str:
        """The instance's qcow2 overlay on the image's disk, its disk tags; the cache mode."""
        run_tool(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.context.image.disk),
                  "-F", "raw", str(inst.overlay)])
        return self._disk_tags(inst, needs)

    def _disk_tags(self, inst, needs: Needs) -> str:
        """The cache mode of the instance's disks, and what its records say of them."""
        inst.tags["disk_cache"] = cache = self.disk_cache(needs)
        if needs.scratch or needs.volume_mib:
            root = "virtio-blk" if self.options["initrd"] else "nvme"
            inst.tags.update(disk_backing=f"{root}, qcow2 overlay" if needs.scratch
                             else "virtio-blk, raw ext4 file on the host",
                             host_page_cache=cache not in DISK_CACHES[:2])
        return cache

    def _volume_file(self, inst, size_mib: int) -> Path:
        """An extra raw ext4 disk: the guest agent mounts /dev/vdb on /mnt/volume."""
        disk = self.context.workdir / f"{inst.name}-volume.raw"
        inst.scratch.append(disk)
        run_tool(["mke2fs", "-q", "-F", "-t", "ext4", str(disk), f"{size_mib}M"])
        return disk

    def _network(self, port: int | None) -> list[str]:
        # restrict=on: the guest reaches nothing; the forward from 127.0.0.1 still works.
        # No port: an instance saved for restores, each of which forwards its own.
        forward = f",hostfwd=tcp:127.0.0.1:{port}-:{port}" if port else ""
        return ["-netdev", f"user,id=net0,restrict=on{forward}",
                "-device", f"{self._nic()},netdev=net0"]

    def _tap(self, inst: VmInstance, link_of: str | None = None) -> list[str]:
        """A tap device with a /30 of its own: host .1, guest .2. No route leads beyond it.
        The link is the instance's own, or the one of the instance named link_of."""
        link = zlib.crc32((link_of or inst.name).encode()) % TAP_LINKS
        host, guest = (str(TAP_NET.network_address + 4 * link + i) for i in (1, 2))
        inst.tap = f"{TAP_PREFIX}{link:05d}"
        run_tool(["ip", "tuntap", "add", "dev", inst.tap, "mode", "tap"])
        run_tool(["ip", "addr", "add", f"{host}/30", "dev", inst.tap])
        run_tool(["ip", "link", "set", inst.tap, "up"])
        inst.address = guest
        inst.tags["guest_net"] = f"{guest}/30"
        return ["-netdev", f"tap,id=net0,ifname={inst.tap},script=no,downscript=no",
                "-device", f"{self._nic()},netdev=net0"]

    def _nic(self) -> str:
        return "virtio-net-device" if self.options["machine"] == "microvm" else "virtio-net-pci"

    def _disk_device(self) -> str:
        return "virtio-blk-device" if self.options["machine"] == "microvm" else "virtio-blk-pci"

    def _root_device(self) -> str:
        return self._disk_device() if self.options["initrd"] else "nvme,serial=cvbench-root"

    def _machine(self) -> str:
        # microvm has no PCI unless asked: NVMe needs it
        microvm_pci = self.options["machine"] == "microvm" and not self.options["initrd"]
        return self.options["machine"] + (",pcie=on" if microvm_pci else "")

    def _vmlinux(self) -> Path:
        image = self.context.image
        return ensure_vmlinux(image.kernel, Path(image.directory) / f"vmlinux-{image.kernel_release}")

    def _boot(self, command: str, limits: Limits, needs: Needs, net: str) -> list[str]:
        """-kernel, -initrd and -append of this runtime's way to boot."""
        image = self.context.image
        kernel = self._vmlinux() if self.options["pvh"] else image.kernel
        args = kernel_args(command, limits, needs, net)
        if self._tells_tsc():
            # microvm has no HPET or ACPI PM timer: under emulation the guest's calibration
            # of its TSC against the PIT often fails and the boot hangs. TCG's TSC is the
            # host's: tell the guest its rate.
            args = args.replace(ROOT_ARG, f"tsc_early_khz={host_tsc_khz()} {ROOT_ARG}")
        if not self.options["initrd"]:
            return ["-kernel", str(kernel), "-append", args.replace(ROOT_ARG, "root=/dev/nvme0n1")]
        return ["-kernel", str(kernel), "-initrd", str(image.initrd), "-append", args]

    def _argv(self, name, command, limits, accel, overlay, qmp_socket, needs: Needs,
              guest_net: str | None = None, cache: str = "writeback") -> list[str]:
        net = guest_net or "user"
        return [
            QEMU, "-name", name, "-nodefaults", "-no-user-config", "-no-reboot",
            "-display", "none", "-machine", self._machine(),
            "-accel", f"tcg,tb-size={self.options['tcg_tb_size_mib']}" if accel == "tcg" else accel,
            "-cpu", "host" if accel == "kvm" else "max",
            "-m", str(limits.memory_mib), "-smp", str(max(1, math.ceil(limits.cpus))),
            *self._boot(command, limits, needs, net),
            "-drive", f"file={overlay},if=none,id=root,format=qcow2,cache={cache}",
            "-device", f"{self._root_device()},drive=root",
            "-serial", "stdio",
            "-qmp", f"unix:{qmp_socket},server=on,wait=off",
        ]

    def _connect_qmp(self, inst: VmInstance, timeout: float = 10.0):
        from qemu.qmp.legacy import QEMUMonitorProtocol

        deadline = time.monotonic() + timeout
        while True:
            if inst.process.poll() is not None:
                raise RuntimeFailure(f"QEMU exited at start (code {inst.process.returncode}): "
                                     f"{inst.lines.drain()[-600:]}")
            if inst.qmp_socket.exists():
                qmp = QEMUMonitorProtocol(str(inst.qmp_socket))
                try:
                    qmp.connect()
                    return qmp
                except Exception:  # socket not listening yet, or QEMU dying: look again
                    qmp.close()
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"QEMU's QMP socket did not answer within {timeout:.0f} s")
            time.sleep(0.01)

    def _probe_kvm(self) -> tuple[str, str]:
        """Can a KVM guest boot here, quickly? Remembered while the QEMU binary, the host
        kernel and its boot stay the same: a failure once must not pin TCG for good."""
        key = f"{self.options['machine']}:{self.context.image.key}"
        now = kvm_conditions()
        try:
            cached = json.loads(ACCEL_CACHE.read_text()).get("results", {})
        except (OSError, ValueError, AttributeError):
            cached = {}
        before = cached.get(key)
        if isinstance(before, dict) and before.get("conditions") == now:
            return before["accel"], before["reason"] + " (remembered: same QEMU, kernel and boot)"
        accel, reason = self._boot_with_kvm()
        cached[key] = {"conditions": now, "accel": accel, "reason": reason}
        ACCEL_CACHE.parent.mkdir(parents=True, exist_ok=True)
        ACCEL_CACHE.write_text(json.dumps({"results": cached}, indent=1))
        changed = changed_conditions(before.get("conditions") if isinstance(before, dict) else None, now)
        return accel, reason + (f" (probed: {changed})" if changed else "")

    def _boot_with_kvm(self) -> tuple[str, str]:
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "tcg", "/dev/kvm missing or not accessible"
        timeout = self.options["probe_timeout_s"]
        print(f"[qemu] probing KVM: booting the guest once (up to {timeout:.0f} s)", flush=True)
        inst = None
        try:
            inst = self.launch("true", Limits(1, 256), f"cvbench-kvm-probe-{os.getpid()}", accel="kvm")
            ready = inst.lines.wait_for("READY", time.monotonic() + timeout)
            return "kvm", f"a KVM guest reached READY in {ready.t - inst.t_launch:.1f} s"
        except RuntimeFailure as exc:
            return "tcg", f"KVM guest did not boot: {exc}"[:300]
        finally:
            if inst is not None:
                self.context.cleanup.release(inst.cleanup_token)


def kernel_args(command: str, limits: Limits, needs: Needs, net: str = "user") -> str:
    """The guest kernel's command line: the agent as init, with its workload and settings."""
    return " ".join([KERNEL_ARGS, kernel_cmdline_arg(command),
                     *([f"cvbench.net={net}"] if needs.serves else []),
                     *(["cvbench.volume=1"] if needs.volume_mib else []),
                     *([f"cvbench.pids={limits.pids}"] if limits.pids else [])])


def host_tsc_khz(cpuinfo: str | None = None) -> int | None:
    """The host's TSC rate where it is constant (/proc/cpuinfo's cpu MHz is then the TSC's)."""
    try:
        text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    mhz = next((line.split(":")[1] for line in text.splitlines() if line.startswith("cpu MHz")), None)
    if "constant_tsc" not in flags or mhz is None:
        return None
    return round(float(mhz) * 1000)


def qcow2_actual_size(info: dict) -> int:
    """Bytes an overlay file occupies on the host (`qemu-img info --output=json`)."""
    return int(info["actual-size"])


def kvm_conditions() -> dict:
    """What a KVM probe's answer depends on: the QEMU binary, the host kernel, its boot
    (a module loaded or /dev/kvm made usable since)."""
    binary = shutil.which(QEMU)
    stat = os.stat(binary) if binary else None
    return {"qemu": f"{command_version([QEMU, '--version'])} ({binary}, mtime "
                    f"{stat.st_mtime_ns if stat else None})",
            "kernel": platform.release(), "boot_id": host_boot_id()}


def changed_conditions(before: dict | None, now: dict) -> str:
    """Why the probe ran again, in words; empty when nothing was remembered."""
    if before is None:
        return ""
    names = {"qemu": "QEMU changed", "kernel": "host kernel changed", "boot_id": "host rebooted"}
    return ", ".join(names[k] for k in names if before.get(k) != now.get(k))
