"""Instance cgroups, read the same way on cgroup v1 and v2.

cvbench creates one cgroup per instance for every runtime (Docker containers are
placed under it with cgroup_parent), so CPU and memory are charged and read
identically everywhere. CPU and memory counters are hierarchical in both
versions, so the instance's cgroup keeps the totals of a container's child
cgroup even after the engine removed it.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")
CFS_PERIOD_US = 100_000


def cgroup_version(root: Path = ROOT) -> int:
    return 2 if (root / "cgroup.controllers").exists() else 1


def parse_keyed(text: str) -> dict[str, int]:
    """memory.stat, cpu.stat: 'key value' per line."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as {controller: path}; the v2 line is under key ''."""
    out = {}
    for line in text.splitlines():
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            out[controller.removeprefix("name=")] = path
    return out


@dataclass(frozen=True)
class MemoryReading:
    usage: int  # everything charged, page cache included
    working_set: int  # usage less inactive file cache (what Docker and Kubernetes show)
    peak: int | None  # high-water mark of usage, where the kernel keeps one


class Cgroup:
    """One cgroup, spread over one directory (v2) or one per controller (v1)."""

    def __init__(self, version: int, dirs: dict[str, Path], relpath: str | None = None,
                 root: Path = ROOT):
        self.version = version
        self.dirs = dirs  # v2: {"": dir}; v1: {controller: dir}
        # Where it is below the root, when known: on v1, an OCI runtime or an engine makes
        # the same path in the hierarchies cvbench does not use (blkio, freezer, systemd...)
        self.relpath, self.root = relpath, root

    # -- creation and placement -------------------------------------------------

    @classmethod
    def create(cls, relpath: str, cpus: float | None = None, memory_bytes: int | None = None,
               pids: int | None = None, root: Path = ROOT) -> "Cgroup":
        version = cgroup_version(root)
        if version == 2:
            _enable_v2_controllers(root, relpath)
            dirs = {"": root / relpath}
        else:
            dirs = {c: root / c / relpath for c in V1_CONTROLLERS}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        group = cls(version, dirs, relpath, root)
        group.limit(cpus, memory_bytes, pids)
        return group

    @classmethod
    def at(cls, relpath: str, root: Path = ROOT) -> "Cgroup":
        """One that exists already (made by someone else, e.g. systemd)."""
        if cgroup_version(root) == 2:
            return cls(2, {"": root / relpath}, relpath, root)
        return cls(1, {c: root / c / relpath for c in V1_CONTROLLERS}, relpath, root)

    def limit(self, cpus: float | None, memory_bytes: int | None, pids: int | None = None) -> None:
        if cpus:
            quota = int(cpus * CFS_PERIOD_US)
            if self.version == 2:
                self._write("", "cpu.max", f"{quota} {CFS_PERIOD_US}")
            else:
                self._write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US))
                self._write("cpu", "cpu.cfs_quota_us", str(quota))
        if memory_bytes:
            if self.version == 2:
                self._write("", "memory.max", str(memory_bytes))
            else:
                self._write("memory", "memory.limit_in_bytes", str(memory_bytes))
        if pids:
            self._write("" if self.version == 2 else "pids", "pids.max", str(pids))

    def enter_argv(self, argv: list[str]) -> list[str]:
        """argv wrapped so the process joins this cgroup before it execs the real program."""
        procs = " ".join(str(self.dirs[c] / "cgroup.procs") for c in self.dirs)
        script = f'for f in {procs}; do echo $$ > "$f" || exit 125; done; exec "$@"'
        return ["/bin/sh", "-c", script, "cvbench-enter", *argv]

    # -- reading ------------------------------------------------------------------

    def memory(self) -> MemoryReading:
        if self.version == 2:
            usage = int(self._read("", "memory.current"))
            stat = parse_keyed(self._read("", "memory.stat"))
            inactive = stat.get("inactive_file", 0)
            peak_text = self._read("", "memory.peak", missing_ok=True)
            peak = int(peak_text) if peak_text else None
        else:
            usage = int(self._read("memory", "memory.usage_in_bytes"))
            stat = parse_keyed(self._read("memory", "memory.stat"))
            inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
            peak = int(self._read("memory", "memory.max_usage_in_bytes"))
        return MemoryReading(usage, max(usage - inactive, 0), peak)

    def cpu_seconds(self) -> float:
        if self.version == 2:
            return parse_keyed(self._read("", "cpu.stat"))["usage_usec"] / 1e6
        return int(self._read("cpuacct", "cpuacct.usage")) / 1e9

    def oom_kills(self) -> int | None:
        """Processes the OOM killer killed in this cgroup and below it (None where the
        kernel keeps no count). v2's memory.events counts the subtree; v1 counts only in
        the cgroup whose limit was hit (a container's, below ours), so v1 sums the tree."""
        if self.version == 2:
            text = self._read("", "memory.events", missing_ok=True)
            return parse_keyed(text).get("oom_kill") if text else None
        counts = []
        for dirpath, _dirs, _files in os.walk(self.dirs["memory"]):
            try:
                counts.append(parse_keyed(Path(dirpath, "memory.oom_control").read_text()).get("oom_kill"))
            except OSError:
                continue
        return sum(counts) if counts and None not in counts else None

    def pids(self) -> list[int]:
        """Every process in this cgroup and the cgroups below it."""
        key = "" if self.version == 2 else "pids" if "pids" in self.dirs else next(iter(self.dirs))
        found = []
        for dirpath, _dirs, _files in os.walk(self.dirs[key]):
            try:
                text = Path(dirpath, "cgroup.procs").read_text()
            except OSError:
                continue
            found.extend(int(p) for p in text.split())
        return found

    # -- removal ------------------------------------------------------------------

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left inside, then remove the directories, deepest first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.version == 2:
                try:  # Linux 5.14+: one write kills the whole tree, even a fork bomb
                    (self.dirs[""] / "cgroup.kill").write_text("1")
                except OSError:
                    pass  # an older kernel, or gone already: the loop below does it
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            busy = False
            for d in self.dirs.values():
                for dirpath, _dirs, _files in sorted(os.walk(d), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(dirpath)
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                            raise
                        busy = True
            if not busy:
                break
            time.sleep(0.05)
        if self.version == 1 and self.relpath is not None:
            remove_everywhere(self.relpath, self.root, max(0.0, deadline - time.monotonic()))

    def exists(self) -> bool:
        return any(d.exists() for d in self.dirs.values())

    def _read(self, controller: str, name: str, missing_ok: bool = False) -> str | None:
        try:
            return (self.dirs[controller] / name).read_text()
        except FileNotFoundError:
            if missing_ok:
                return None
            raise

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.dirs[controller] / name).write_text(value)


def _enable_v2_controllers(root: Path, relpath: str) -> None:
    """v2 hands controllers down level by level: enable them on every ancestor."""
    available = set((root / "cgroup.controllers").read_text().split())
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS if c in available)
    parent = root
    for part in Path(relpath).parts[:-1]:
        (parent / "cgroup.subtree_control").write_text(wanted)
        parent = parent / part
        parent.mkdir(exist_ok=True)
    (parent / "cgroup.subtree_control").write_text(wanted)


def v1_hierarchies(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and os.path.ismount(p))


def remove_everywhere(relpath: str, root: Path = ROOT, timeout: float = 5.0) -> None:
    """relpath's directories in every hierarchy, deepest first, once their processes are
    gone (one still being emptied, by libvirt say, is tried again until timeout)."""
    deadline = time.monotonic() + timeout
    tops = [root] if cgroup_version(root) == 2 else v1_hierarchies(root)
    for top in tops:
        for dirpath, _dirs, _files in sorted(os.walk(top / relpath), key=lambda w: -len(w[0])):
            while True:
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def remove_if_empty(relpath: str, root: Path = ROOT) -> None:
    """Remove cvbench's top cgroup once no run uses it (another run may still)."""
    dirs = [root / relpath] if cgroup_version(root) == 2 else [h / relpath for h in v1_hierarchies(root)]
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            pass
