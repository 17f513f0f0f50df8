"""CPU a container engine spends outside its instances' cgroups: dockerd, containerd,
the shims, the runc processes they fork, docker-proxy.

Read from the engine's own cgroups, whose counters keep the CPU of processes that have
exited (each runc create/start/delete, a docker-proxy): under systemd docker.service and
containerd.service; where the engine sits in the root cgroup (started by hand, or by
cvbench on a host without a service manager), a cgroup cvbench makes and moves dockerd
and containerd into, which every process they start afterwards inherits. Only where
neither can be had: psutil over the live dockerd and containerd with the children they
reaped, a view that misses the shims (their parent is init): the runner adds the shim's
CPU as last sampled while the container ran (on the bridge path that sum also holds
docker-proxy's CPU up to then, which dockerd's reaped children count again).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from bench.collect.cgroups import ROOT, Cgroup, cgroup_version, parse_proc_cgroup
from bench.collect.processes import PROC, cpu_seconds_of, engine_pids

OWN_CGROUP = "cvbench-engine"
DOCKER_ENGINE = ("dockerd", "containerd")


@dataclass(frozen=True)
class EngineCpu:
    """Where the engine's CPU is read: its cgroups, or, when there are none, psutil
    (why_not_cgroup says why)."""

    cgroups: tuple[Cgroup, ...]
    why_not_cgroup: str | None = None
    names: tuple[str, ...] = DOCKER_ENGINE  # its processes, for psutil

    @property
    def source(self) -> str:
        return "cgroup" if self.cgroups else "psutil"

    def seconds(self) -> float:
        """The engine's CPU so far; only differences mean anything."""
        if self.cgroups:
            return sum(group.cpu_seconds() for group in self.cgroups)
        return cpu_seconds_of(engine_pids(self.names))

    def spent_since(self, before: float, helper_cpu_s: float) -> float:
        """What the engine spent since it read before. psutil sees the engine's own
        processes only: the shims, children of init, add what they spent (helper_cpu_s)."""
        return self.seconds() - before + (helper_cpu_s if self.source == "psutil" else 0.0)

    def describe(self) -> dict:
        return {"source": self.source, "why_not_cgroup": self.why_not_cgroup,
                "cgroups": [str(d) for group in self.cgroups for d in group.dirs.values()]}


@dataclass(frozen=True)
class ChildrenCpu:
    """A manager that is a command cvbench runs (podman's create, start --attach and rm,
    with the OCI runtime calls they fork and wait for): the CPU of cvbench's waited-for
    children, from getrusage. conmon leaves that tree (init adopts it): not in it."""

    what: str
    source: str = "rusage"

    def seconds(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def spent_since(self, before: float, helper_cpu_s: float) -> float:
        return self.seconds() - before

    def describe(self) -> dict:
        return {"source": self.source, "what": self.what}


def locate_engine(pids: list[int] | None = None, root: Path = ROOT, proc: Path = PROC) -> EngineCpu:
    """The engine's cgroups, after moving an engine that sits in the root cgroup (whose
    counters are the whole host's) into OWN_CGROUP; psutil where that is not possible."""
    pids = engine_pids() if pids is None else pids
    if not pids:
        return EngineCpu((), "no dockerd or containerd process on this host")
    version = cgroup_version(root)
    key = "" if version == 2 else "cpuacct"
    base = root / key if key else root
    try:
        paths = {pid: _cgroup_path(pid, key, proc) for pid in pids}
        for pid in [pid for pid, path in paths.items() if path == "/"]:
            (base / OWN_CGROUP).mkdir(exist_ok=True)
            # Moves every thread; the processes it starts from now on follow it
            (base / OWN_CGROUP / "cgroup.procs").write_text(str(pid))
            paths[pid] = "/" + OWN_CGROUP
    except (OSError, KeyError) as exc:  # not root, an engine restarting, no cpuacct
        return EngineCpu((), f"engine cgroup not usable: {type(exc).__name__}: {exc}")
    paths = set(paths.values())
    # One cgroup inside another would count twice
    outermost = sorted(p for p in paths if not any(p.startswith(q.rstrip("/") + "/")
                                                   for q in paths if q != p))
    return EngineCpu(tuple(Cgroup(version, {key: base / p.lstrip("/")}) for p in outermost))


def _cgroup_path(pid: int, key: str, proc: Path) -> str:
    return parse_proc_cgroup((proc / str(pid) / "cgroup").read_text())[key]
