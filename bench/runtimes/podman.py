"""podman: rootful Podman with no daemon (conmon watches each container), importing the
same guest tarball as Docker, with any OCI runtime (runc, runsc, crun).

Every podman call gets cvbench's own containers.conf (CONTAINERS_CONF): its default
ulimits ask for limits above many hosts' hard limits, and the container then fails at once
("error setting rlimit type 7"); with none, a container inherits the open-file limits
cvbench has, as a native instance does. cgroupfs manages the cgroups, below the instance's
own (--cgroup-parent), so its counters outlive the container as with Docker's cgroupfs
driver.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.agent import AGENT_PATH, LineReader
from bench.collect.cgroups import Cgroup
from bench.collect.engine import ChildrenCpu
from bench.collect.host import du_bytes
from bench.errors import RuntimeFailure, UserError
from bench.images import CACHE
from bench.runtimes.base import (Limits, ProcessInstance, Traits, command_version,
                                 pipe_chunks, spawn)
from bench.runtimes.docker import RUN_LABEL
from bench.runtimes.oci import WithOciRuntime
from bench.workloads import DISK_DIRS, NO_NEEDS, Needs

CONTAINERS_CONF = CACHE / "podman-containers.conf"
REPO = "localhost/cvbench-guest"


@dataclass
class PodmanInstance(ProcessInstance):
    """The container, attached to by `podman start --attach` (the instance's process)."""

    podman: list[str] | None = None
    env: dict | None = None
    conmon_pidfile: Path | None = None

    def helper_pids(self) -> list[int]:
        """The attached podman and conmon: they serve the container from outside its cgroup."""
        pids = [self.process.pid] if self.process is not None else []
        try:
            return pids + [int(self.conmon_pidfile.read_text())]
        except (OSError, ValueError, AttributeError):  # not written yet
            return pids

    def close(self) -> None:
        if self.podman is not None:
            subprocess.run([*self.podman, "rm", "--force", "--time", "0", self.name],
                           capture_output=True, env=self.env, timeout=60)
        super().close()


class PodmanRuntime(WithOciRuntime):
    kind = "podman"
    traits = Traits("container", shares_host_kernel=True,
                    phases=(("startup.create_s", "podman create"),),
                    manager="podman + conmon", manager_phases=("startup.create_s",),
                    bare_twin=("oci", ("oci_runtime",)),
                    disk_layer="overlay upper dir")
    HOST_NEEDS = {"podman runc": ("root", "cgroups", "guest image", "podman", "runc")}
    PACKAGES = {"podman": "podman"}

    def check(self) -> None:
        if not shutil.which("podman"):
            raise UserError("podman: not installed", fix="apt-get install podman")
        super().check()

    def prepare(self) -> None:
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text("[containers]\ndefault_ulimits = []\n")
        self.env = {"CONTAINERS_CONF": str(CONTAINERS_CONF), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.podman = ["podman", "--cgroup-manager", "cgroupfs"]
        self.engine = ChildrenCpu("podman create, start --attach and rm, and the OCI runtime "
                                  "calls they make; not conmon")
        self.tag = f"{REPO}:{self.context.image.key}"
        if self._podman("image", "exists", self.tag, check=False).returncode != 0:
            print(f"[image] importing {self.tag} into Podman", flush=True)
            self._podman("import", str(self.context.image.tarball), self.tag, timeout=600)

    def _podman(self, *args: str, check: bool = True, timeout: float = 120,
                podman: list[str] | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([*(podman or self.podman), *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeFailure(f"podman {args[0]} failed: {(done.stderr or done.stdout).strip()[-400:]}")
        return done

    def net_path(self, needs: Needs) -> str:
        return "podman host network, 127.0.0.1"

    def describe(self) -> dict:
        return {"kind": self.kind, **self.options,
                "engine_version": command_version(["podman", "--version"]),
                "runtime_version": command_version([self.binary, "--version"]),
                "engine_cpu": self.engine.describe() if self.engine else None}

    def instance_disk(self, inst: PodmanInstance) -> int:
        """Its writable layer, the overlay upper dir podman made for it."""
        upper = self._podman("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", inst.name)
        return du_bytes(Path(upper.stdout.strip()))

    def sweep(self) -> None:
        """Containers a launch cut short may have left: remove those labelled with this run."""
        if getattr(self, "podman", None) is None:
            return
        found = self._podman("ps", "--all", "--quiet", "--filter",
                             f"label={RUN_LABEL}={self.context.run_id}", check=False).stdout.split()
        if found:
            self._podman("rm", "--force", "--time", "0", *found, check=False)

    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None) -> PodmanInstance:
        t0 = time.monotonic()
        relpath = self.context.cgroup_path(instance)
        network = self.network_for(needs)
        # The OCI runtime's flags are podman's own: conmon gets them from `podman start`
        podman = [*self.podman, *(["--runtime-flag", f"platform={self.options['runsc_platform']}",
                                   "--runtime-flag", f"network={network}"]
                                  if self.options["oci_runtime"] == "runsc" else [])]
        inst = self._register(PodmanInstance(name=instance, t_launch=t0, cgroup=Cgroup.create(relpath),
                                             podman=podman, env=self.env))
        with self._launching(inst):
            inst.conmon_pidfile = self.context.workdir / f"{instance}-conmon.pid"
            inst.scratch.append(inst.conmon_pidfile)
            options = ["--name", instance, "--label", f"{RUN_LABEL}={self.context.run_id}",
                       "--cgroup-parent", f"/{relpath}", "--conmon-pidfile", str(inst.conmon_pidfile),
                       "--cpus", str(limits.cpus), "--memory", f"{limits.memory_mib}m",
                       "--memory-swap", f"{limits.memory_mib}m",
                       "--pids-limit", str(limits.pids or -1),  # podman's default is 2048
                       "--network", network, "--runtime", self.binary]
            if needs.volume_mib:
                folder = self.context.workdir / f"{instance}-volume"
                folder.mkdir()
                inst.scratch.append(folder)
                options += ["--volume", f"{folder}:{DISK_DIRS['volume']}"]
                inst.tags["disk_backing"] = "host folder (bind mount)"
            elif needs.scratch:
                inst.tags["disk_backing"] = "container writable layer"
            if needs.serves:
                inst.tags["network"] = network
            self._podman("create", *options, self.tag, AGENT_PATH, command, podman=podman)
            t_created = time.monotonic()
            inst.phases["startup.create_s"] = t_created - t0
            # Attached before it starts: not a byte of output is missed
            inst.process = spawn([*podman, "start", "--attach", instance], env=self.env)
            inst.lines = LineReader(pipe_chunks(inst.process), instance)
        return inst
