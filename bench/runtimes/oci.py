"""oci: an OCI runtime (runc, runsc, crun) run directly on a bundle, with no engine: the
floor under Docker and Podman.

The bundle's root is an overlay of the guest image (read-only, shared) under a writable
upper folder of the instance's own, as Docker's overlay2 makes it; the overlay is mounted
in a private mount namespace, so it goes away with the runtime process. The instance's
cgroup holds the limits, the same code as native's; below it the OCI runtime's own process
(`runc run`, which waits for the container) and the container each have a cgroup, so
everything the instance costs is counted in one place.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.agent import AGENT_PATH, AWAIT, LineReader, workload_line
from bench.collect.cgroups import ROOT, Cgroup, cgroup_version
from bench.collect.host import du_bytes
from bench.errors import RuntimeFailure, UserError
from bench.params import Param
from bench.runtimes.base import (Limits, ProcessInstance, Runtime, Snapshot, Traits,
                                 command_version, on_own_kernel, pipe_chunks, run_tool, spawn)
from bench.units import MiB
from bench.workloads import DISK_DIRS, NO_NEEDS, Needs

# What Docker grants a container by default: the same privileges as the docker runtime's.
CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
# Mount the overlay, then become the OCI runtime: $0 image root, $1 bundle, then the argv.
_OVERLAY = ('mount -t overlay overlay -o "lowerdir=$0,upperdir=$1/upper,workdir=$1/work" '
            '"$1/rootfs" && shift && exec "$@"')


@dataclass
class OciInstance(ProcessInstance):
    control: list[str] | None = None  # the OCI runtime with its global flags
    upper: Path | None = None  # the instance's writable layer

    def close(self) -> None:
        if self.control is not None:
            # The runtime process waits for the container; killing it alone would orphan it
            for verb in (["kill", self.name, "KILL"], ["delete", "--force", self.name]):
                subprocess.run([*self.control, *verb], capture_output=True, timeout=30)
            if self.process is not None:
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        super().close()


def bundle_config(command: str, instance: str, cgroups_path: str, network: bool,
                  volume: Path | None) -> dict:
    """config.json of an instance: the agent with the command, the namespaces Docker gives a
    container (a network namespace only when not on the host's network), no resources (the
    instance's cgroup above it holds the limits)."""
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    if volume is not None:
        mounts.append({"destination": DISK_DIRS["volume"], "type": "bind", "source": str(volume),
                       "options": ["rbind", "rw"]})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", *(["network"] if network else []))]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": [AGENT_PATH, command],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/", "capabilities": {key: CAPABILITIES for key in ("bounding", "effective",
                                                                      "permitted")},
            # the open-file limits cvbench has, which a native instance inherits
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": instance[-63:],
        "mounts": mounts,
        "linux": {
            "cgroupsPath": cgroups_path,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


class WithOciRuntime(Runtime):
    """What the kinds that pick an OCI runtime themselves share (oci, podman): the OCI
    runtime and its binary, a network of none or the host's, gVisor's platform."""

    OPTIONS = {
        "oci_runtime": Param(str, "runc", "the OCI runtime that runs the container",
                             choices=("runc", "runsc", "crun")),
        "network": Param(str, "none", "none: a network namespace of its own (loopback only); "
                         "host: the host's network", choices=("none", "host")),
        "serve_network": Param(str, "host", "network for workloads the host connects to (none: "
                               "such workloads are skipped)", choices=("none", "host")),
        "runsc_platform": Param(str, "ptrace", "gVisor's platform (runsc only)"),
    }

    @classmethod
    def traits_for(cls, options: dict) -> Traits:
        return on_own_kernel(cls.traits, options.get("oci_runtime"))

    def check(self) -> None:
        oci = self.options["oci_runtime"]
        self.binary = shutil.which(oci) or (f"/usr/sbin/{oci}" if Path(f"/usr/sbin/{oci}").exists()
                                            else None)
        if self.binary is None:
            raise UserError(f"{self.kind}: {oci} not found", fix=f"apt-get install {oci}")
        if oci == "crun" and cgroup_version() == 1 and (ROOT / "unified").exists():
            raise UserError(f"{self.kind}: crun does not run on a hybrid cgroup v1 host (\"cgroups "
                            "in hybrid mode not supported\")",
                            fix="boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2)")

    def network_for(self, needs: Needs) -> str:
        """Serving workloads take serve_network (the direct path: the host's); others network."""
        return ("host" if needs.direct_net else self.options["serve_network"]) if needs.serves \
            else self.options["network"]

    def unsupported(self, needs: Needs) -> str | None:
        if needs.serves and self.network_for(needs) == "none":
            return (f"runtime {self.name} has serve_network = \"none\" (no path from the host "
                    "into the container)")
        return None

    def tags(self) -> dict:
        tags = {"oci_runtime": self.options["oci_runtime"], "network": self.options["network"]}
        if self.options["oci_runtime"] == "runsc":
            tags["gvisor_platform"] = self.options["runsc_platform"]
        return tags


class OciRuntime(WithOciRuntime):
    kind = "oci"
    traits = Traits("container", shares_host_kernel=True,
                    phases=(("startup.spawn_s", "process spawn"),),
                    disk_layer="overlayfs upper dir")
    HOST_NEEDS = {"oci runc": ("root", "cgroups", "guest image", "runc"),
                  "oci runsc (gVisor)": ("root", "cgroups", "guest image", "runsc")}
    PACKAGES = {"runc": "runc", "runsc": "runsc"}

    def control(self, instance: str, network: str) -> list[str]:
        """The OCI runtime with its global flags: a state folder of the instance's own."""
        argv = [self.binary, "--root", str(self.context.workdir / f"{instance}-state")]
        if self.options["oci_runtime"] == "runsc":
            argv += [f"--platform={self.options['runsc_platform']}", f"--network={network}"]
        return argv

    def net_path(self, needs: Needs) -> str:
        return "host network, 127.0.0.1"

    def describe(self) -> dict:
        return {"kind": self.kind, **self.options, "binary": self.binary,
                "runtime_version": command_version([self.binary, "--version"])}

    def instance_disk(self, inst: OciInstance) -> int:
        """Its writable layer, the overlay's upper folder."""
        return du_bytes(inst.upper)

    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None) -> OciInstance:
        return self._start(command, limits, instance, needs, ["run"])

    # -- warm starts: gVisor checkpoints a container into an image file of its own, runc
    # with CRIU; a restore runs the same bundle from it, with restore's stdio as the
    # container's (runc hands its pipes to CRIU as inherited descriptors)

    def cannot_restore(self) -> str | None:
        oci = self.options["oci_runtime"]
        if oci == "runsc":
            return None
        if oci != "runc":
            return f"cvbench does not yet checkpoint {oci} containers"
        why = criu_failure()
        return f"runc checkpoints with CRIU, which fails here: {why}" if why else None

    def snapshot(self, limits: Limits, instance: str, timeout_s: float,
                 needs: Needs = NO_NEEDS) -> Snapshot:
        t0 = time.monotonic()
        image = self.context.workdir / f"{instance}-checkpoint"
        # stdin an open pipe with nothing in it: the agent blocks in its read until saved
        # (on /dev/null it would read end-of-file and exit, racing the checkpoint)
        awaiting = self._start(AWAIT, limits, instance, needs, ["run"], stdin=subprocess.PIPE)
        with self._held(awaiting) as inst:
            inst.lines.wait_for("WAITING", inst.t_launch + timeout_s)
            try:
                run_tool([*inst.control, "checkpoint", "--image-path", str(image), instance],
                         timeout_s)
            except RuntimeFailure as exc:  # runc says "log file: dump.log": CRIU's reason is there
                raise RuntimeFailure(f"{exc}; {criu_errors(image / 'dump.log')}") from None
            try:
                inst.process.wait(timeout_s)  # `run` returns once its container is saved
            except subprocess.TimeoutExpired:
                raise RuntimeFailure(f"{instance}: {self.options['oci_runtime']} run did not end "
                                     f"after its checkpoint") from None
        return Snapshot((image,), limits, time.monotonic() - t0, needs=needs)

    def restore(self, snapshot: Snapshot, command: str, instance: str,
                timeout_s: float, port: int | None = None, needs: Needs | None = None) -> OciInstance:
        (image,) = snapshot.files
        line = workload_line(command)
        inst = self._start(AWAIT, snapshot.limits, instance, snapshot.needs,
                           ["restore", "--image-path", str(image)], stdin=subprocess.PIPE)
        with self._launching(inst):
            try:  # the pipe holds the line until the restored agent reads it
                inst.process.stdin.write(line)
                inst.process.stdin.flush()
            except BrokenPipeError:
                raise RuntimeFailure(f"{instance}: restore ended at once: "
                                     f"{inst.lines.drain()[-600:]}") from None
        return inst

    def _start(self, command: str, limits: Limits, instance: str, needs: Needs, verb: list[str],
               stdin=subprocess.DEVNULL) -> OciInstance:
        """An instance's cgroups, bundle and overlay, and the OCI runtime's verb on them."""
        t0 = time.monotonic()
        relpath = self.context.cgroup_path(instance)
        cgroup = Cgroup.create(relpath, limits.cpus, limits.memory_mib * MiB, limits.pids)
        inst = self._register(OciInstance(name=instance, t_launch=t0, cgroup=cgroup))
        with self._launching(inst):
            network = self.network_for(needs)
            bundle = self.context.workdir / f"{instance}-bundle"
            for folder in (bundle / "upper", bundle / "work", bundle / "rootfs"):
                folder.mkdir(parents=True)
            inst.scratch += [bundle, self.context.workdir / f"{instance}-state"]
            inst.upper = bundle / "upper"
            volume = None
            if needs.volume_mib:
                volume = self.context.workdir / f"{instance}-volume"
                volume.mkdir()
                inst.scratch.append(volume)
                inst.tags["disk_backing"] = "host folder (bind mount)"
            elif needs.scratch:
                inst.tags["disk_backing"] = "container writable layer"
            if needs.serves:
                inst.tags["network"] = network
            config = bundle_config(command, instance, f"/{relpath}/container", network == "none",
                                   volume)
            (bundle / "config.json").write_text(json.dumps(config))
            inst.control = self.control(instance, network)
            # The runtime process waits in a cgroup beside the container's, inside the instance's
            runner = Cgroup.create(f"{relpath}/runtime")
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _OVERLAY,
                    str(self.context.image.root), str(bundle),
                    *inst.control, *verb, "--bundle", str(bundle), instance]
            inst.process = spawn(runner.enter_argv(argv), stdin=stdin)
            inst.lines = LineReader(pipe_chunks(inst.process), instance)
            inst.phases["startup.spawn_s"] = time.monotonic() - t0
        return inst


def criu_failure() -> str | None:
    """Why CRIU cannot checkpoint on this host (`criu check`'s last error), or None."""
    if not shutil.which("criu"):
        return "criu is not installed (apt-get install criu)"
    try:
        out = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"criu check: {exc}"
    if out.returncode == 0:
        return None
    return "criu check: " + errors_of(out.stderr + out.stdout)


def criu_errors(log: Path) -> str:
    try:
        return "CRIU: " + errors_of(log.read_text(errors="replace"))
    except OSError:
        return f"no CRIU log at {log}"


def errors_of(text: str) -> str:
    """CRIU's first errors, its cause first: "Error (criu/vdso.c:381): vdso: Unexpected..."."""
    errors = [m.group(1) for m in re.finditer(r"^(?:\([\d.]+\) )?Error \([^)]*\): (.*)$", text, re.M)]
    return "; ".join(errors[:3]) or text.strip()[-300:]
