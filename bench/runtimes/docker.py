"""docker: the Docker engine through its SDK, with any OCI runtime (runc, runsc, crun, kata)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.agent import AGENT_PATH, LineReader
from bench.collect.cgroups import Cgroup
from bench.collect.engine import locate_engine
from bench.collect.host import du_bytes
from bench.collect.processes import find_by_cmdline
from bench.collect.slices import instance_slice, slice_path, stop_slice
from bench.errors import RuntimeFailure, UserError
from bench.images import ensure_docker_image
from bench.params import Param
from bench.runtimes.base import Instance, Limits, Runtime, Traits, command_version, on_own_kernel
from bench.runtimes.docker_events import ContainerActivity
from bench.runtimes.dockerd import ensure_engine
from bench.runtimes.gvisor import platform_of
from bench.workloads import DISK_DIRS, NO_NEEDS, Needs

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
    client: object = None
    container: object = None
    shim_pid: int | None = None
    proxy_pid: int | None = None  # docker-proxy: the host end of a published port
    slice: str | None = None  # systemd driver: the instance's own slice

    def helper_pids(self) -> list[int]:
        return [pid for pid in (self.shim_pid, self.proxy_pid) if pid]

    def wait_gone(self, timeout: float) -> float:
        try:
            self.container.wait(timeout=timeout)
        except Exception as exc:  # requests' ReadTimeout, or the engine went away
            raise RuntimeFailure(f"{self.name} did not exit within {timeout:.0f} s ({exc})") from None
        return time.monotonic()

    def close(self) -> None:
        import docker.errors

        try:
            if self.container is not None:
                self.container.remove(force=True)
            elif self.client is not None:
                # Interrupted inside create: the engine may still have made it, by this name.
                self.client.containers.get(self.name).remove(force=True)
        except docker.errors.NotFound:
            pass
        if self.slice is not None:
            stop_slice(self.slice)
        elif self.cgroup is not None and self.cgroup.exists():
            self.cgroup.remove()
        self.remove_scratch()


class DockerRuntime(Runtime):
    kind = "docker"
    traits = Traits("container", shares_host_kernel=True,
                    phases=(("startup.create_s", "docker create"), ("startup.start_s", "docker start")),
                    disk_layer="overlay2 upper dir",
                    manager="dockerd + containerd", manager_phases=("startup.create_s",),
                    bare_twin=("oci", ("oci_runtime",)))
    HOST_NEEDS = {"docker runc": ("root", "cgroups", "guest image", "docker"),
                  "docker runsc (gVisor)": ("root", "cgroups", "guest image", "docker", "runsc")}
    PACKAGES = {"docker.io": "dockerd", "runsc": "runsc", "crun": "crun"}
    OPTIONS = {
        "oci_runtime": Param(str, "runc", "OCI runtime registered with the engine (runc, runsc, ...)"),
        "network": Param(str, "none", "Docker network mode", choices=("none", "bridge", "host")),
        # Serving workloads (net, redis) need a path from the host; the others keep
        # `network`, so their startup is not charged for a network they do not use.
        "serve_network": Param(str, "bridge", "network mode for workloads the host connects to, "
                               "on their default path (none: such workloads are skipped; the "
                               "direct path is always the host network)",
                               choices=("none", "bridge", "host")),
        "serve_oci_runtime": Param(str, "", "OCI runtime for serving workloads on the host "
                                   "network (empty: oci_runtime); runsc-host is runsc with "
                                   "--network=host"),
    }

    @classmethod
    def set_up_host(cls) -> None:
        ensure_engine()

    @classmethod
    def traits_for(cls, options: dict) -> Traits:
        # gVisor's guest uptime is not a phase of its own: its sandbox boots inside docker start
        return on_own_kernel(cls.traits, options.get("oci_runtime"))

    def check(self) -> None:
        self.client = docker_client()
        self.info = self.client.info()  # one round trip: describe() reads it too
        runtimes = self.info.get("Runtimes", {})
        self.gvisor_platforms = {name: platform_of(config) for name, config in runtimes.items()}
        self._check_registered(self.options["oci_runtime"], runtimes)
        # A missing host-network runtime skips the workloads that need it, with the reason
        self.serve_problem = None
        try:
            self._check_registered(self.options["serve_oci_runtime"] or self.options["oci_runtime"],
                                   runtimes)
        except UserError as exc:
            self.serve_problem = str(exc).replace("\n  fix:", "; fix:")
        self.cgroup_driver = self.info.get("CgroupDriver", "cgroupfs")

    def _serving(self, needs: Needs) -> tuple[str, str]:
        """(OCI runtime, network mode) of a serving instance."""
        network = "host" if needs.direct_net else self.options["serve_network"]
        if network == "host":
            return self.options["serve_oci_runtime"] or self.options["oci_runtime"], network
        return self.options["oci_runtime"], network

    def _check_registered(self, wanted: str, runtimes: dict) -> None:
        if wanted not in runtimes:
            fix = ("apt-get install runsc, then register it: cvbench doctor --fix"
                   if wanted in ("runsc", "runsc-host")
                   else f"register {wanted} under \"runtimes\" in /etc/docker/daemon.json")
            raise UserError(f"docker: OCI runtime {wanted!r} is not registered with the engine "
                            f"(it has {', '.join(runtimes)})", fix=fix)

    def prepare(self) -> None:
        self.image_id = ensure_docker_image(self.client, self.context.image)
        self.engine = locate_engine()
        self.activity = ContainerActivity(self.client)
        self.context.cleanup.add("engine events", self.activity.close)

    def other_containers(self, inst: ContainerInstance, since: float, until: float) -> int:
        """Containers besides inst that the engine ran at some time between since and until
        (wall clock): the engine's CPU over that span was not spent for inst alone."""
        return self.activity.others(inst.container.id if inst.container is not None else None,
                                    since, until)

    def tags(self) -> dict:
        return {"oci_runtime": self.options["oci_runtime"], "network": self.options["network"],
                **self._platform(self.options["oci_runtime"])}

    def _platform(self, oci_runtime: str) -> dict:
        """Tag gvisor_platform for a runsc runtime (read from the engine's registration)."""
        platform = getattr(self, "gvisor_platforms", {}).get(oci_runtime)
        return {"gvisor_platform": platform} if platform else {}

    def unsupported(self, needs: Needs) -> str | None:
        if not needs.serves:
            return None
        network = self._serving(needs)[1]
        if network == "none":
            return (f"runtime {self.name} has serve_network = \"none\" (no path from the host "
                    "into the container)")
        if network == "host" and getattr(self, "serve_problem", None):
            return self.serve_problem
        return None

    def serve_bind(self, needs: Needs) -> str:
        return "127.0.0.1" if self._serving(needs)[1] == "host" else "0.0.0.0"

    def net_path(self, needs: Needs) -> str:
        if self._serving(needs)[1] == "host":
            return "docker host network, 127.0.0.1"
        return "docker bridge, port published on 127.0.0.1"

    def instance_disk(self, inst: ContainerInstance) -> int:
        """Its writable layer, the overlay2 upper dir."""
        inst.container.reload()
        return du_bytes(upper_dir(inst.container.attrs))

    def sweep(self) -> None:
        """A create request cut short by Ctrl-C may still complete in the engine after its
        instance was released: remove whatever carries this run's label."""
        client = getattr(self, "client", None)
        if client is None:
            return
        try:
            for container in client.containers.list(
                    all=True, filters={"label": f"{RUN_LABEL}={self.context.run_id}"}):
                container.remove(force=True)
                print(f"cleanup: removed late container {container.name}", file=sys.stderr)
        except Exception as exc:  # the engine went away: doctor --clean can finish the job
            print(f"cleanup: could not sweep containers ({exc}): once dockerd is back, "
                  "cvbench doctor --clean removes what this run left", file=sys.stderr)

    def describe(self) -> dict:
        config = self.info.get("Runtimes", {}).get(self.options["oci_runtime"], {})
        binary = config.get("path") or self.options["oci_runtime"]
        return {
            "kind": self.kind, **self.options,
            "engine_version": self.client.version().get("Version"),
            "cgroup_driver": self.cgroup_driver,
            "runtime_config": config,
            "runtime_version": command_version([binary, "--version"]),
            "docker_image_id": getattr(self, "image_id", None),
            "engine_cpu": self.engine.describe() if self.engine else None,
        }

    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None) -> ContainerInstance:
        t0 = time.monotonic()
        inst = self._register(ContainerInstance(name=instance, t_launch=t0, client=self.client))
        with self._launching(inst):
            oci_runtime, network, ports = self.options["oci_runtime"], self.options["network"], {}
            if needs.serves:
                oci_runtime, network = self._serving(needs)
                if network == "bridge":
                    ports = {f"{port}/tcp": ("127.0.0.1", port)}
                inst.tags.update(oci_runtime=oci_runtime, network=network,
                                 **self._platform(oci_runtime))
            volumes = {}
            if needs.volume_mib:
                folder = self.context.workdir / f"{instance}-volume"
                folder.mkdir()
                inst.scratch.append(folder)
                volumes[str(folder)] = {"bind": DISK_DIRS["volume"], "mode": "rw"}
                inst.tags["disk_backing"] = "host folder (bind mount)"
            elif needs.scratch:
                inst.tags["disk_backing"] = "container writable layer"
            if self.cgroup_driver == "systemd":
                # systemd removes a container's scope, counters and all, the moment it exits:
                # the scope goes into a slice of the instance's own, which stays until stopped.
                inst.slice = parent = instance_slice(instance)
            else:  # our cgroup above the container's: its counters outlive the container
                relpath = self.context.cgroup_path(instance)
                inst.cgroup = Cgroup.create(relpath)
                parent = "/" + relpath
            # The low-level call: the SDK's create() inspects what it made, a round trip
            # per instance that nothing here reads.
            api = self.client.api
            created = api.create_container(
                self.context.image.docker_tag, command=[AGENT_PATH, command], name=instance,
                labels={RUN_LABEL: self.context.run_id}, detach=True,
                ports=[int(p.split("/")[0]) for p in ports],
                volumes=[v["bind"] for v in volumes.values()],
                host_config=api.create_host_config(
                    runtime=oci_runtime, network_mode=network, port_bindings=ports,
                    binds=volumes, nano_cpus=int(limits.cpus * 1e9),
                    mem_limit=limits.memory_mib * 1024 * 1024,
                    memswap_limit=limits.memory_mib * 1024 * 1024,
                    pids_limit=limits.pids, cgroup_parent=parent))
            inst.container = self.client.containers.prepare_model({"Id": created["Id"], "Name": instance})
            t_created = time.monotonic()
            # Attach before start so not a byte of output is missed.
            inst.lines = LineReader(attached_output(api, inst.container.id), instance)
            inst.container.start()
            t_started = time.monotonic()
            inst.phases["startup.create_s"] = t_created - t0
            inst.phases["startup.start_s"] = t_started - t_created
            # The shim serves the container and outlives a short one: count it in PSS.
            inst.shim_pid = find_by_cmdline("containerd-shim", inst.container.id)
            if ports:  # the bridge path: the engine's proxy carries every byte, count it
                inst.proxy_pid = find_by_cmdline("docker-proxy", f"-host-port {port} ")
            if inst.slice is not None:  # systemd made it as the container started
                inst.cgroup = Cgroup.at(slice_path(inst.slice))
        return inst


def attached_output(api, container_id: str):
    """A container's output, stdout and stderr as they come, until it exits. The raw
    socket: the SDK's attach() inspects the container first to learn whether it has a
    TTY, a round trip per instance; cvbench's never do."""
    from docker.utils.socket import frames_iter

    # Attached here, not when the reader first asks: a line's time is its arrival
    sock = api.attach_socket(container_id, params={"stdout": 1, "stderr": 1, "stream": 1,
                                                   "logs": 1})

    def chunks():
        try:
            for _, data in frames_iter(sock, tty=False):
                yield data
        finally:
            sock.close()
    return chunks()


def upper_dir(inspect: dict) -> Path:
    """A container's writable layer from `docker inspect` (one container's object)."""
    driver = inspect.get("GraphDriver") or {}
    upper = (driver.get("Data") or {}).get("UpperDir")
    if not upper:
        raise RuntimeFailure(f"storage driver {driver.get('Name')!r} has no UpperDir: "
                             "only overlay2 is measured")
    return Path(upper)
