"""native: the workload as a plain host process, chrooted into the guest image's root."""

from __future__ import annotations

import shutil
import subprocess
import time

from bench.agent import AGENT_PATH, LineReader
from bench.collect.cgroups import Cgroup
from bench.errors import RuntimeFailure, UserError
from bench.collect.host import du_bytes
from bench.runtimes.base import Limits, ProcessInstance, Runtime, Traits, pipe_chunks, spawn
from bench.units import MiB
from bench.workloads import DISK_DIRS, NO_NEEDS, Needs

# A private mount namespace only, so the mounts below never reach the host's mount table;
# PIDs, network and users stay the host's. The shared root is made read-only there: the
# image every runtime runs must stay the same bytes. /tmp is a tmpfs, as in the VM.
_READ_ONLY_ROOT = 'mount -o bind,ro "$0" "$0" && mount -t tmpfs tmpfs "$0/tmp" && '
# Writable places are host folders bound over the read-only root.
_BIND = 'mount --bind "{host}" "$0{guest}" && '
# The cgroup and the mounts are cvbench's fence around a bare process, which a bare process
# does not pay for: they are made before the clock starts. Told "go" on its standard input,
# the prepared shell execs the agent, and the window is what a plain start is: exec, the
# agent, its workload.
PREPARED = "cvbench: native instance prepared"
_ENTER_ROOT = (f'mount -t proc proc "$0/proc" && echo "{PREPARED}" && read -r _ && '
               'exec chroot "$0" "$1" "$2" </dev/null')
PREPARE_TIMEOUT_S = 30.0
CLOCK_FROM = "exec of the agent (cgroup and mounts made before: startup.prepare_s)"


class NativeRuntime(Runtime):
    kind = "native"
    traits = Traits("process", shares_host_kernel=True)
    HOST_NEEDS = {"native": ("root", "cgroups", "guest image")}

    def check(self) -> None:
        for tool in ("unshare", "chroot", "mount"):
            if not shutil.which(tool):
                raise UserError(f"native: {tool} not found", fix="apt-get install util-linux coreutils")

    def describe(self) -> dict:
        return {**super().describe(), "clock_from": CLOCK_FROM}

    def instance_disk(self, inst: ProcessInstance) -> int:
        """What it owns: the host folders bound into its read-only root."""
        return sum(du_bytes(path) for path in inst.scratch)

    def launch(self, command: str, limits: Limits, instance: str, needs: Needs = NO_NEEDS,
               port: int | None = None) -> ProcessInstance:
        t0 = time.monotonic()
        cgroup = Cgroup.create(self.context.cgroup_path(instance), limits.cpus,
                               limits.memory_mib * MiB, limits.pids)
        inst = self._register(ProcessInstance(name=instance, t_launch=t0, cgroup=cgroup))
        with self._launching(inst):
            binds = ""
            for wanted, target in ((needs.scratch, "root"), (needs.volume_mib, "volume")):
                if wanted:
                    folder = self.context.workdir / f"{instance}-{target}"
                    folder.mkdir()
                    inst.scratch.append(folder)
                    binds += _BIND.format(host=folder, guest=DISK_DIRS[target])
            if needs.scratch or needs.volume_mib:
                inst.tags["disk_backing"] = "host folder (bind mount)"
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    _READ_ONLY_ROOT + binds + _ENTER_ROOT, str(self.context.image.root),
                    AGENT_PATH, command]
            inst.process = spawn(cgroup.enter_argv(argv), stdin=subprocess.PIPE)
            inst.lines = LineReader(pipe_chunks(inst.process), instance)
            inst.lines.wait_for_text(PREPARED, t0 + PREPARE_TIMEOUT_S)
            inst.cpu_before_clock_s = cgroup.cpu_seconds()  # the fence's, not the workload's
            inst.t_launch = time.monotonic()  # the clock starts at "go"
            try:
                inst.process.stdin.write(b"go\n")
                inst.process.stdin.close()
            except BrokenPipeError:
                raise RuntimeFailure(f"{instance}: ended before its start: "
                                     f"{inst.lines.drain()[-600:]}") from None
            inst.phases["startup.prepare_s"] = inst.t_launch - t0
            inst.tags["clock_from"] = CLOCK_FROM
        return inst
