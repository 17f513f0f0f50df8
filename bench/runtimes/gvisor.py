"""gVisor as the engine registered it: the platform that intercepts the sandbox's system
calls (ptrace, systrap, kvm) decides much of its cost, so every runsc record names it."""

from __future__ import annotations

import os
import re
import subprocess

_DEFAULT = re.compile(r'-platform string\s*\n\s*.*\(default "([^"]+)"\)')


def platform_of(runtime_config: dict | None) -> str | None:
    """The platform of an OCI runtime as registered with Docker (`docker info` Runtimes,
    from /etc/docker/daemon.json): its --platform argument, else runsc's own default;
    None when the runtime is not runsc."""
    config = runtime_config or {}
    binary = config.get("path") or ""
    if not os.path.basename(binary).startswith("runsc"):
        return None
    args = list(config.get("runtimeArgs") or [])
    for i, arg in enumerate(args):
        name, _, value = arg.lstrip("-").partition("=")
        if name == "platform":
            return value or (args[i + 1] if i + 1 < len(args) else None)
    return default_platform(_flags(binary))


def default_platform(flags: str) -> str | None:
    """The platform runsc uses when none is given, from `runsc flags`."""
    found = _DEFAULT.search(flags)
    return found.group(1) if found else None


def _flags(binary: str) -> str:
    try:
        done = subprocess.run([binary, "flags"], capture_output=True, text=True, timeout=10)
        return done.stdout + done.stderr
    except (OSError, subprocess.SubprocessError):
        return ""
