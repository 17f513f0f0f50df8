"""The PVH kernel: taken from a bzImage's payload, checked for its PVH entry note."""

import gzip
import lzma
import struct

import pytest

from bench.errors import UserError
from bench.runtimes.qemu import host_tsc_khz
from bench.vmlinux import decompress, elf_notes, has_pvh_entry, payload

# /proc/cpuinfo of this host (a KVM guest on AMD EPYC), cut to the lines read
CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
cpu MHz\t\t: 2445.430
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov constant_tsc nonstop_tsc tsc_known_freq
"""


def elf_with_notes(notes: list[tuple[bytes, int]]) -> bytes:
    """A 64-bit ELF with one PT_NOTE segment holding these (name, type) notes."""
    body = b""
    for name, kind in notes:
        name += b"\0"
        desc = b"\0" * 8
        body += struct.pack("<III", len(name), len(desc), kind)
        body += name.ljust((len(name) + 3) // 4 * 4, b"\0") + desc
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    return bytes(header) + phdr + body


def bzimage_with(compressed: bytes) -> bytes:
    setup_sects = 3
    image = bytearray((setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", image, 0x248, 16, len(compressed))
    return bytes(image) + b"\0" * 16 + compressed + b"trailer"


def test_a_kernel_with_the_pvh_note_boots_by_pvh():
    assert has_pvh_entry(elf_with_notes([(b"Xen", 6), (b"Xen", 18)]))
    assert not has_pvh_entry(elf_with_notes([(b"Xen", 6), (b"Linux", 18)]))
    assert list(elf_notes(elf_with_notes([(b"GNU", 3)]))) == [("GNU", 3)]


@pytest.mark.parametrize("pack", [lambda b: gzip.compress(b) + b"\x10\0\0\0",
                                  lambda b: lzma.compress(b, format=lzma.FORMAT_XZ) + b"\x10\0\0\0"])
def test_the_payload_is_found_by_the_boot_header_and_unpacked(pack):
    elf = elf_with_notes([(b"Xen", 18)])
    assert decompress(payload(bzimage_with(pack(elf)))) == elf


def test_not_a_bzimage_says_so():
    with pytest.raises(UserError, match="not a bzImage"):
        payload(b"\0" * 4096)


def test_the_guest_is_told_the_hosts_tsc_rate_only_where_it_is_constant():
    assert host_tsc_khz(CPUINFO) == 2445430
    assert host_tsc_khz(CPUINFO.replace("constant_tsc ", "")) is None
