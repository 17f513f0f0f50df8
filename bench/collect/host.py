"""The host as a whole, read from /proc and the file system: memory available, the page
cache, disk usage. What the modes that measure instances side by side need."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> bytes per key (values are in kB; HugePages_* counts are kept as is)."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return out


def mem_available(path: str = "/proc/meminfo") -> int:
    return parse_meminfo(Path(path).read_text())["MemAvailable"]


def drop_caches() -> None:
    """sync, then drop the page cache, dentries and inodes, so MemAvailable compares like
    with like before and after (gVisor's density method)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass  # not root, or a container without write access: the delta is noisier


# -- disk --------------------------------------------------------------------------------------


def du_bytes(path: Path) -> int:
    """Allocated bytes under path (what `du -s -B1` reports: blocks, hard links counted once)."""
    path = Path(path)
    seen: set[tuple[int, int]] = set()
    total = 0
    st = os.lstat(path)
    if not path.is_dir() or path.is_symlink():
        return st.st_blocks * 512
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            try:
                st = os.lstat(os.path.join(top, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


def run_text(argv: list[str], timeout: float = 60) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=timeout).stdout
