"""Runtime kinds, found by name through this registry: a new kind is one module here and
one line below."""

from bench.runtimes.base import Instance, Limits, RunContext, Runtime, Traits
from bench.runtimes.docker import DockerRuntime
from bench.runtimes.libvirt import LibvirtRuntime
from bench.runtimes.native import NativeRuntime
from bench.runtimes.oci import OciRuntime
from bench.runtimes.podman import PodmanRuntime
from bench.runtimes.qemu import QemuRuntime

KINDS: dict[str, type[Runtime]] = {
    cls.kind: cls for cls in (NativeRuntime, DockerRuntime, PodmanRuntime, OciRuntime, QemuRuntime,
                               LibvirtRuntime)
}


def traits_of(kind: str, options: dict | None = None) -> Traits | None:
    """What a runtime of this kind is; None for a kind this version does not know (a record
    from elsewhere)."""
    cls = KINDS.get(kind)
    return cls.traits_for(options or {}) if cls else None


def phase_labels() -> dict[str, str]:
    """Every kind's startup phases, in the order they happen: metric -> what it covers (the
    labels of kinds that share a phase metric, joined)."""
    labels: dict[str, list[str]] = {}
    for kind in KINDS.values():
        for metric, label in kind.traits.phases:
            labels.setdefault(metric, [])
            if label not in labels[metric]:
                labels[metric].append(label)
    return {metric: " / ".join(names) for metric, names in labels.items()}


def is_bare_process(kind: str) -> bool:
    """A kind that runs the workload as a plain host process: the baseline of overheads."""
    traits = traits_of(kind)
    return traits is not None and traits.isolation == "process"


__all__ = ["KINDS", "Instance", "Limits", "RunContext", "Runtime", "Traits", "is_bare_process",
           "phase_labels", "traits_of"]
