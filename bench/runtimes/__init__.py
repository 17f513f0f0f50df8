"""Runtime kinds, found by name through this registry."""

from bench.runtimes.base import Instance, Limits, RunContext, Runtime
from bench.runtimes.docker import DockerRuntime
from bench.runtimes.native import NativeRuntime
from bench.runtimes.qemu import QemuRuntime

KINDS: dict[str, type[Runtime]] = {
    cls.kind: cls for cls in (NativeRuntime, DockerRuntime, QemuRuntime)
}

__all__ = ["KINDS", "Instance", "Limits", "RunContext", "Runtime"]
