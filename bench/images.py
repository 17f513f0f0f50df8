"""The guest image: one root filesystem built once, exported to every runtime.

recipe -> mmdebstrap root (native chroot) -> rootfs.tar (its sha256 is the image
digest in every record) -> Docker image (imported) and ext4 disk + kernel + initrd
(QEMU). Cached under a content hash of the recipe and the agent.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.agent import AGENT_PATH, agent_script
from bench.errors import UserError

CACHE = Path(os.environ.get("CVBENCH_CACHE", "/var/cache/cvbench"))
DOCKER_REPO = "cvbench/guest"
FORMAT = 2  # bump when the layout of a cached image changes

RECIPE = {
    "suite": "trixie",
    "variant": "minbase",
    # busybox: poweroff and small tools for the agent; sysbench: cpu workload;
    # the cloud kernel: small, virtio built for VMs, its initrd made by initramfs-tools;
    # fio: disk; iperf3: net; redis-server (+ redis-tools: redis-benchmark): redis. The
    # host-side clients run from this root too (chroot), so both ends are the same bytes.
    "packages": ["busybox", "sysbench", "linux-image-cloud-amd64", "fio", "iperf3",
                 "redis-server"],
    # Documentation and translations are not needed by any workload.
    "dpkg_options": [
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/locale/*",
    ],
}


def recipe_hash() -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"recipe": RECIPE, "format": FORMAT}, sort_keys=True).encode())
    h.update(agent_script())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class GuestImage:
    key: str  # recipe hash: the cache folder's name
    digest: str  # sha256 of rootfs.tar: the same bytes in every runtime
    directory: str
    built_at: float
    build_s: float
    kernel_release: str

    @property
    def root(self) -> Path:
        return Path(self.directory) / "rootfs"

    @property
    def tarball(self) -> Path:
        return Path(self.directory) / "rootfs.tar"

    @property
    def disk(self) -> Path:
        return Path(self.directory) / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.kernel_release}"

    @property
    def initrd(self) -> Path:
        return self.root / "boot" / f"initrd.img-{self.kernel_release}"

    @property
    def docker_tag(self) -> str:
        return f"{DOCKER_REPO}:{self.key}"


def _say(message: str) -> None:
    print(f"[image] {message}", flush=True)


def run_step(argv: list[str], what: str) -> None:
    try:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed: needed to {what}",
                        fix="apt-get install mmdebstrap e2fsprogs") from None
    except subprocess.CalledProcessError as exc:
        tail = exc.stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise UserError(f"{what} failed ({argv[0]} exit {exc.returncode}):\n" + "\n".join(tail)) from None


def load_cached(key: str | None = None, cache: Path = CACHE) -> GuestImage | None:
    meta = cache / (key or recipe_hash()) / "image.json"
    if not meta.exists():
        return None
    return GuestImage(**json.loads(meta.read_text()))


def ensure_image(cache: Path = CACHE) -> GuestImage:
    """The cached image for the current recipe, building it first if needed."""
    key = recipe_hash()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the second waits and reuses
        image = load_cached(key, cache)
        if image:
            return image
        return _build(key, cache)


def _build(key: str, cache: Path) -> GuestImage:
    if os.geteuid() != 0:
        raise UserError("building the guest image needs root (mmdebstrap, mke2fs, chroot)",
                        fix="run as root, e.g. sudo cvbench images build")
    start = time.monotonic()
    with cache_entry(cache, key) as work:
        root = work / "rootfs"
        _say(f"building {key}: Debian {RECIPE['suite']} with {', '.join(RECIPE['packages'])} "
             "(about a minute)")
        argv = ["mmdebstrap", f"--variant={RECIPE['variant']}", "--quiet",
                "--include=" + ",".join(RECIPE["packages"])]
        argv += [f"--dpkgopt={opt}" for opt in RECIPE["dpkg_options"]]
        argv += [RECIPE["suite"], str(root)]
        run_step(argv, "build the guest root with mmdebstrap")

        agent = root / AGENT_PATH.lstrip("/")
        agent.parent.mkdir(parents=True, exist_ok=True)
        agent.write_bytes(agent_script())
        agent.chmod(0o755)
        # The disk workload's volume target: natively a host folder is bound here, and a
        # read-only shared root could not grow the mount point later.
        (root / "mnt" / "volume").mkdir(parents=True, exist_ok=True)
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise UserError("the guest root has no kernel in /boot")
        release = kernels[-1].name.removeprefix("vmlinuz-")
        # Readable kernel and initrd: QEMU reads them directly.
        for f in (root / "boot").iterdir():
            f.chmod(0o644)

        _say("packing rootfs.tar (the digest every record carries)")
        tarball = work / "rootfs.tar"
        run_step(["tar", "-C", str(root), "--sort=name", "--numeric-owner", "--xattrs",
              "-cf", str(tarball), "."], "pack the guest root")
        digest = "sha256:" + _sha256(tarball)

        _say("making the VM disk (ext4)")
        size_mib = du_mib(root) * 3 // 2 + 256
        run_step(["mke2fs", "-q", "-t", "ext4", "-L", "cvbench", "-d", str(root),
              str(work / "disk.raw"), f"{size_mib}M"], "make the VM disk with mke2fs")

        final = cache / key
        image = GuestImage(key=key, digest=digest, directory=str(final), built_at=time.time(),
                           build_s=round(time.monotonic() - start, 1), kernel_release=release)
        (work / "image.json").write_text(json.dumps(asdict(image), indent=2))
    _say(f"built {key} in {image.build_s:.0f} s, {digest[:19]}")
    return image


@contextmanager
def cache_entry(cache: Path, key: str):
    """A folder to build the cache entry `key` in. It becomes cache/key only when the build
    finishes, so a failed or interrupted build leaves no half-built entry behind."""
    work = cache / f".build-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work
        final = cache / key
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_docker_image(client, image: GuestImage) -> str:
    """The image imported into the engine (never pulled); returns Docker's image id."""
    import docker.errors

    try:
        return client.images.get(image.docker_tag).id
    except docker.errors.ImageNotFound:
        pass
    _say(f"importing {image.docker_tag} into Docker")
    with open(image.tarball, "rb") as f:
        client.api.import_image_from_data(f, repository=DOCKER_REPO, tag=image.key)
    return client.images.get(image.docker_tag).id


def list_images(cache: Path = CACHE) -> list[GuestImage]:
    if not cache.exists():
        return []
    return [img for d in sorted(cache.iterdir()) if (img := load_cached(d.name, cache))]


def prune_images(keep_current: bool = True, cache: Path = CACHE) -> list[str]:
    """Remove cached images (all but the current recipe's unless told otherwise)."""
    current = recipe_hash()
    removed = []
    for img in list_images(cache):
        if keep_current and img.key == current:
            continue
        shutil.rmtree(img.directory)
        _remove_docker_image(img.docker_tag)
        removed.append(img.key)
    for leftover in cache.glob(".build-*") if cache.exists() else []:
        shutil.rmtree(leftover, ignore_errors=True)
    return removed


def _remove_docker_image(tag: str) -> None:
    """The imported copy goes with the cache entry, where an engine answers."""
    try:
        import docker

        docker.from_env(timeout=30).images.remove(tag, force=True)
    except Exception:
        pass  # no engine, or never imported: nothing to remove


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def du_mib(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])
