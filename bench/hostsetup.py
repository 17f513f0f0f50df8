"""Bring a host to the point where every runtime kind can run.

On a Debian-family host as root it installs what is missing (the packages each runtime
kind names) and lets each kind set itself up (Docker: runtimes registered, dockerd started);
anywhere else it stops with the exact command to run. `python -m bench.hostsetup`
is what `nox -s bench` and `nox -s tests` call first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.errors import UserError
from bench.runtimes import KINDS

#: Debian package -> a program it provides: the guest image's tools
IMAGE_PACKAGES = {"mmdebstrap": "mmdebstrap", "e2fsprogs": "mke2fs"}


def is_debian_root() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def missing_packages() -> list[str]:
    """The image tools' and every runtime kind's packages whose program is not here."""
    wanted = {**IMAGE_PACKAGES, **{pkg: program for kind in KINDS.values()
                                   for pkg, program in kind.PACKAGES.items()}}
    return [pkg for pkg, program in wanted.items() if not shutil.which(program)
            and not Path("/usr/sbin", program).exists()]


def install_packages(packages: list[str]) -> None:
    command = "apt-get install -y " + " ".join(packages)
    if not is_debian_root():
        raise UserError(f"missing system packages: {', '.join(packages)}",
                        fix=f"sudo apt-get update && sudo {command}")
    print(f"[setup] installing {' '.join(packages)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"{' '.join(argv)} failed:\n{result.stderr[-1500:]}")


def ensure_host() -> None:
    missing = missing_packages()
    if missing:
        install_packages(missing)
    for kind in KINDS.values():
        kind.set_up_host()
    print(f"[setup] host ready: {', '.join(KINDS)} and the image tools set up", flush=True)


def main() -> int:
    try:
        ensure_host()
    except UserError as exc:
        print(f"cvbench setup: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
