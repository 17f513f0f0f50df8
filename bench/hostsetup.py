"""Bring a host to the point where every runtime kind can run.

On a Debian-family host as root it installs what is missing (the packages each runtime
kind names) and lets each kind set itself up (Docker: runtimes registered, dockerd started);
anywhere else it stops with the exact command to run. `python -m bench.hostsetup`
is what `nox -s bench` and `nox -s tests` call first.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.apt import install_packages
from bench.errors import UserError
from bench.runtimes import KINDS

#: Debian package -> a program it provides: the guest image's tools
IMAGE_PACKAGES = {"mmdebstrap": "mmdebstrap", "e2fsprogs": "mke2fs"}


def missing_packages() -> list[str]:
    """The image tools' and every runtime kind's packages whose program is not here."""
    wanted = {**IMAGE_PACKAGES, **{pkg: program for kind in KINDS.values()
                                   for pkg, program in kind.PACKAGES.items()}}
    return [pkg for pkg, program in wanted.items() if not shutil.which(program)
            and not Path("/usr/sbin", program).exists()]


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
