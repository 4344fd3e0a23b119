"""makedumpfile's kdump-compressed format (signature ``KDUMP   ``), header versions 1-6+.

Layout (unit ``block_size`` = page size): main header in block 0, the sub header from block 1
(``sub_hdr_size`` blocks, holding the notes and VMCOREINFO too), the 1st bitmap (RAM) and the
2nd bitmap (dumped) of ``bitmap_blocks / 2`` blocks each, then one 24-byte ``page_desc`` per
dumped page in pfn order, then the page data.  Sources: makedumpfile ``diskdump_mod.h`` and
``IMPLEMENTATION``; QEMU ``dump/dump.c`` writes the same format (only ``utsname.machine``
filled, ``dump_level`` 1, identical bitmaps, one shared zero page).
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from kdiag.errors import CorruptPage, NotACrashDump, PageNotPresent, TruncatedDump, UnsupportedDump
from kdiag.vmcore.arch import WORD32, arch_from_uname, unsupported_message
from kdiag.vmcore.cache import LRU
from kdiag.vmcore.compression import COMPRESSION_MASK, Codec, codec_name, decompress_page
from kdiag.vmcore.formats import Layout, ProgressFn
from kdiag.vmcore.formats.bitmap import BLOCK_BYTES, Bitmap
from kdiag.vmcore.model import CpuState, Utsname
from kdiag.vmcore.notes import NT_PRSTATUS, iter_notes, parse_prstatus
from kdiag.vmcore.source import ByteSource, check_range
from kdiag.vmcore.vmcoreinfo import MAX_VMCOREINFO_BYTES, VmcoreInfo

__all__ = (
    "DISKDUMP_SIGNATURE",
    "DiskDumpHeader",
    "KdumpPages",
    "KdumpSubHeader",
    "PageDesc",
    "open_diskdump",
)

DISKDUMP_SIGNATURE = b"KDUMP   "
_HEADER = struct.Struct("<8si65s65s65s65s65s65s6xqqIiiIIIIIIi")
_SUB_HEADER = struct.Struct("<QiiQQqQqQqQQQQ")
_PAGE_DESC = struct.Struct("<qIIQ")
_MAX_NOTES = 64 << 20
_MAX_ERASEINFO = 1 << 20
_MAX_PFN = 1 << 42
_MAX_TIMESTAMP = (
    253_402_300_799  # 9999-12-31T23:59:59Z  # 2^52 bytes of physical memory with 4 KiB pages
)
_DESC_BLOCK = 4096 // _PAGE_DESC.size * _PAGE_DESC.size  # 170 descriptors per read


@dataclass(frozen=True)
class DiskDumpHeader:
    """``struct disk_dump_header`` (464 bytes, LP64 little-endian)."""

    signature: bytes
    header_version: int
    utsname: Utsname
    timestamp_sec: int
    timestamp_usec: int
    status: int
    block_size: int
    sub_hdr_size: int
    bitmap_blocks: int
    max_mapnr: int
    total_ram_blocks: int
    device_blocks: int
    written_blocks: int
    current_cpu: int
    nr_cpus: int

    SIZE = _HEADER.size

    @classmethod
    def from_bytes(cls, data: bytes) -> DiskDumpHeader:
        fields = _HEADER.unpack_from(data)
        uts = Utsname.from_bytes(b"".join(f.ljust(65, b"\0") for f in fields[2:8]))
        return cls(fields[0], fields[1], uts, *fields[8:])


@dataclass(frozen=True)
class KdumpSubHeader:
    """``struct kdump_sub_header``; fields beyond the header version read as ``None``/0."""

    phys_base: int
    dump_level: int | None
    split: int
    start_pfn_32: int
    end_pfn_32: int
    offset_vmcoreinfo: int
    size_vmcoreinfo: int
    offset_note: int
    size_note: int
    offset_eraseinfo: int
    size_eraseinfo: int
    start_pfn_64: int | None
    end_pfn_64: int | None
    max_mapnr_64: int | None

    def pfn_range(self, max_mapnr: int) -> tuple[int, int]:
        """``[start_pfn, end_pfn)`` of a ``--split`` member (64-bit fields from version 6);
        ``(0, max_mapnr)`` for a whole dump."""
        if not self.split:
            return 0, max_mapnr
        if self.start_pfn_64 is not None and self.end_pfn_64 is not None:
            return self.start_pfn_64, self.end_pfn_64
        return self.start_pfn_32, self.end_pfn_32

    SIZE = _SUB_HEADER.size

    @classmethod
    def from_bytes(cls, data: bytes, version: int) -> KdumpSubHeader:
        (phys_base, dump_level, split, start32, end32, off_vi, size_vi, off_note, size_note,
         off_erase, size_erase, start64, end64, max64) = _SUB_HEADER.unpack_from(data)  # fmt: skip
        return cls(
            phys_base=phys_base,
            dump_level=dump_level if version >= 1 else None,
            split=split if version >= 2 else 0,
            start_pfn_32=start32 & 0xFFFF_FFFF if version >= 2 else 0,
            end_pfn_32=end32 & 0xFFFF_FFFF if version >= 2 else 0,
            offset_vmcoreinfo=off_vi if version >= 3 else 0,
            size_vmcoreinfo=size_vi if version >= 3 else 0,
            offset_note=off_note if version >= 4 else 0,
            size_note=size_note if version >= 4 else 0,
            offset_eraseinfo=off_erase if version >= 5 else 0,
            size_eraseinfo=size_erase if version >= 5 else 0,
            start_pfn_64=start64 if version >= 6 else None,
            end_pfn_64=end64 if version >= 6 else None,
            max_mapnr_64=max64 if version >= 6 else None,
        )


@dataclass(frozen=True, slots=True)
class PageDesc:
    """``page_desc_t``: where a page's data is, how long, and its codec flags."""

    offset: int
    size: int
    flags: int
    page_flags: int


class KdumpPages:
    """The page store: bitmap rank -> descriptor -> (decompressed) page data.

    A ``makedumpfile --split`` member holds the whole bitmaps but descriptors (and data) only
    for its pfns ``[start_pfn, end_pfn)``: descriptor 0 is that of the first dumped pfn at or
    above ``start_pfn``.
    """

    def __init__(
        self,
        source: ByteSource,
        header: DiskDumpHeader,
        sub: KdumpSubHeader,
        *,
        max_mapnr: int,
        progress: ProgressFn | None = None,
    ) -> None:
        self.source = source
        self.header = header
        self.sub = sub
        self.page_size = header.block_size
        self.max_mapnr = max_mapnr
        self.incomplete_flag = bool(header.status & Codec.INCOMPLETE)
        bs = header.block_size
        half = header.bitmap_blocks // 2
        first_at = (1 + header.sub_hdr_size) * bs
        self.bitmap1 = Bitmap(source, first_at, half * bs, max_mapnr, label="1st bitmap")
        self.bitmap2 = Bitmap(
            source, first_at + half * bs, half * bs, max_mapnr, progress=progress,
            label="2nd bitmap",
        )  # fmt: skip
        self.desc_start = (1 + header.sub_hdr_size + header.bitmap_blocks) * bs
        self.split = bool(sub.split)
        self.start_pfn, self.end_pfn = sub.pfn_range(max_mapnr)
        self._first_index: int | None = None
        self._descs: LRU[int, bytes] = LRU(64)
        self.lost_pages = 0

    # --- descriptors ----------------------------------------------------------------------

    def desc(self, index: int) -> PageDesc | None:
        """The ``index``-th descriptor, or ``None`` when the file ends before it."""
        block = index // (_DESC_BLOCK // _PAGE_DESC.size)
        data = self._descs.get(block)
        if data is None:
            data = self.source.read_upto(self.desc_start + block * _DESC_BLOCK, _DESC_BLOCK)
            self._descs.put(block, data)
        at = index * _PAGE_DESC.size - block * _DESC_BLOCK
        if at + _PAGE_DESC.size > len(data):
            return None
        return PageDesc(*_PAGE_DESC.unpack_from(data, at))

    def pfn_desc(self, pfn: int) -> PageDesc:
        """The descriptor of a dumped pfn; ``PageNotPresent`` for excluded or missing pages."""
        address = pfn * self.page_size
        if pfn < 0 or pfn >= self.max_mapnr:
            raise PageNotPresent(
                f"physical address {address:#x} is beyond the dump (max pfn {self.max_mapnr:#x})",
                address=address,
            )
        if not self.start_pfn <= pfn < self.end_pfn:
            # Not PageNotPresent: readers that take absent pages for zeros must not here.
            raise TruncatedDump(
                f"physical address {address:#x} is in another file of this split dump (this"
                f" file holds pfns {self.start_pfn:#x}-{self.end_pfn:#x}; open all of them)"
            )
        if not self.bitmap2.test(pfn):
            why = "excluded from the dump" if self.bitmap1.test(pfn) else "not RAM (a hole)"
            raise PageNotPresent(f"page at {address:#x} is {why}", address=address)
        desc = self.desc(self.bitmap2.rank(pfn) - self.first_index)
        if desc is None:
            raise PageNotPresent(
                f"page at {address:#x} is missing: the file ends before its descriptor",
                address=address,
            )
        if desc.offset == 0:
            raise PageNotPresent(
                f"page at {address:#x} was lost (incomplete dump)", address=address
            )
        return desc

    @property
    def first_index(self) -> int:
        """The descriptor index of ``start_pfn`` in the whole bitmap (0 unless split)."""
        if self._first_index is None:
            self._first_index = self.bitmap2.rank(self.start_pfn)
        return self._first_index

    @property
    def split_reason(self) -> str | None:
        """Why a ``--split`` file read alone is an incomplete dump; None for a whole dump."""
        if (self.start_pfn, self.end_pfn) == (0, self.max_mapnr):
            return None
        return (
            f"one file of a makedumpfile --split set: it holds pfns {self.start_pfn:#x}-"
            f"{self.end_pfn:#x} of {self.max_mapnr:#x} (open it with the other files)"
        )

    def load_page(self, pfn: int) -> bytes:
        desc = self.pfn_desc(pfn)
        address = pfn * self.page_size
        if desc.size <= 0 or desc.size > self.page_size or desc.offset <= 0:
            raise CorruptPage(
                f"page at {address:#x}: bad descriptor (offset {desc.offset:#x}, size {desc.size})",
                offset=desc.offset,
                address=address,
            )
        if desc.offset + desc.size > self.source.size:
            raise PageNotPresent(
                f"page at {address:#x} is missing: the file ends before its data",
                address=address,
            )
        data = self.source.read(desc.offset, desc.size, "page data")
        if desc.flags & COMPRESSION_MASK:
            return decompress_page(desc.flags, data, self.page_size, offset=desc.offset, pfn=pfn)
        if desc.size != self.page_size:
            raise CorruptPage(
                f"uncompressed page at {address:#x} stored as {desc.size} bytes",
                offset=desc.offset,
                address=address,
            )
        return data

    def present_pfns(self) -> Iterator[int]:
        """Every dumped pfn this file holds, in order (a pass over the 2nd bitmap)."""
        for pfn in self._bitmap_pfns():
            if pfn >= self.end_pfn:
                return
            if pfn >= self.start_pfn:
                yield pfn

    def _bitmap_pfns(self) -> Iterator[int]:
        for index in range(self.bitmap2.nblocks):
            block = self.bitmap2.block(index)
            value = int.from_bytes(block, "little")
            base = index * BLOCK_BYTES * 8  # the last block may be shorter
            while value:
                low = value & -value
                pfn = base + low.bit_length() - 1
                if pfn >= self.max_mapnr:
                    return
                yield pfn
                value ^= low

    def dumped_pages(self) -> int:
        return self.bitmap2.count()

    def ram_bytes(self) -> int:
        return self.bitmap1.count() * self.page_size


def _read_blob(source: ByteSource, offset: int, size: int, limit: int, what: str) -> bytes:
    if size <= 0:
        return b""
    if size > limit:
        raise UnsupportedDump(f"{what} is {size} bytes, more than the {limit}-byte limit")
    check_range(offset, size, source.size, what)
    return source.read(offset, size, what)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def open_diskdump(source: ByteSource, *, progress: ProgressFn | None = None) -> Layout:
    """Read the headers, notes and VMCOREINFO of a kdump-compressed file."""
    head = _read_header(source)
    raw_sub = source.read(head.block_size, KdumpSubHeader.SIZE, "kdump sub header")
    sub = KdumpSubHeader.from_bytes(raw_sub, head.header_version)
    max_mapnr = _checked_max_mapnr(head, sub)
    reasons: list[str] = []
    if head.status & Codec.INCOMPLETE:
        reasons.append("makedumpfile marked the dump incomplete (DUMP_DH_COMPRESSED_INCOMPLETE)")
    arch = arch_from_uname(head.utsname.machine)
    notes = _read_notes(source, sub, arch)
    eraseinfo, eraseinfo_problem = _read_eraseinfo(source, sub)
    pages = KdumpPages(source, head, sub, max_mapnr=max_mapnr, progress=progress)
    problems = (pages.split_reason, eraseinfo_problem, _check_truncation(pages, source))
    reasons += [r for r in problems if r]
    is_qemu = notes.qemu > 0 or (not head.utsname.release and bool(head.utsname.machine))
    return Layout(
        format="qemu-kdump" if is_qemu else "kdump",
        compression=codec_name(head.status),
        store=pages,
        page_size=head.block_size,
        arch=arch,
        vmcoreinfo=notes.vmcoreinfo,
        cpus=notes.cpus,
        complete=not reasons,
        incomplete_reason="; ".join(reasons) or None,
        dump_level=sub.dump_level,
        header_version=head.header_version,
        header_utsname=head.utsname if head.utsname.release else None,
        header_time=_header_time(head),
        nr_cpus=head.nr_cpus if head.nr_cpus > 0 else None,
        phys_base=sub.phys_base,
        eraseinfo=eraseinfo,
        memory_bytes=pages.ram_bytes,
        notes={"qemu": notes.qemu},
    )


def _read_header(source: ByteSource) -> DiskDumpHeader:
    """The main header, its signature, version, block size and table sizes checked."""
    if source.size < DiskDumpHeader.SIZE:
        raise TruncatedDump("kdump header is cut short", offset=0)
    raw = source.read(0, DiskDumpHeader.SIZE, "kdump header")
    head = DiskDumpHeader.from_bytes(raw)
    if head.signature != DISKDUMP_SIGNATURE:
        raise NotACrashDump("no KDUMP signature")
    _refuse_foreign(raw, head)
    if head.header_version < 1:
        raise UnsupportedDump(f"kdump header version {head.header_version} is not supported")
    bs = head.block_size
    if not _sane_block_size(bs):
        raise UnsupportedDump(f"kdump block size {bs} is not a supported page size")
    if head.sub_hdr_size < 1 or head.sub_hdr_size > 1 << 20:
        raise NotACrashDump(f"kdump sub header size {head.sub_hdr_size} blocks is not sane")
    if head.bitmap_blocks <= 0 or head.bitmap_blocks % 2:
        raise NotACrashDump(f"kdump bitmap_blocks {head.bitmap_blocks} is not an even count")
    return head


def _sane_block_size(bs: int) -> bool:
    return _is_power_of_two(bs) and 512 <= bs <= 1 << 20


def _plausible_sizes(raw: bytes, order: str, at: int) -> bool:
    """``block_size``, ``sub_hdr_size`` and ``bitmap_blocks`` at ``at`` look like a header's."""
    block, sub, bitmap = struct.unpack_from(order + "iii", raw, at)
    return _sane_block_size(block) and 1 <= sub <= 1 << 20 and bitmap > 0 and bitmap % 2 == 0


def _refuse_foreign(raw: bytes, head: DiskDumpHeader) -> None:
    """Refuse, naming it, a file of a 32-bit or big-endian kernel (laid out for its own
    ``long`` and byte order: ``block_size`` at 416 rather than 428 after a 4-byte
    ``struct timeval``, the version big-endian); read as LP64 little-endian it would fail
    on a meaningless field."""
    big_version = struct.unpack_from(">i", raw, 8)[0]
    little = 0 < head.header_version < 1 << 16 or not 0 < big_version < 1 << 16
    order = "<" if little else ">"
    arch = arch_from_uname(head.utsname.machine)
    word32 = arch in WORD32 or (
        not _plausible_sizes(raw, order, 428) and _plausible_sizes(raw, order, 416)
    )
    if little and not word32:
        return
    raise UnsupportedDump(
        unsupported_message(
            arch, bits=32 if word32 else 64, little_endian=little, container="kdump-compressed"
        )
    )


def _checked_max_mapnr(head: DiskDumpHeader, sub: KdumpSubHeader) -> int:
    """The number of pfns (64-bit in the sub header when set), bounded by the bitmaps."""
    max_mapnr = sub.max_mapnr_64 or head.max_mapnr
    if max_mapnr <= 0 or max_mapnr > _MAX_PFN:
        raise NotACrashDump(f"kdump max_mapnr {max_mapnr} is not sane")
    if head.bitmap_blocks // 2 * head.block_size * 8 < max_mapnr:
        raise NotACrashDump(
            f"kdump bitmaps ({head.bitmap_blocks} blocks) cannot cover {max_mapnr} pfns"
        )
    return max_mapnr


@dataclass(frozen=True)
class _Notes:
    """What the sub header's ELF notes hold: VMCOREINFO, CPU registers, QEMU's notes."""

    vmcoreinfo: VmcoreInfo
    cpus: tuple[CpuState, ...]
    qemu: int


def _read_notes(source: ByteSource, sub: KdumpSubHeader, arch: str) -> _Notes:
    """VMCOREINFO (its own blob, else the note), one CpuState per PRSTATUS note."""
    vmcoreinfo_text = _read_blob(
        source, sub.offset_vmcoreinfo, sub.size_vmcoreinfo, MAX_VMCOREINFO_BYTES, "VMCOREINFO"
    )
    notes_blob = _read_blob(source, sub.offset_note, sub.size_note, _MAX_NOTES, "ELF notes")
    cpus: list[CpuState] = []
    qemu_notes = 0
    for note in iter_notes(notes_blob):
        if note.name == "CORE" and note.type == NT_PRSTATUS:
            cpus.append(parse_prstatus(note.desc, len(cpus), arch))
        elif note.name == "VMCOREINFO" and not vmcoreinfo_text:
            vmcoreinfo_text = note.desc
        elif note.name == "QEMU":
            qemu_notes += 1
    return _Notes(VmcoreInfo.parse(vmcoreinfo_text), tuple(cpus), qemu_notes)


def _read_eraseinfo(source: ByteSource, sub: KdumpSubHeader) -> tuple[str | None, str | None]:
    """(makedumpfile's eraseinfo text, or why it is missing from an incomplete file)."""
    if not (sub.size_eraseinfo and sub.offset_eraseinfo):
        return None, None
    try:
        raw = _read_blob(
            source, sub.offset_eraseinfo, sub.size_eraseinfo, _MAX_ERASEINFO, "eraseinfo"
        )
    except TruncatedDump:
        return None, "the eraseinfo lies past the end of the file"
    return raw.decode("utf-8", "replace").rstrip("\0") or None, None


def _header_time(head: DiskDumpHeader) -> datetime.datetime | None:
    """The header's dump time (UTC); a garbage time is no time."""
    if not 0 < head.timestamp_sec < _MAX_TIMESTAMP:
        return None
    usec = max(0, min(head.timestamp_usec, 999_999))
    when = datetime.datetime.fromtimestamp(head.timestamp_sec, tz=datetime.UTC)
    return when + datetime.timedelta(microseconds=usec)


def _check_truncation(pages: KdumpPages, source: ByteSource) -> str | None:
    """Detect a file cut short without a bitmap pass.

    Both makedumpfile and QEMU write page data in pfn order right after the descriptor table,
    so descriptor 0 points at the start of the data area, or one page past it: makedumpfile
    (dump level with bit 1) first writes the one zero page that every zero page's descriptor
    shares, and descriptor 0 points past it unless pfn 0 is itself zero (it is on a PC; an
    arm64 machine's RAM starts at PHYS_OFFSET with a page in use).  The data area's start
    gives the number of descriptors (a page size is never a multiple of 24, so only one of
    the two candidates can be), and the last descriptor must end inside the file.
    """
    first = pages.desc(0) if pages.desc_start < source.size else None
    if first is None:
        if pages.bitmap2.rank(pages.end_pfn) == pages.first_index:
            return None  # a degenerate but valid file: no page dumped, no descriptor
        if pages.desc_start >= source.size:
            return "the file ends before the page descriptors"
        return "the file ends inside the page descriptors"
    starts = [
        at
        for at in (first.offset, first.offset - pages.page_size)
        if at > pages.desc_start and (at - pages.desc_start) % 24 == 0
    ]
    if not starts:
        return None  # an unusual writer, or a lost first page: nothing cheap to conclude
    count = (starts[0] - pages.desc_start) // 24
    if count > pages.max_mapnr:
        return None
    if pages.split:
        # Every --split file leaves room for all the descriptors but fills only its own.
        count = min(count, pages.bitmap2.rank(pages.end_pfn) - pages.first_index)
        if count <= 0:
            return None
    last = pages.desc(count - 1)
    if last is None:
        return "the file ends inside the page descriptors"
    end = last.offset + last.size
    if last.offset and end > source.size:
        return (
            f"the file is cut short: the page data ends at {end:#x}, the file at {source.size:#x}"
        )
    return None
