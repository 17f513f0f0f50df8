"""Debian packages installed on a Debian-family host as root; elsewhere, the command to run."""

from __future__ import annotations

import os
import shutil
import subprocess

from bench.errors import UserError


def is_debian_root() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def install_packages(packages: list[str], recommends: bool = True) -> None:
    flags = [] if recommends else ["--no-install-recommends"]
    command = " ".join(["apt-get install -y", *flags, *packages])
    if not is_debian_root():
        raise UserError(f"missing system packages: {', '.join(packages)}",
                        fix=f"sudo apt-get update && sudo {command}")
    print(f"[setup] installing {' '.join(packages)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *flags, *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"{' '.join(argv)} failed:\n{result.stderr[-1500:]}")
