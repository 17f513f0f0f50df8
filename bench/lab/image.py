"""The lab image: a Debian root with systemd, Docker, runsc, crun, QEMU and the
project's Python dependencies, plus a copy of the guest image, on one ext4 disk.

Cached under a hash of its recipe and the guest image it carries, like the guest
image itself. Everything is prepared on the host (the lab has no network): Python
wheels are downloaded here and installed into the lab's venv by chroot.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.errors import UserError
from bench.runtimes.dockerd import write_oci_runtimes
from bench.images import CACHE, GuestImage, cache_entry, du_mib, ensure_image, run_step

FORMAT = 1  # bump when the layout or the files written into the lab change
VENV = "/opt/cvbench"
PROJECT = "/project"  # where the host's project tree is mounted (9p, tag "project")
PYTHON_VERSION = "3.11"  # bookworm's python3: the wheels are fetched for it

RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    # systemd as init (cgroup v2, Docker's systemd driver); apparmor: dockerd refuses to
    # start containers without apparmor_parser on an AppArmor kernel; udev loads kvm_amd;
    # the full kernel has 9p (the cloud one does not).
    "packages": ["systemd", "systemd-sysv", "dbus", "udev", "kmod", "apparmor", "procps",
                 "iproute2", "e2fsprogs", "docker.io", "runsc", "crun", "criu", "qemu-system-x86",
                 "qemu-utils", "linux-image-amd64", "python3", "python3-venv"],
    # test extras the lab needs (the notebook ones are not run there)
    "test_packages": ["pytest", "pytest-timeout"],
}

# Started by systemd after Docker: runs the job the host left in the shared tree, then
# powers the lab off (bench/lab/inside.sh is read from the share, so it needs no rebuild).
UNIT = f"""[Unit]
Description=cvbench lab job
After=docker.service multi-user.target
Wants=docker.service
RequiresMountsFor={PROJECT}

[Service]
Type=oneshot
ExecStart=/bin/sh {PROJECT}/bench/lab/inside.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""
FSTAB = f"project {PROJECT} 9p trans=virtio,version=9p2000.L,msize=262144,cache=none,nofail 0 0\n"


@dataclass(frozen=True)
class LabImage:
    key: str
    directory: str
    guest_key: str
    built_at: float
    build_s: float
    kernel_release: str

    @property
    def disk(self) -> Path:
        return Path(self.directory) / "lab.raw"

    @property
    def kernel(self) -> Path:
        return Path(self.directory) / f"vmlinuz-{self.kernel_release}"

    @property
    def initrd(self) -> Path:
        return Path(self.directory) / f"initrd.img-{self.kernel_release}"


def python_requirements(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return sorted(project["dependencies"] + RECIPE["test_packages"])


def lab_key(guest: GuestImage, requirements: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"recipe": RECIPE, "format": FORMAT, "guest": guest.key,
                         "requirements": requirements, "unit": UNIT, "fstab": FSTAB},
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


def ensure_lab_image(project: Path, cache: Path = CACHE) -> LabImage:
    guest = ensure_image(cache)
    requirements = python_requirements(project / "pyproject.toml")
    key = "lab-" + lab_key(guest, requirements)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta = cache / key / "lab.json"
        if meta.exists():
            return LabImage(**json.loads(meta.read_text()))
        return _build(key, guest, requirements, cache)


def _say(message: str) -> None:
    print(f"[lab] {message}", flush=True)


def _build(key: str, guest: GuestImage, requirements: list[str], cache: Path) -> LabImage:
    if os.geteuid() != 0:
        raise UserError("building the lab image needs root (mmdebstrap, chroot, mke2fs)")
    start = time.monotonic()
    with cache_entry(cache, key) as work:
        wheels = work / "wheels"
        _say(f"downloading wheels for Python {PYTHON_VERSION}: {', '.join(requirements)}")
        _download_wheels(requirements, wheels)
        root = work / "root"
        _say(f"building {key}: Debian {RECIPE['suite']} with {', '.join(RECIPE['packages'])} "
             "(a few minutes)")
        install = (f'chroot "$1" python3 -m venv {VENV} && chroot "$1" {VENV}/bin/pip install '
                   f'--quiet --no-index --find-links /tmp/wheels ' + " ".join(f"'{r}'" for r in requirements))
        run_step(["mmdebstrap", f"--variant={RECIPE['variant']}", "--quiet",
              "--include=" + ",".join(RECIPE["packages"]),
              "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
              "--dpkgopt=path-exclude=/usr/share/locale/*",
              f"--customize-hook=cp -r {wheels} \"$1\"/tmp/wheels",
              f"--customize-hook={install}",
              "--customize-hook=rm -rf \"$1\"/tmp/wheels",
              RECIPE["suite"], str(root)], "build the lab root with mmdebstrap")
        release = _configure(root)
        _say(f"copying guest image {guest.key} into the lab")
        target = root / "var/cache/cvbench" / guest.key
        target.parent.mkdir(parents=True, exist_ok=True)
        # cp -a, not copytree: the guest root holds device nodes (reading /dev/full never ends)
        run_step(["cp", "-a", "--reflink=auto", guest.directory, str(target)], "copy the guest image")
        (target / "image.json").write_text(json.dumps(
            {**asdict(guest), "directory": f"/var/cache/cvbench/{guest.key}"}, indent=2))
        for name in (f"vmlinuz-{release}", f"initrd.img-{release}"):
            shutil.copy2(root / "boot" / name, work / name)
            (work / name).chmod(0o644)
        _say("making the lab disk (ext4)")
        # Room for Docker's copy of the guest image and what the runs write.
        size_mib = du_mib(root) + 6144
        run_step(["mke2fs", "-q", "-t", "ext4", "-L", "cvbench-lab", "-d", str(root),
              str(work / "lab.raw"), f"{size_mib}M"], "make the lab disk with mke2fs")
        shutil.rmtree(root)
        shutil.rmtree(wheels)
        image = LabImage(key=key, directory=str(cache / key), guest_key=guest.key, built_at=time.time(),
                         build_s=round(time.monotonic() - start, 1), kernel_release=release)
        (work / "lab.json").write_text(json.dumps(asdict(image), indent=2))
    _say(f"built {key} in {image.build_s:.0f} s")
    return image


def _download_wheels(requirements: list[str], into: Path) -> None:
    """Binary wheels for the lab's Python, whatever Python runs here."""
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64")]
    run_step([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
          f"--python-version={PYTHON_VERSION}", "--implementation=cp",
          f"--abi=cp{PYTHON_VERSION.replace('.', '')}", "--abi=abi3", "--abi=none", *platforms,
          "--dest", str(into), *requirements], "download the lab's Python wheels")


def _configure(root: Path) -> str:
    """Files that make the root a lab: mounts, the job unit, the engine's runtimes."""
    (root / "etc/fstab").write_text(FSTAB)
    (root / PROJECT.lstrip("/")).mkdir(exist_ok=True)
    (root / "etc/hostname").write_text("cvbench-lab\n")
    unit = root / "etc/systemd/system/cvbench-lab.service"
    unit.write_text(UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "cvbench-lab.service").symlink_to("/etc/systemd/system/cvbench-lab.service")
    # No login on the console: the job owns it.
    (root / "etc/systemd/system/serial-getty@ttyS0.service").symlink_to("/dev/null")
    (root / "etc/systemd/system/getty@tty1.service").symlink_to("/dev/null")
    write_oci_runtimes(root / "etc/docker/daemon.json", crun=True)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise UserError("the lab root has no kernel in /boot")
    return kernels[-1].name.removeprefix("vmlinuz-")
