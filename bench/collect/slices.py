"""Per-instance systemd slices: where an engine that asks systemd for its cgroups (Docker's
systemd driver, libvirt through machined) puts an instance, so that its counters outlive
the scope systemd removes the moment the instance exits."""

from __future__ import annotations

import subprocess

SLICE_PREFIX = "cvbench-"


def instance_slice(instance: str) -> str:
    """The systemd slice of one instance. A dash in a slice name means nesting, so the
    instance's own dashes become underscores: cvbench.slice/cvbench-NAME.slice."""
    return SLICE_PREFIX + instance.removeprefix(SLICE_PREFIX).replace("-", "_") + ".slice"


def slice_path(name: str) -> str:
    """cvbench-a_b.slice -> cvbench.slice/cvbench-a_b.slice (below the cgroup root)."""
    return f"{SLICE_PREFIX.rstrip('-')}.slice/{name}"


def stop_slice(name: str) -> None:
    subprocess.run(["systemctl", "stop", name], capture_output=True, check=False)
