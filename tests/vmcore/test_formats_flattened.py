"""Flattened streams (makedumpfile -F, QEMU kdump-*) read in place through the record index."""

import struct

import pytest

import kdiag.vmcore
from kdiag.errors import NotACrashDump, UnsupportedDump
from kdiag.vmcore.formats.flattened import FlattenedSource
from kdiag.vmcore.source import FileSource
from tests.vmcore.synthdump import (
    PAGE,
    KdumpSpec,
    Segment,
    build_elf,
    build_kdump,
    flatten,
    note,
)

PAGES = {pfn: (f"flat page {pfn} ".encode() * 500)[:PAGE] for pfn in (0, 3, 4, 90)}


def _write(tmp_path, data: bytes, name: str = "vmcore.flat"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("overlap_noise", [False, True])
def test_shuffled_records_serve_the_reassembled_file(tmp_path, overlap_noise):
    image = build_kdump(KdumpSpec(pages=PAGES, codec="zlib"))
    stream = flatten(image, record=777, seed=5, overlap_noise=overlap_noise)
    src = FlattenedSource(FileSource(_write(tmp_path, stream)))
    try:
        assert src.complete
        assert src.size == len(image)
        for at, size in [(0, 464), (4000, 300), (len(image) - 50, 50), (1234, 9000)]:
            assert src.read(at, size) == image[at : at + size]
        assert src.read_upto(len(image) - 10, 100) == image[-10:]
        # Only record headers and what was asked for were read, never whole payloads.
        asked = 464 + 300 + 50 + 9000 + 10
        assert src.bytes_read <= asked + 32 + 16 * (src.records + 1)
    finally:
        src.close()
    steps = []
    with kdiag.vmcore.open(_write(tmp_path, stream), progress=lambda *a: steps.append(a)) as dump:
        assert {step for step, _done, _total in steps} == {"index flattened records"}
        assert all(done <= total for _step, done, total in steps)
        assert dump.format == "flattened"
        assert dump.flattened
        for pfn, page in PAGES.items():
            assert dump.read_phys(pfn * PAGE, PAGE) == page


def test_holes_between_records_read_as_zeros(tmp_path):
    header = b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1)
    stream = header.ljust(4096, b"\0")
    stream += struct.pack(">qq", 0, 4) + b"abcd"
    stream += struct.pack(">qq", 10, 2) + b"xy"
    stream += struct.pack(">qq", -1, -1)
    src = FlattenedSource(FileSource(_write(tmp_path, stream)))
    assert src.read(0, 12) == b"abcd" + bytes(6) + b"xy"
    src.close()


def test_a_stream_without_end_marker_or_cut_inside_a_record_is_incomplete(tmp_path):
    image = build_kdump(KdumpSpec(pages=PAGES, codec="none"))
    for stream in (flatten(image, end_marker=False), flatten(image)[:-5000]):
        with kdiag.vmcore.open(_write(tmp_path, stream)) as dump:
            assert not dump.complete
            assert dump.incomplete_reason


def test_flattened_elf(tmp_path):
    notes = note("VMCOREINFO", 0, b"OSRELEASE=flat-elf\nPAGESIZE=4096\n")
    image = build_elf([Segment(0, b"\x11" * (4 * PAGE))], notes)
    with kdiag.vmcore.open(_write(tmp_path, flatten(image, record=1000, seed=9))) as dump:
        assert dump.format == "elf"
        assert dump.flattened
        assert dump.vmcoreinfo.osrelease == "flat-elf"
        assert dump.read_phys(PAGE + 5, 3) == b"\x11\x11\x11"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda s: s[:16] + struct.pack(">q", 2) + s[24:], UnsupportedDump),  # type 2
        (lambda s: s[:4096] + struct.pack(">qq", -5, 10) + s[4112:], NotACrashDump),
        (lambda s: s[:4096] + struct.pack(">qq", 0, 0) + s[4112:], NotACrashDump),
    ],
)
def test_bad_stream_headers(tmp_path, mutate, error):
    stream = flatten(build_kdump(KdumpSpec(pages=PAGES)))
    with pytest.raises(error):
        kdiag.vmcore.open(_write(tmp_path, mutate(stream)))


@pytest.mark.fixtures
def test_a_real_dump_flattened_reads_like_the_original(tmp_path, fixture_dump, vmcore_fixtures):
    original = fixture_dump("nmi-zlib")
    stream = flatten(original.read_bytes(), record=65536, seed=3)
    with kdiag.vmcore.open(_write(tmp_path, stream)) as flat:
        log = kdiag.vmcore.format_dmesg(flat.kernel_log()).encode()
        assert flat.utsname == kdiag.vmcore.open(original).utsname
    assert log == (vmcore_fixtures / "nmi-zlib" / "makedumpfile-dmesg.txt").read_bytes()


@pytest.mark.fixtures
def test_nmi_flat_and_nmi_zlib_hold_the_same_memory(fixture_dump):
    with (
        kdiag.vmcore.open(fixture_dump("nmi-flat")) as flat,
        kdiag.vmcore.open(fixture_dump("nmi-zlib")) as plain,
    ):
        symbol = flat.vmcoreinfo.need_symbol("prb")
        assert flat.read_virt(symbol, 4096) == plain.read_virt(symbol, 4096)
        assert flat.layout.store.dumped_pages() == plain.layout.store.dumped_pages()
