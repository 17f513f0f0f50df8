"""Runtime kinds, found by name through this registry: a new kind is one module here and
one line below."""

from bench.runtimes.base import Instance, Limits, RunContext, Runtime, Traits
from bench.runtimes.docker import DockerRuntime
from bench.runtimes.native import NativeRuntime
from bench.runtimes.oci import OciRuntime
from bench.runtimes.qemu import QemuRuntime

KINDS: dict[str, type[Runtime]] = {
    cls.kind: cls for cls in (NativeRuntime, DockerRuntime, OciRuntime, QemuRuntime)
}


def traits_of(kind: str, options: dict | None = None) -> Traits | None:
    """What a runtime of this kind is; None for a kind this version does not know (a record
    from elsewhere)."""
    cls = KINDS.get(kind)
    return cls.traits_for(options or {}) if cls else None


def is_bare_process(kind: str) -> bool:
    """A kind that runs the workload as a plain host process: the baseline of overheads."""
    traits = traits_of(kind)
    return traits is not None and traits.isolation == "process"


__all__ = ["KINDS", "Instance", "Limits", "RunContext", "Runtime", "Traits", "is_bare_process",
           "traits_of"]
