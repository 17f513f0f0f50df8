"""The uncompressed kernel a PVH boot loads: QEMU jumps straight to its 32-bit entry, with
no firmware real-mode setup and no decompression in the guest. Taken from the image's own
bzImage (its payload, by the boot protocol's header), so the kernel is the same bytes."""

from __future__ import annotations

import lzma
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from bench.errors import UserError

ZSTD, XZ, GZIP = b"\x28\xb5\x2f\xfd", b"\xfd7zXZ", b"\x1f\x8b"


def payload(bzimage: bytes) -> bytes:
    """The compressed kernel inside a bzImage (boot protocol 2.08+: payload_offset/length)."""
    if bzimage[0x202:0x206] != b"HdrS":
        raise UserError("the guest kernel is not a bzImage: no PVH kernel can be taken from it")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return bzimage[start:start + length]


def decompress(data: bytes) -> bytes:
    """The kernel's payload ends with its uncompressed size (4 bytes) after the stream."""
    if data.startswith(ZSTD):
        if not shutil.which("zstd"):
            raise UserError("the guest kernel is zstd-compressed and zstd is not installed",
                            fix="apt-get install zstd")
        result = subprocess.run(["zstd", "-d", "-q", "--long=31", "-c"], input=data[:-4],
                                capture_output=True)
        if result.returncode != 0:
            raise UserError(f"zstd could not unpack the guest kernel: {result.stderr.decode()[-300:]}")
        return result.stdout
    if data.startswith(XZ):
        return lzma.LZMADecompressor().decompress(data)
    if data.startswith(GZIP):
        return zlib.decompressobj(wbits=31).decompress(data)  # stops at the stream's end
    raise UserError(f"the guest kernel's compression ({data[:6].hex()}) is not one cvbench unpacks")


def elf_notes(elf: bytes):
    """(name, type) of every note in a 64-bit ELF's PT_NOTE segments."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, offset, _vaddr, _paddr, size = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        at, end = offset, offset + size
        while at + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", elf, at)
            name = elf[at + 12:at + 12 + namesz].rstrip(b"\0").decode(errors="replace")
            yield name, kind
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4


def has_pvh_entry(elf: bytes) -> bool:
    """XEN_ELFNOTE_PHYS32_ENTRY (18): the kernel has a PVH entry point (CONFIG_PVH)."""
    return elf[:5] == b"\x7fELF\x02" and ("Xen", 18) in set(elf_notes(elf))


def ensure_vmlinux(bzimage: Path, target: Path) -> Path:
    """target, made once from bzimage (atomically: runs may share the image)."""
    if target.exists():
        return target
    elf = decompress(payload(bzimage.read_bytes()))
    if not has_pvh_entry(elf):
        raise UserError(f"{bzimage.name} has no PVH entry point (CONFIG_PVH): boot it with pvh = false")
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_bytes(elf)
    partial.replace(target)
    return target
