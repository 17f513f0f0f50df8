"""docker: the Docker engine through its SDK, with any OCI runtime (runc, runsc, crun, kata)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from bench.agent import AGENT_PATH, LineReader
from bench.collect.cgroups import Cgroup
from bench.collect.processes import find_ancestor, find_by_cmdline
from bench.errors import RuntimeFailure, UserError
from bench.images import ensure_docker_image
from bench.params import Param
from bench.runtimes.base import Instance, Limits, Runtime, command_version

RUN_LABEL = "cvbench.run"


def docker_client():
    """A client for the local engine, or a UserError that says how to get one."""
    try:
        import docker
    except ImportError:
        raise UserError("the docker Python SDK is missing", fix="pip install docker") from None
    address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:
        fix = ("apt-get install docker.io" if not shutil.which("dockerd") else
               "start it: dockerd >/var/log/dockerd.log 2>&1 &  (or: systemctl start docker)")
        raise UserError(f"no Docker engine answers on {address} ({type(exc).__name__})", fix=fix) from None


@dataclass
class ContainerInstance(Instance):
    container: object = None
    shim_pid: int | None = None

    def helper_pids(self) -> list[int]:
        return [self.shim_pid] if self.shim_pid else []

    def wait_gone(self, timeout: float) -> float:
        try:
            self.container.wait(timeout=timeout)
        except Exception as exc:  # requests' ReadTimeout, or the engine went away
            raise RuntimeFailure(f"{self.name} did not exit within {timeout:.0f} s ({exc})") from None
        return time.monotonic()

    def close(self) -> None:
        import docker.errors

        if self.container is not None:
            try:
                self.container.remove(force=True)
            except docker.errors.NotFound:
                pass
        if self.cgroup is not None and self.cgroup.exists():
            self.cgroup.remove()


class DockerRuntime(Runtime):
    kind = "docker"
    OPTIONS = {
        "oci_runtime": Param(str, "runc", "OCI runtime registered with the engine (runc, runsc, ...)"),
        "network": Param(str, "none", "Docker network mode", choices=("none", "bridge", "host")),
    }

    def check(self) -> None:
        self.client = docker_client()
        runtimes = self.client.info().get("Runtimes", {})
        wanted = self.options["oci_runtime"]
        if wanted not in runtimes:
            fix = ("apt-get install runsc, then register it: cvbench doctor --fix"
                   if wanted == "runsc" else f"register {wanted} under \"runtimes\" in /etc/docker/daemon.json")
            raise UserError(f"docker: OCI runtime {wanted!r} is not registered with the engine "
                            f"(it has {', '.join(runtimes)})", fix=fix)
        self.cgroup_driver = self.client.info().get("CgroupDriver", "cgroupfs")

    def prepare(self) -> None:
        self.image_id = ensure_docker_image(self.client, self.context.image)

    def tags(self) -> dict:
        return {"oci_runtime": self.options["oci_runtime"], "network": self.options["network"]}

    def describe(self) -> dict:
        config = self.client.info().get("Runtimes", {}).get(self.options["oci_runtime"], {})
        binary = config.get("path") or self.options["oci_runtime"]
        return {
            "kind": self.kind, **self.options,
            "engine_version": self.client.version().get("Version"),
            "cgroup_driver": self.cgroup_driver,
            "runtime_config": config,
            "runtime_version": command_version([binary, "--version"]),
            "docker_image_id": getattr(self, "image_id", None),
        }

    def launch(self, command: str, limits: Limits, instance: str) -> ContainerInstance:
        t0 = time.monotonic()
        inst = self._register(ContainerInstance(name=instance, t_launch=t0))
        with self._launching(inst):
            parent = None
            if self.cgroup_driver == "cgroupfs":
                # Our cgroup above the container's: its counters outlive the container.
                relpath = self.context.cgroup_path(instance)
                inst.cgroup = Cgroup.create(relpath)
                parent = "/" + relpath
            inst.container = self.client.containers.create(
                self.context.image.docker_tag,
                command=[AGENT_PATH, command],
                name=instance,
                labels={RUN_LABEL: self.context.run_id},
                runtime=self.options["oci_runtime"],
                network_mode=self.options["network"],
                nano_cpus=int(limits.cpus * 1e9),
                mem_limit=limits.memory_mib * 1024 * 1024,
                memswap_limit=limits.memory_mib * 1024 * 1024,
                cgroup_parent=parent,
                detach=True,
            )
            t_created = time.monotonic()
            # Attach before start so not a byte of output is missed.
            stream = self.client.api.attach(inst.container.id, stdout=True, stderr=True,
                                            stream=True, logs=True)
            inst.lines = LineReader(stream, instance)
            inst.container.start()
            t_started = time.monotonic()
            inst.phases["startup.create_s"] = t_created - t0
            inst.phases["startup.start_s"] = t_started - t_created
            inst.container.reload()
            pid = inst.container.attrs["State"].get("Pid") or 0
            # The shim serves the container and outlives a short one: count it in PSS.
            inst.shim_pid = (pid and find_ancestor(pid, "containerd-shim")) or \
                find_by_cmdline("containerd-shim", inst.container.id)
            if pid and inst.cgroup is None:  # systemd driver: read the container's own cgroup
                try:
                    inst.cgroup = Cgroup.of_pid(pid)
                except (FileNotFoundError, KeyError):
                    pass
        return inst
