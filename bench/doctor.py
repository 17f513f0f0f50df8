"""`cvbench doctor`: what is usable on this host, why not, and the fix; --clean for leftovers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.agent import boots_the_agent
from bench.collect.cgroups import ROOT, V1_CONTROLLERS, Cgroup, cgroup_version, v1_hierarchies
from bench.errors import UserError
from bench.results import running_under_hypervisor
from bench.collect.slices import slice_path, stop_slice


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _which(program: str, package: str, purpose: str) -> Check:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None)
    if path:
        return Check(program, True, f"{path} ({purpose})")
    return Check(program, False, f"not installed: needed for {purpose}", f"apt-get install {package}")


def check_root() -> Check:
    if os.geteuid() == 0:
        return Check("root", True, "running as root: cgroups, chroot and image builds allowed")
    return Check("root", False, "not root: cvbench creates cgroups and chroots", "run with sudo")


def check_cgroups() -> Check:
    version = cgroup_version()
    where = ROOT if version == 2 else ", ".join(str(ROOT / c) for c in V1_CONTROLLERS)
    writable = os.access(ROOT if version == 2 else ROOT / "memory", os.W_OK)
    return Check("cgroups", writable, f"cgroup v{version} at {where}",
                 None if writable else "run as root on a host with a writable cgroup file system")


def check_image() -> Check:
    """The guest image: built already, or buildable here (mmdebstrap)."""
    from bench.images import load_cached

    image = load_cached()
    if image:
        return Check("guest image", True, f"{image.key} cached at {image.directory}")
    if shutil.which("mmdebstrap"):
        return Check("guest image", True, "not built yet; mmdebstrap builds it on the first run")
    return Check("guest image", False, "not built, and mmdebstrap is not installed to build it",
                 "apt-get install mmdebstrap")


def check_docker() -> Check:
    from bench.runtimes.docker import docker_client

    try:
        client = docker_client()
    except UserError as exc:
        return Check("docker", False, str(exc).split("\n")[0], exc.fix)
    info = client.info()
    driver = info.get("CgroupDriver")
    # systemd: containers go in a cvbench slice of their own, whose counters outlive them
    placement = ("containers in cvbench-*.slice" if driver == "systemd"
                 else "containers below cvbench's cgroup")
    return Check("docker", True, f"engine {info.get('ServerVersion')}, cgroup driver {driver} "
                 f"({placement}), runtimes: {', '.join(info.get('Runtimes', {}))}")


def check_libvirt() -> Check:
    from bench.runtimes.libvirtd import URI, connect, version_text

    try:
        conn = connect()
    except UserError as exc:
        return Check("libvirt", False, str(exc).split("\n")[0], exc.fix)
    try:
        version = version_text(conn.getLibVersion())
        return Check("libvirt", True, f"libvirtd answers on {URI}: libvirt {version}, domains in "
                     "a resource partition of their own")
    finally:
        conn.close()


def check_runsc() -> Check:
    if not shutil.which("runsc"):
        return Check("runsc", False, "gVisor is not installed", "apt-get install runsc")
    try:
        runtimes = json.loads(Path("/etc/docker/daemon.json").read_text()).get("runtimes", {})
    except (OSError, ValueError):
        runtimes = {}
    if "runsc" not in runtimes:
        return Check("runsc", False, "installed but not registered with Docker",
                     "cvbench doctor --fix (adds it to /etc/docker/daemon.json and reloads dockerd)")
    return Check("runsc", True, f"registered: {runtimes['runsc']}")


def check_kvm() -> Check:
    """Whether KVM can boot a guest here, as the last probe under the same conditions found."""
    from bench.runtimes.qemu import ACCEL_CACHE, kvm_conditions

    if not os.path.exists("/dev/kvm"):
        return Check("kvm", False, "no /dev/kvm: VMs will run emulated (TCG), labelled so",
                     "enable virtualisation in the firmware, or load kvm_intel/kvm_amd")
    nested = " (this host is itself a VM: nested KVM)" if running_under_hypervisor() else ""
    try:
        results = json.loads(ACCEL_CACHE.read_text()).get("results", {})
    except (OSError, ValueError, AttributeError):
        results = {}
    now = kvm_conditions()
    for key, probe in results.items():
        if isinstance(probe, dict) and probe.get("conditions") == now:
            ok = probe["accel"] == "kvm"
            return Check("kvm", ok, f"probe ({key}): {probe['accel']}: {probe['reason'][:160]}{nested}",
                         None if ok else "VMs run emulated here (labelled so in reports)")
    return Check("kvm", True, f"/dev/kvm present{nested}; the first run with accel = \"auto\" "
                 "probes a boot")


def checks() -> list[Check]:
    from bench.runtimes import KINDS

    found = [check_root(), check_cgroups(), check_image(),
             _which("mke2fs", "e2fsprogs", "the VM disk"), check_docker(), check_runsc(),
             check_libvirt()]
    # every other program a runtime kind installs: is it here
    for kind in KINDS.values():
        for package, program in kind.PACKAGES.items():
            if program not in {c.name for c in found} and program != "dockerd":
                found.append(_which(program, package, f"the {kind.kind} runtime"))
    return [*found, check_kvm()]


def runtime_lines(results: list[Check]) -> list[str]:
    """Which runtime kinds can run here, and what stops the others (each kind names the
    checks it needs)."""
    from bench.runtimes import KINDS

    ok = {c.name: c.ok for c in results}
    lines = []
    for kind in KINDS.values():
        for label, needs in kind.HOST_NEEDS.items():
            missing = [n for n in needs if not ok[n]]
            lines.append(f"{label}: NOT usable: needs {', '.join(missing)} (see above)" if missing
                         else f"{label}: {kind.usable_as(ok)}")
    return lines


def run_checks(fix: bool = False) -> int:
    if fix:
        from bench.hostsetup import ensure_host

        ensure_host()
    results = checks()
    for check in results:
        mark = "ok " if check.ok else "NO "
        print(f"{mark} {check.name:<20} {check.detail}")
        if check.fix and not check.ok:
            print(f"    fix: {check.fix}")
    print("\nruntimes:")
    for line in runtime_lines(results):
        print(f"  {line}")
    # KVM missing is not an error: VMs still run, emulated and labelled.
    blocking = [c for c in results if not c.ok and c.name != "kvm"]
    return 1 if blocking else 0


def clean_leftovers() -> list[str]:
    """Remove what crashed or killed runs left: containers, VMs, cgroups, scratch disks.

    Runs still in progress hold a lock on their scratch folder and are left alone.
    """
    from bench.session import WORKDIR, run_is_live

    done = []
    try:
        from bench.runtimes.docker import RUN_LABEL, docker_client

        client = docker_client()
        for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
            if not run_is_live(container.labels[RUN_LABEL]):
                container.remove(force=True)
                done.append(f"removed container {container.name}")
    except UserError as exc:
        done.append(f"skipped containers: {str(exc).splitlines()[0]}")
    any_live = WORKDIR.exists() and any(run_is_live(s.name) for s in WORKDIR.iterdir())
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (proc.info["name"] or "").startswith("qemu-system") and boots_the_agent(cmdline):
            run = run_of_pid(proc.pid)
            # libvirt's QEMU sits in a partition whose name does not say its run
            if (run is None and not any_live) or (run is not None and not run_is_live(run)):
                proc.kill()
                done.append(f"killed VM process {proc.pid}")
    if not any_live:
        from bench.runtimes.libvirt import leftover_partitions, remove_partition

        for partition in leftover_partitions():
            remove_partition(partition)
            done.append(f"removed libvirt partition {partition}")
    for path in _cvbench_cgroups():
        if not run_is_live(path.name):
            Cgroup(cgroup_version(), {"": path}).remove()
            done.append(f"removed cgroup {path}")
    for name in _empty_instance_slices():
        stop_slice(name)
        done.append(f"stopped slice {name}")
    if WORKDIR.exists():
        for scratch in WORKDIR.iterdir():  # a run's folder (host*.lock: the host's lock)
            if scratch.is_dir() and not run_is_live(scratch.name):
                shutil.rmtree(scratch, ignore_errors=True)
                done.append(f"removed scratch {scratch}")
    if not any_live:  # a tap's name does not say its run: only when no run is going on
        for tap in tap_devices():
            subprocess.run(["ip", "link", "delete", tap], capture_output=True)
            done.append(f"removed tap device {tap}")
    return done or ["nothing left behind"]


def tap_devices() -> list[str]:
    """The host ends of VMs' direct network links (bench/runtimes/qemu.py names them cvb*)."""
    from bench.runtimes.qemu import TAP_PREFIX

    return sorted(p.name for p in Path("/sys/class/net").glob(f"{TAP_PREFIX}*"))


def run_of_pid(pid: int) -> str | None:
    """The run id from a process's cgroup path (.../cvbench/RUN/INSTANCE)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for part in text.split("/cvbench/")[1:]:
        return part.split("/")[0]
    return None


def _empty_instance_slices() -> list[str]:
    """Slices (Docker's systemd driver) whose container is gone: a live one has processes."""
    top = next(iter(Cgroup.at(slice_path("")).dirs.values()))
    if not top.exists():
        return []
    return [d.name for d in top.iterdir()
            if d.name.endswith(".slice") and not Cgroup.at(slice_path(d.name)).pids()]


def _cvbench_cgroups() -> list[Path]:
    # v1: every hierarchy; an OCI runtime makes the instance's path in those cvbench leaves alone
    bases = [ROOT / "cvbench"] if cgroup_version() == 2 else [h / "cvbench" for h in v1_hierarchies()]
    return [run for base in bases if base.exists() for run in base.iterdir() if run.is_dir()]


