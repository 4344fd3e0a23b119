"""Dumps written by ``kdumpling`` (PyPI), an ELF and kdump-compressed writer that shares no
code or author with kdiag's reader or its test writer (tests/vmcore/synthdump.py).

Its ELF files read back page for page (partial last pages too, as bytes then zeros); its
big-endian machines are refused by name. Its kdump-compressed files are refused, and rightly:
kdumpling 0.4 writes the blocks of *one* bitmap in ``bitmap_blocks`` and places the 2nd bitmap
that far after the 1st, whereas makedumpfile writes the blocks of *both* (diskdump_mod.h:
"Size of Memory bitmap in block"; the makedumpfile split sets in test_split.py have 6 for a
98,269-pfn machine, 3 blocks per bitmap), which crash's diskdump.c and libkdumpfile also read
as the total: libkdumpfile 0.5.1 fails on the same files ("Out-of-bounds PFN", "Wrong page
size: 0"), checked when this test was written.  Read as makedumpfile's, the count is odd, or
too small to cover ``max_mapnr``: kdiag says so rather than read the wrong bitmap.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from kdumpling import CompressionType, KdumpBuilder, OutputFormat

import kdiag.vmcore
from kdiag.errors import NotACrashDump, PageNotPresent, UnsupportedDump

PAGE = 4096
VMCOREINFO = "OSRELEASE=6.1.0-kdumpling\nPAGESIZE=4096\nCRASHTIME=1795327416\n"


def _memory(seed: int) -> dict[int, bytes]:
    """Segments by physical address: random pages, a zero page, a partial last page."""
    rng = random.Random(seed)
    first = rng.randbytes(5 * PAGE) + bytes(PAGE) + rng.randbytes(PAGE)
    second = rng.randbytes(2 * PAGE) + b"\x5a" * 0x234  # ends inside a page
    return {0x100000: first, 0x4000000: second}


def _build(tmp_path: Path, arch: str, fmt: OutputFormat, **write: object) -> tuple[Path, dict]:
    memory = _memory(len(arch) + int(fmt))
    builder = KdumpBuilder(arch=arch)
    builder.set_vmcoreinfo(VMCOREINFO)
    for paddr, data in memory.items():
        builder.add_memory_segment(phys_addr=paddr, data=data)
    builder.add_cpu_context(cpu_id=0, pid=4242)
    builder.add_cpu_context(cpu_id=1, pid=7)
    path = tmp_path / f"{arch}-{fmt.name}"
    builder.write(str(path), format=fmt, **write)
    return path, memory


@pytest.mark.parametrize(("arch", "name"), [("x86_64", "x86_64"), ("aarch64", "arm64")])
def test_elf_dumps_read_back_page_for_page(tmp_path: Path, arch: str, name: str) -> None:
    path, memory = _build(tmp_path, arch, OutputFormat.ELF)
    with kdiag.vmcore.open(path) as dump:
        assert (dump.format, dump.arch, dump.complete) == ("elf", name, True)
        assert dump.vmcoreinfo.osrelease == "6.1.0-kdumpling"
        assert [(c.cpu, c.pid) for c in dump.cpus] == [(0, 4242), (1, 7)]
        assert dump.crash_time is not None
        assert int(dump.crash_time.timestamp()) == 1_795_327_416
        for paddr, data in memory.items():
            assert dump.read_phys(paddr, len(data)) == data
            tail = -len(data) % PAGE
            if tail:
                end = paddr + len(data)
                assert dump.read_phys(end, tail) == bytes(tail)  # the rest of a partial page
        with pytest.raises(PageNotPresent):
            dump.read_phys(0x4000000 + 3 * PAGE, 1)  # past the segment's last page
        with pytest.raises(PageNotPresent):
            dump.read_phys(0, 8)


def test_a_little_endian_ppc64_elf_opens_without_translation(tmp_path: Path) -> None:
    path, memory = _build(tmp_path, "ppc64le", OutputFormat.ELF)
    with kdiag.vmcore.open(path) as dump:
        assert dump.arch == "ppc64"
        assert dump.read_phys(0x100000, 64) == memory[0x100000][:64]
        with pytest.raises(UnsupportedDump, match="ppc64"):
            dump.read_virt(0xC000000000000000, 8)


@pytest.mark.parametrize("arch", ["s390x", "ppc64"])
@pytest.mark.parametrize("fmt", [OutputFormat.ELF, OutputFormat.KDUMP_COMPRESSED])
def test_big_endian_dumps_are_refused_by_name(tmp_path: Path, arch: str, fmt: OutputFormat) -> None:
    path, _ = _build(tmp_path, arch, fmt)
    container = "ELF64" if fmt == OutputFormat.ELF else "kdump-compressed"
    with pytest.raises(
        UnsupportedDump, match=f"{container} dump of a 64-bit big-endian {arch} machine"
    ):
        kdiag.vmcore.open(path)


@pytest.mark.parametrize(
    "compression", [CompressionType.ZLIB, CompressionType.ZSTD, CompressionType.NONE]
)
def test_kdump_files_with_one_bitmaps_block_count_are_refused(
    tmp_path: Path, compression: CompressionType
) -> None:
    path, _ = _build(tmp_path, "x86_64", OutputFormat.KDUMP_COMPRESSED, compression=compression)
    with pytest.raises(NotACrashDump, match=r"bitmap_blocks \d+ is not an even count|cannot cover"):
        kdiag.vmcore.open(path)
