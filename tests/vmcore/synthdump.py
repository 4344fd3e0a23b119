"""Small writers of synthetic dumps for the reader's unit tests.

Written from the format descriptions (makedumpfile ``IMPLEMENTATION``/``diskdump_mod.h``,
the ELF spec, QEMU ``dump.c``), independently of the reader under test.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import cramjam
import lzo
import zstandard

PAGE = 4096
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000

ZLIB, LZO, SNAPPY, INCOMPLETE, ZSTD = 0x1, 0x2, 0x4, 0x8, 0x20
CODECS = {"zlib": ZLIB, "lzo": LZO, "snappy": SNAPPY, "zstd": ZSTD, "none": 0}


def compress(codec: str, page: bytes) -> bytes:
    if codec == "zlib":
        return zlib.compress(page)
    if codec == "lzo":
        return lzo.compress(page, 1, False)
    if codec == "snappy":
        return bytes(cramjam.snappy.compress_raw(page))
    if codec == "zstd":
        return zstandard.ZstdCompressor().compress(page)
    return page


def note(name: str, ntype: int, desc: bytes) -> bytes:
    raw = name.encode() + b"\0"

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(raw), len(desc), ntype) + pad(raw) + pad(desc)


REGISTERS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp",
    "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip


def prstatus(pid: int, regs: dict[str, int]) -> bytes:
    """``struct elf_prstatus`` (x86_64, 336 bytes), laid out by field offsets."""
    buf = bytearray(336)
    struct.pack_into("<i", buf, 32, pid)
    for i, name in enumerate(REGISTERS):
        struct.pack_into("<Q", buf, 112 + 8 * i, regs.get(name, 0))
    return bytes(buf)


def utsname_bytes(
    sysname="Linux", nodename="synth", release="6.1.0-synth", version="#1 SMP", machine="x86_64"
) -> bytes:
    fields = (sysname, nodename, release, version, machine, "(none)")
    return b"".join(f.encode().ljust(65, b"\0") for f in fields)


@dataclass
class KdumpSpec:
    """What to put in a synthetic kdump-compressed file."""

    pages: dict[int, bytes]
    max_mapnr: int = 256
    version: int = 6
    codec: str = "zlib"
    ram: set[int] | None = None  # pfns in the 1st bitmap (default: all below max_mapnr)
    vmcoreinfo: bytes = b"OSRELEASE=6.1.0-synth\nPAGESIZE=4096\n"
    notes: bytes = b""
    utsname: bytes = field(default_factory=utsname_bytes)
    incomplete: bool = False
    lost: set[int] = field(default_factory=set)  # pfns whose descriptor is left zero
    raw_pages: set[int] = field(default_factory=set)  # stored uncompressed
    dump_level: int = 31
    nr_cpus: int = 1
    phys_base: int = 0
    eraseinfo: bytes = b""
    timestamp: int = 1_795_327_416


GARBAGE = 0xA5A5A5A5A5A5A5A5  # what an old header version leaves in fields it does not have


@dataclass(frozen=True)
class KdumpLayout:
    """Where each part of a kdump-compressed file goes, in blocks of ``PAGE`` bytes:
    header, sub-header (vmcoreinfo and notes), 1st and 2nd bitmap, descriptors, page data."""

    sub_blocks: int
    half_blocks: int  # one bitmap

    @classmethod
    def of(cls, spec: KdumpSpec) -> KdumpLayout:
        bitmap_bytes = -(-spec.max_mapnr // 8)
        return cls(
            sub_blocks=1 + -(-(len(spec.vmcoreinfo) + len(spec.notes) + 512) // PAGE),
            half_blocks=max(1, -(-bitmap_bytes // PAGE)),
        )

    @property
    def bitmap_blocks(self) -> int:
        return 2 * self.half_blocks

    @property
    def desc_start(self) -> int:
        return (1 + self.sub_blocks + self.bitmap_blocks) * PAGE

    @property
    def vmcoreinfo_at(self) -> int:
        return PAGE + 128  # inside the sub-header block, after its fixed fields


def _kdump_header(spec: KdumpSpec, layout: KdumpLayout) -> bytes:
    """``struct disk_dump_header``, padded to one block."""
    status = CODECS[spec.codec] | (INCOMPLETE if spec.incomplete else 0)
    header = bytearray(PAGE)
    struct.pack_into("<8si", header, 0, b"KDUMP   ", spec.version)
    header[12 : 12 + 390] = spec.utsname
    struct.pack_into(
        "<qqIiiIIIIIIi", header, 408, spec.timestamp, 0, status, PAGE, layout.sub_blocks,
        layout.bitmap_blocks, min(spec.max_mapnr, 0xFFFFFFFF), 0, 0, 0, 0, spec.nr_cpus,
    )  # fmt: skip
    return bytes(header)


def _bitmap(pfns: Iterable[int], layout: KdumpLayout) -> bytes:
    bitmap = bytearray(layout.half_blocks * PAGE)
    for pfn in pfns:
        bitmap[pfn >> 3] |= 1 << (pfn & 7)
    return bytes(bitmap)


def _page_records(spec: KdumpSpec, data_at: int) -> tuple[bytes, bytes]:
    """The page descriptors and the page data they point into (data starts at ``data_at``)."""
    descs = bytearray()
    data = bytearray()
    for pfn in sorted(spec.pages):
        page = spec.pages[pfn]
        assert len(page) == PAGE
        stored, flags = page, 0
        if spec.codec != "none" and pfn not in spec.raw_pages:
            packed = compress(spec.codec, page)
            if len(packed) < PAGE:
                stored, flags = packed, CODECS[spec.codec]
        if pfn in spec.lost:
            descs += bytes(24)
        else:
            descs += struct.pack("<qIIQ", data_at + len(data), len(stored), flags, 0)
        data += stored
    return bytes(descs), bytes(data)


def _sub_header(spec: KdumpSpec, layout: KdumpLayout, erase_at: int) -> bytes:
    """``struct kdump_sub_header`` followed by vmcoreinfo and notes; the fields a header
    version older than ``spec.version`` lacks hold garbage."""
    vi_at = layout.vmcoreinfo_at
    note_at = vi_at + len(spec.vmcoreinfo)
    fields = [
        spec.phys_base, spec.dump_level, 0, GARBAGE, GARBAGE,
        vi_at, len(spec.vmcoreinfo), note_at, len(spec.notes),
        erase_at if spec.eraseinfo else 0, len(spec.eraseinfo),
        0, spec.max_mapnr, spec.max_mapnr,
    ]  # fmt: skip
    version = spec.version
    if version < 6:
        fields[11:14] = [GARBAGE] * 3
    if version < 5:
        fields[9:11] = [GARBAGE & 0x7FFFFFFFFFFFFFFF, GARBAGE]
    if version < 4:
        fields[7:9] = [GARBAGE & 0x7FFFFFFFFFFFFFFF, GARBAGE]
    if version < 3:
        fields[5:7] = [GARBAGE & 0x7FFFFFFFFFFFFFFF, GARBAGE]
    if version < 2:
        fields[2] = 0x5A5A5A5A
    sub = bytearray(layout.sub_blocks * PAGE)
    sub[vi_at - PAGE : vi_at - PAGE + len(spec.vmcoreinfo)] = spec.vmcoreinfo
    sub[note_at - PAGE : note_at - PAGE + len(spec.notes)] = spec.notes
    struct.pack_into("<QiiQQqQqQqQQQQ", sub, 0, *fields)
    return bytes(sub)


def build_kdump(spec: KdumpSpec) -> bytes:
    layout = KdumpLayout.of(spec)
    ram = set(range(spec.max_mapnr)) if spec.ram is None else spec.ram
    data_at = layout.desc_start + 24 * len(spec.pages)
    descs, data = _page_records(spec, data_at)
    erase_at = data_at + len(data)
    out = b"".join(
        [
            _kdump_header(spec, layout),
            _sub_header(spec, layout, erase_at),
            _bitmap(ram, layout),  # 1st bitmap: the pfns that are RAM
            _bitmap(spec.pages, layout),  # 2nd bitmap: the pfns that were dumped
            descs,
            data,
            spec.eraseinfo,
        ]
    )
    assert len(out) == erase_at + len(spec.eraseinfo)
    return out


@dataclass
class Segment:
    paddr: int
    data: bytes
    memsz: int | None = None
    vaddr: int = 0


def build_elf(
    segments: list[Segment],
    notes: bytes,
    *,
    pn_xnum: bool = False,
    e_flags: int = 0,
    machine: int = 62,
    elf_class: int = 2,
    e_type: int = 4,
) -> bytes:
    phnum = 1 + len(segments)
    ehdr_size, phdr_size = 64, 56
    shoff = 0
    phoff = ehdr_size
    offset = phoff + phnum * phdr_size
    if pn_xnum:
        shoff = offset
        offset += 64
    note_off = offset
    offset += len(notes)
    offset = (offset + PAGE - 1) // PAGE * PAGE
    phdrs = [struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(notes), len(notes), 0)]
    body = bytearray()
    for seg in segments:
        memsz = seg.memsz if seg.memsz is not None else len(seg.data)
        at = offset + len(body)
        phdrs.append(
            struct.pack("<IIQQQQQQ", 1, 7, at, seg.vaddr, seg.paddr, len(seg.data), memsz, 0)
        )
        body += seg.data
    ident = b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9)
    ehdr = struct.pack(
        "<16sHHIQQQIHHHHHH", ident, e_type, machine, 1, 0, phoff, shoff, e_flags, ehdr_size,
        phdr_size, 0xFFFF if pn_xnum else phnum, 64, 1 if pn_xnum else 0, 0,
    )  # fmt: skip
    out = bytearray(ehdr + b"".join(phdrs))
    if pn_xnum:
        shdr = bytearray(64)
        struct.pack_into("<I", shdr, 44, phnum)
        out += shdr
    out += notes
    out += bytes(offset - len(out))
    out += body
    return bytes(out)


def flatten(
    image: bytes,
    *,
    record: int = 3000,
    seed: int = 1,
    overlap_noise: bool = False,
    end_marker: bool = True,
) -> bytes:
    """A flattened stream of ``image``: records in random order, optionally with stale
    overlapping records written first (later records must win)."""
    rng = random.Random(seed)
    pieces = [(at, image[at : at + record]) for at in range(0, len(image), record)]
    rng.shuffle(pieces)
    out = bytearray(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1))
    out += bytes(4096 - len(out))
    if overlap_noise:
        for _ in range(8):
            at = rng.randrange(0, max(1, len(image) - 100))
            noise = bytes(rng.randrange(256) for _ in range(100))
            out += struct.pack(">qq", at, len(noise)) + noise
    for at, chunk in pieces:
        out += struct.pack(">qq", at, len(chunk)) + chunk
    if end_marker:
        out += struct.pack(">qq", -1, -1)
    return bytes(out)
