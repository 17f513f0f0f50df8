"""libvirtd on this host: its Python binding built for cvbench's interpreter, and the daemon
answering (started here when no service manager runs it; its default NAT network stays off)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from bench.apt import install_packages
from bench.errors import UserError
from bench.runtimes.base import wait_for_daemon

URI = "qemu:///system"
SOCKET = Path("/run/libvirt/libvirt-sock")
LOG = Path("/var/log/cvbench-libvirtd.log")
# What building libvirt-python needs: the C API's headers and a compiler
BUILD_PACKAGES = {"libvirt-dev": "/usr/include/libvirt/libvirt.h", "pkg-config": "/usr/bin/pkg-config",
                  "gcc": "/usr/bin/gcc"}
MANAGER_PROCESSES = ("libvirtd", "virtlogd")


def binding():
    """The libvirt module, or a UserError that says how to get it."""
    try:
        import libvirt
    except ImportError:
        raise UserError("the Python binding (libvirt-python) is not installed",
                        fix="python -m bench.hostsetup (as root: builds it for this Python)") from None
    return libvirt


def connect():
    libvirt = binding()
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError as exc:
        raise UserError(f"cannot connect to {URI}: {exc}",
                        fix="python -m bench.hostsetup (starts libvirtd)") from None


def version_text(number: int) -> str:
    """libvirt's version numbers: 9000000 -> 9.0.0."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def install_binding() -> None:
    """libvirt-python has no wheels: build it against the host's libvirt, once."""
    try:
        import libvirt  # noqa: F401
        return
    except ImportError:
        pass
    wanted = [pkg for pkg, path in BUILD_PACKAGES.items() if not Path(path).exists()]
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        wanted.append("python3-dev")
    if wanted:
        install_packages(wanted)
    print("[setup] building libvirt-python for this Python", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "libvirt-python"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"pip install libvirt-python failed:\n{result.stderr[-1500:]}",
                        fix="apt-get install libvirt-dev pkg-config gcc python3-dev")


def answers() -> bool:
    try:
        connect().close()
        return True
    except UserError:
        return False


def start_libvirtd(timeout: float = 30.0) -> None:
    if Path("/run/systemd/system").exists() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "start", "libvirtd"], check=False)
    else:
        print(f"[setup] starting virtlogd and libvirtd (log: {LOG})", flush=True)
        Path("/var/log/libvirt").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{LOG}")
        for daemon in ("virtlogd", "libvirtd"):
            if subprocess.run(["pidof", daemon], capture_output=True).returncode != 0:
                subprocess.run([daemon, "-d"], env=env, check=False, stdin=subprocess.DEVNULL)
    wait_for_daemon(answers, f"libvirtd on {URI}", LOG, timeout)


def ensure_libvirtd() -> None:
    """The binding installed and libvirtd answering."""
    if os.geteuid() != 0:
        if not answers():
            raise UserError(f"no libvirtd answers on {SOCKET}", fix="sudo python -m bench.hostsetup")
        return
    install_binding()
    if not answers():
        start_libvirtd()
