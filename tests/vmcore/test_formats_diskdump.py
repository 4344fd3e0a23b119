"""kdump-compressed files: every header version, every codec, incomplete and corrupt files."""

import os
import struct
import sys

import pytest

import kdiag.vmcore
from kdiag.errors import (
    CorruptPage,
    NotACrashDump,
    PageNotPresent,
    TruncatedDump,
    UnsupportedDump,
)
from kdiag.vmcore import compression
from kdiag.vmcore.formats import bitmap
from tests.vmcore.synthdump import PAGE, KdumpSpec, build_kdump, note, prstatus


def _page(pfn: int, kind: str = "text") -> bytes:
    if kind == "random":
        return os.urandom(PAGE)
    return (f"page {pfn:#x} ".encode() * 1000)[:PAGE]


def _write(tmp_path, data: bytes, name: str = "vmcore"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


PAGES = {1: _page(1), 2: _page(2), 7: _page(7), 40: _page(40, "random"), 200: _page(200)}


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("codec", ["zlib", "lzo", "snappy", "zstd", "none"])
def test_every_header_version_and_codec_reads_back(tmp_path, version, codec):
    notes = note("CORE", 1, prstatus(42, {"rip": 0xFFFFFFFF81000000, "rsp": 0x1000}))
    spec = KdumpSpec(
        pages=PAGES,
        version=version,
        codec=codec,
        ram=set(range(256)) - {100, 101},
        notes=notes + note("VMCOREINFO", 0, b"OSRELEASE=from-note\n"),
        eraseinfo=b"filter: erased mm_struct\n" if version >= 5 else b"",
    )
    with kdiag.vmcore.open(_write(tmp_path, build_kdump(spec))) as dump:
        assert dump.format == "kdump"
        assert dump.header_version == version
        assert dump.compression == codec
        assert dump.complete
        for pfn, page in PAGES.items():
            assert dump.read_phys(pfn * PAGE, PAGE) == page
        # A range across two dumped pages.
        assert dump.read_phys(2 * PAGE - 10, 20) == PAGES[1][-10:] + PAGES[2][:10]
        with pytest.raises(PageNotPresent, match="excluded"):
            dump.read_phys(3 * PAGE, 8)
        assert dump.read_phys(3 * PAGE - 2, 4, zero_excluded=True) == PAGES[2][-2:] + bytes(2)
        with pytest.raises(PageNotPresent, match="hole"):
            dump.read_phys(100 * PAGE, 8)
        with pytest.raises(PageNotPresent, match="beyond"):
            dump.read_phys(256 * PAGE, 8)
        assert dump.dump_level == 31
        assert dump.utsname is not None
        assert dump.utsname.release == "6.1.0-synth"
        assert dump.ram_in_dump_bytes == 254 * PAGE
        if version >= 3:
            assert dump.vmcoreinfo.osrelease == "6.1.0-synth"
        else:
            assert dump.vmcoreinfo.raw == {}
        if version >= 4:
            assert [(c.cpu, c.pid, c.registers["rsp"]) for c in dump.cpus] == [(0, 42, 0x1000)]
        else:
            assert dump.cpus == ()
        assert dump.eraseinfo == ("filter: erased mm_struct\n" if version >= 5 else None)


def test_vmcoreinfo_falls_back_to_the_note(tmp_path):
    spec = KdumpSpec(pages=PAGES, vmcoreinfo=b"", notes=note("VMCOREINFO", 0, b"PAGESIZE=4096\n"))
    with kdiag.vmcore.open(_write(tmp_path, build_kdump(spec))) as dump:
        assert dump.vmcoreinfo.pagesize == 4096


@pytest.mark.parametrize("keep", [True, False])
def test_a_sparse_bitmap_ranks_across_many_blocks(tmp_path, monkeypatch, keep):
    if not keep:  # large-bitmap mode: only prefix sums stay, blocks are re-read via an LRU
        monkeypatch.setattr(bitmap, "KEEP_BYTES", 4096)
    # 2^20 pfns: each bitmap is 128 KiB (32 blocks); pages scattered over all of it.
    pfns = [0, 5, 32767, 32768, 32769, 65536 * 3 + 9, 500_000, (1 << 20) - 1]
    pages = {pfn: _page(pfn) for pfn in pfns}
    spec = KdumpSpec(pages=pages, max_mapnr=1 << 20)
    path = _write(tmp_path, build_kdump(spec))
    with kdiag.vmcore.open(path) as dump:
        for pfn in reversed(pfns):  # the highest first: the rank index grows lazily
            assert dump.read_phys(pfn * PAGE, 32) == pages[pfn][:32]
        with pytest.raises(PageNotPresent):
            dump.read_phys(32770 * PAGE, 1)
    with kdiag.vmcore.open(path) as dump:
        assert dump.read_phys(5 * PAGE, 4) == pages[5][:4]
        # Only the first bitmap chunk and the first descriptor block were needed.
        assert dump.bytes_read < 400_000


def test_incomplete_flag_and_lost_pages(tmp_path):
    spec = KdumpSpec(pages=PAGES, incomplete=True, lost={7})
    with kdiag.vmcore.open(_write(tmp_path, build_kdump(spec))) as dump:
        assert not dump.complete
        assert "incomplete" in (dump.incomplete_reason or "")
        assert dump.read_phys(2 * PAGE, PAGE) == PAGES[2]
        with pytest.raises(PageNotPresent, match="lost"):
            dump.read_phys(7 * PAGE, 8)


def test_a_file_cut_short_opens_incomplete(tmp_path):
    data = build_kdump(KdumpSpec(pages=PAGES, codec="none"))
    with kdiag.vmcore.open(_write(tmp_path, data[: len(data) - PAGE - 100])) as dump:
        assert not dump.complete
        assert "cut short" in (dump.incomplete_reason or "")
        assert dump.read_phys(PAGE, PAGE) == PAGES[1]
        with pytest.raises(PageNotPresent, match="file ends"):
            dump.read_phys(200 * PAGE, 8)


def _desc_offset(data: bytes, index: int) -> int:
    sub_blocks, bitmap_blocks = struct.unpack_from("<iI", data, 432)
    return (1 + sub_blocks + bitmap_blocks) * PAGE + 24 * index


def test_corrupt_pages_raise_corrupt_page(tmp_path):
    data = bytearray(build_kdump(KdumpSpec(pages=PAGES)))
    at = _desc_offset(data, 0)
    offset, size, _flags = struct.unpack_from("<qII", data, at)
    data[offset : offset + size] = bytes(size)  # zlib garbage
    big = _desc_offset(data, 1)
    struct.pack_into("<I", data, big + 8, PAGE + 1)  # size larger than a page
    both = _desc_offset(data, 2)
    struct.pack_into("<I", data, both + 12, 0x3)  # two codecs at once
    with kdiag.vmcore.open(_write(tmp_path, bytes(data))) as dump:
        for pfn in (1, 2, 7):
            with pytest.raises(CorruptPage) as info:
                dump.read_phys(pfn * PAGE, 8)
            assert info.value.address == pfn * PAGE
        assert dump.read_phys(200 * PAGE, 8) == PAGES[200][:8]


def test_a_missing_codec_names_the_extra(tmp_path, monkeypatch):
    path = _write(tmp_path, build_kdump(KdumpSpec(pages=PAGES, codec="lzo")))
    monkeypatch.setitem(sys.modules, "lzo", None)  # what an absent package looks like
    monkeypatch.setattr(compression, "_decoders", {})
    with kdiag.vmcore.open(path) as dump, pytest.raises(UnsupportedDump) as info:
        dump.read_phys(PAGE, 8)
    assert "pip install 'kdiag[lzo]'" in str(info.value)


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ((8, "<i", 0), UnsupportedDump),  # header version 0
        ((428, "<i", 1000), UnsupportedDump),  # block size not a power of two
        ((432, "<i", 0), NotACrashDump),  # no sub header
        ((436, "<I", 3), NotACrashDump),  # odd bitmap block count
        ((4096 + 96, "<Q", 1 << 40), NotACrashDump),  # bitmaps cannot cover max_mapnr_64
        ((4096 + 40, "<Q", 1 << 40), UnsupportedDump),  # VMCOREINFO size absurd
        ((4096 + 32, "<q", 1 << 40), TruncatedDump),  # VMCOREINFO past the end
    ],
)
def test_bad_headers_raise_typed_errors(tmp_path, patch, error):
    data = bytearray(build_kdump(KdumpSpec(pages=PAGES)))
    at, fmt, value = patch
    struct.pack_into(fmt, data, at, value)
    with pytest.raises(error):
        kdiag.vmcore.open(_write(tmp_path, bytes(data)))


@pytest.mark.parametrize("cut", [0, 3, 100, 463])
def test_headers_cut_short_raise(tmp_path, cut):
    data = build_kdump(KdumpSpec(pages=PAGES))
    with pytest.raises((TruncatedDump, NotACrashDump)):
        kdiag.vmcore.open(_write(tmp_path, data[:cut]))


def test_not_a_dump(tmp_path):
    with pytest.raises(NotACrashDump):
        kdiag.vmcore.open(_write(tmp_path, b"hello world, this is not a dump" * 10))
