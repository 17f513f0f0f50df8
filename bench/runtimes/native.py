"""native: the workload as a plain host process, chrooted into the guest image's root."""

from __future__ import annotations

import shutil
import time

from bench.agent import AGENT_PATH, LineReader
from bench.collect.cgroups import Cgroup
from bench.errors import UserError
from bench.runtimes.base import MiB, Limits, ProcessInstance, Runtime, pipe_chunks, spawn

# A private mount namespace only, so /proc can be mounted inside the shared root
# without touching the host's mount table; PIDs, network and users stay the host's.
_ENTER_ROOT = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$1" "$2"'


class NativeRuntime(Runtime):
    kind = "native"

    def check(self) -> None:
        for tool in ("unshare", "chroot", "mount"):
            if not shutil.which(tool):
                raise UserError(f"native: {tool} not found", fix="apt-get install util-linux coreutils")

    def launch(self, command: str, limits: Limits, instance: str) -> ProcessInstance:
        t0 = time.monotonic()
        cgroup = Cgroup.create(self.context.cgroup_path(instance), limits.cpus,
                               limits.memory_mib * MiB)
        inst = self._register(ProcessInstance(name=instance, t_launch=t0, cgroup=cgroup))
        with self._launching(inst):
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER_ROOT,
                    str(self.context.image.root), AGENT_PATH, command]
            inst.process = spawn(cgroup.enter_argv(argv))
            inst.lines = LineReader(pipe_chunks(inst.process), instance)
            inst.phases["startup.spawn_s"] = time.monotonic() - t0
        return inst
