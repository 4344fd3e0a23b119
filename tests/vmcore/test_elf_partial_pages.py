"""ELF pages only partly held in the file: the bytes that are there, zeros for the rest.

``/proc/vmcore`` segments need not end on a page boundary (a PC's first RAM segment ends at
0x9fc00, the next starts at 0x100000); crash and libkdumpfile read such a page as its bytes
followed by zeros.  A page with no byte in the file still raises ``PageNotPresent``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.errors import PageNotPresent
from kdiag.vmcore.triage import triage
from tests.vmcore.synthdump import PAGE, Segment, build_elf, note
from tests.vmcore.vmcorewriter import Guest, Record

VMCOREINFO = b"OSRELEASE=6.1.0-elf\nPAGESIZE=4096\n"


def _pattern(size: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) & 0xFF or 1 for i in range(size))


def _open(tmp_path: Path, segments: list[Segment]) -> kdiag.vmcore.Dump:
    path = tmp_path / "vmcore"
    path.write_bytes(build_elf(segments, note("VMCOREINFO", 0, VMCOREINFO)))
    return kdiag.vmcore.open(path)


def test_a_pc_like_first_segment_ending_at_0x9fc00(tmp_path: Path) -> None:
    low = _pattern(0x9FC00 - 0x1000, 3)
    high = _pattern(2 * PAGE, 5)
    with _open(tmp_path, [Segment(0x1000, low), Segment(0x100000, high)]) as dump:
        page = dump.read_phys(0x9F000, PAGE)
        assert page[:0xC00] == low[-0xC00:]
        assert page[0xC00:] == bytes(0x400)
        assert dump.read_phys(0x9FBFF, 2) == low[-1:] + b"\0"  # across the end
        assert dump.read_phys(0x9E000, 2 * PAGE)[PAGE + 0xC00 :] == bytes(0x400)
        assert dump.read_phys(0x100000, 4) == high[:4]
        with pytest.raises(PageNotPresent, match="not in the dump"):
            dump.read_phys(0xA0000, 1)  # the hole after it: no byte in the file
        with pytest.raises(PageNotPresent):
            dump.read_phys(0x0, 1)  # below the first segment
        pfns = list(dump.layout.store.present_pfns())  # type: ignore[attr-defined]
        assert pfns[0] == 1
        assert 0x9F in pfns
        assert 0xA0 not in pfns
        assert pfns == sorted(set(pfns))


def test_segments_starting_and_ending_inside_one_page(tmp_path: Path) -> None:
    a, b = _pattern(0x300, 1), _pattern(0x200, 9)
    segments = [Segment(0x5100, a), Segment(0x5800, b)]  # 0x5000-0x5100, 0x5400-0x5800 absent
    with _open(tmp_path, segments) as dump:
        page = dump.read_phys(0x5000, PAGE)
        assert page == bytes(0x100) + a + bytes(0x400) + b + bytes(0x600)
        assert list(dump.layout.store.present_pfns()) == [5]  # type: ignore[attr-defined]


def test_an_excluded_tail_inside_a_page(tmp_path: Path) -> None:
    """``p_filesz`` ending inside a page: the bytes held, then zeros (p_memsz says RAM)."""
    data = _pattern(PAGE + 0x234, 4)
    with _open(tmp_path, [Segment(0x10000, data, memsz=4 * PAGE)]) as dump:
        assert dump.read_phys(0x11000, PAGE) == data[PAGE:] + bytes(PAGE - 0x234)
        with pytest.raises(PageNotPresent, match="excluded"):
            dump.read_phys(0x12000, 1)


def _guest() -> Guest:
    records = [Record(f"line {i}", ts_nsec=1_000_000 * i) for i in range(20)]
    records.append(Record("Kernel panic - not syncing: partial pages test", 30_000_000, 0))
    return Guest(records)


def test_page_table_walks_through_partly_held_pages(tmp_path: Path) -> None:
    """Every page-table page of a synthetic guest held only up to its last non-zero byte:
    the walks, the log and the whole triage come out as from the complete ELF."""
    guest = _guest()
    full = tmp_path / "full"
    full.write_bytes(guest.elf())
    ram = bytearray(guest.ram_pages * PAGE)
    for pfn, page in guest.pages.items():
        ram[pfn * PAGE : (pfn + 1) * PAGE] = page
    tables = sorted({guest.pgd // PAGE, *range(6 * 1024, guest._next_table)})
    segments: list[Segment] = []
    start = 0
    cut_pages = 0
    for pfn in tables:
        used = len(bytes(guest.pages[pfn]).rstrip(b"\0"))
        if used == 0 or used > PAGE - 8:
            continue
        end = pfn * PAGE + (used + 7) // 8 * 8
        segments.append(Segment(start, bytes(ram[start:end]), vaddr=guest.dva(start)))
        start = (pfn + 1) * PAGE
        cut_pages += 1
    segments.append(Segment(start, bytes(ram[start:]), vaddr=guest.dva(start)))
    assert cut_pages >= 3
    partial = tmp_path / "partial"
    partial.write_bytes(build_elf(segments, guest.notes()))
    with kdiag.vmcore.open(full) as ref, kdiag.vmcore.open(partial) as dump:
        want, got = triage(ref), triage(dump)
        assert got.log_error is None
        assert got.panic.klass == want.panic.klass
        assert got.log == want.log
        assert got.memory_bytes == sum(len(seg.data) for seg in segments)  # the PT_LOADs
        same = {"path": "", "bytes_read": 0, "memory_bytes": 0}
        assert dataclasses.replace(got, **same) == dataclasses.replace(want, **same)
        assert [r.text for r in got.log][-1] == "Kernel panic - not syncing: partial pages test"


def test_the_first_pt_load_covering_an_address_wins(tmp_path: Path) -> None:
    """A kernel-image segment (p_vaddr in __START_KERNEL_map) aliases RAM: read where it
    comes before the RAM segment in the table (crash's and makedumpfile's rule), not after."""
    ram = Segment(0x200000, b"\x11" * (4 * PAGE), vaddr=0xFFFF888000200000)
    alias = Segment(0x201000, b"\x22" * PAGE, vaddr=0xFFFFFFFF81000000)
    with _open(tmp_path, [alias, ram]) as dump:
        assert dump.read_phys(0x201000, 4) == b"\x22" * 4
        assert dump.read_phys(0x200000, 4) == b"\x11" * 4
        assert dump.read_phys(0x202000, 4) == b"\x11" * 4
        assert dump.ram_in_dump_bytes == 4 * PAGE  # the alias is not RAM twice
    (tmp_path / "vmcore").unlink()
    with _open(tmp_path, [ram, alias]) as dump:
        assert dump.read_phys(0x201000, 4) == b"\x11" * 4
