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
#: Asked for by flag: what the tests open the report with (--tests), what the harness
#: benchmark times cvbench against (--harness)
FLAG_PACKAGES = {"--tests": {"chromium": "chromium", "chromium-driver": "chromedriver"},
                 "--harness": {"hyperfine": "hyperfine"}}


def missing_packages(recommends: bool | None = None) -> list[str]:
    """The image tools' and every runtime kind's packages whose program is not here (of
    the kinds that install with apt's recommended packages, or without, or all: None)."""
    wanted = {**IMAGE_PACKAGES, **{pkg: program for kind in KINDS.values()
                                   for pkg, program in kind.PACKAGES.items()}}
    kinds_of = {pkg: kind for kind in KINDS.values() for pkg in kind.PACKAGES}
    return [pkg for pkg, program in wanted.items() if not shutil.which(program)
            and not Path("/usr/sbin", program).exists()
            and (recommends is None or getattr(kinds_of.get(pkg), "RECOMMENDS", True) == recommends)]


def ensure_host(flags: tuple[str, ...] = ()) -> None:
    for recommends in (True, False):
        if missing := missing_packages(recommends):
            install_packages(missing, recommends)
    wanted = {p: program for flag in flags for p, program in FLAG_PACKAGES[flag].items()}
    if missing := [p for p, program in wanted.items() if not shutil.which(program)]:
        install_packages(missing)
    for kind in KINDS.values():
        kind.set_up_host()
    print(f"[setup] host ready: {', '.join(KINDS)} and the image tools set up", flush=True)


def main() -> int:
    try:
        ensure_host(tuple(flag for flag in FLAG_PACKAGES if flag in sys.argv[1:]))
    except UserError as exc:
        print(f"cvbench setup: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
