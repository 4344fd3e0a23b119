"""ELF64 vmcores: ``/proc/vmcore``, ``makedumpfile -E`` and QEMU ``dump-guest-memory -f elf``.

An ``ET_CORE`` file: ``PT_NOTE`` segments (per-CPU ``NT_PRSTATUS``, ``VMCOREINFO``, QEMU's
``QEMU`` CPU-state notes and ``NT_PRFPREG``) and ``PT_LOAD`` segments whose ``p_paddr`` is
the physical address.  ``p_filesz < p_memsz`` means the tail was excluded; an address no
segment covers is not in the dump.  ``e_flags & 1`` (``DUMP_ELF_INCOMPLETE``) marks a dump
that ran out of space.
``e_phnum == 0xffff`` (``PN_XNUM``, QEMU with many segments) keeps the real count in
``sh_info`` of section header 0.  ``e_ehsize`` is not checked: QEMU 7.2 writes 8 there (and
puts its section headers before the program headers); offsets are taken as given.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from kdiag.errors import NotACrashDump, PageNotPresent, TruncatedDump, UnsupportedDump
from kdiag.vmcore.arch import MACHINES
from kdiag.vmcore.formats import Layout
from kdiag.vmcore.model import CpuState
from kdiag.vmcore.notes import NT_PRSTATUS, iter_notes, parse_prstatus
from kdiag.vmcore.source import ByteSource
from kdiag.vmcore.vmcoreinfo import MAX_VMCOREINFO_BYTES, VmcoreInfo

__all__ = ("ELF_MAGIC", "ElfHeader", "ElfPages", "ProgramHeader", "open_elf")

ELF_MAGIC = b"\x7fELF"
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR0_INFO = struct.Struct("<I")  # sh_info at offset 44 of Elf64_Shdr
_ET_CORE = 4
_PT_LOAD = 1
_PT_NOTE = 4
_NT_PRFPREG = 2
_PN_XNUM = 0xFFFF
_DUMP_ELF_INCOMPLETE = 0x1
_MAX_PHNUM = 1 << 20
_MAX_NOTES = 64 << 20
_START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000


@dataclass(frozen=True)
class ElfHeader:
    """The ``Elf64_Ehdr`` fields a vmcore reader needs."""

    ident: bytes
    type: int
    machine: int
    flags: int
    phoff: int
    shoff: int
    phentsize: int
    phnum: int
    shentsize: int

    @classmethod
    def from_bytes(cls, data: bytes) -> ElfHeader:
        (ident, etype, machine, _version, _entry, phoff, shoff, flags, _ehsize, phentsize,
         phnum, shentsize, _shnum, _shstrndx) = _EHDR.unpack_from(data)  # fmt: skip
        return cls(ident, etype, machine, flags, phoff, shoff, phentsize, phnum, shentsize)


@dataclass(frozen=True)
class ProgramHeader:
    """``Elf64_Phdr``."""

    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


class ElfPages:
    """Pages served from ``PT_LOAD`` segments, located by physical address (bisect)."""

    def __init__(self, source: ByteSource, loads: list[ProgramHeader], page_size: int) -> None:
        self.source = source
        self.page_size = page_size
        # Physical RAM segments; kexec's extra kernel-text segment aliases RAM, skip it.
        ram = [p for p in loads if p.memsz > 0 and not p.vaddr >= _START_KERNEL_MAP]
        if not ram:
            ram = [p for p in loads if p.memsz > 0]
        self.segments = sorted(ram, key=lambda p: p.paddr)
        self._starts = [p.paddr for p in self.segments]

    def _segment(self, paddr: int) -> ProgramHeader | None:
        i = bisect.bisect_right(self._starts, paddr) - 1
        if i >= 0:
            seg = self.segments[i]
            if paddr < seg.paddr + seg.memsz:
                return seg
        return None

    def load_page(self, pfn: int) -> bytes:
        """The page; the parts no segment holds in the file read as zeros, as crash and
        libkdumpfile read them (``/proc/vmcore`` segments need not end on a page boundary:
        a PC's first RAM segment ends at 0x9fc00).  A page with no byte in the file raises
        ``PageNotPresent``."""
        size = self.page_size
        base = pfn * size
        out = bytearray(size)
        found = False
        absent: str | None = None
        addr = base
        while addr < base + size:
            seg = self._segment(addr)
            if seg is None:
                absent = absent or f"physical address {addr:#x} is not in the dump"
                addr = self._next_start(addr, base + size)
                continue
            within = addr - seg.paddr
            end = min(base + size, seg.paddr + seg.memsz)
            if within >= seg.filesz:
                absent = absent or f"page at {base:#x} was excluded from the dump"
                addr = end
                continue
            take = min(end - addr, seg.filesz - within)
            at = seg.offset + within
            if at + take > self.source.size:
                raise PageNotPresent(
                    f"page at {base:#x} is missing: the file is cut short", address=base
                )
            out[addr - base : addr - base + take] = self.source.read(at, take, "PT_LOAD data")
            found = True
            addr += take
        if not found:
            raise PageNotPresent(absent or f"page at {base:#x} is not in the dump", address=base)
        return bytes(out)

    def _next_start(self, addr: int, limit: int) -> int:
        """The first segment start after ``addr``, at most ``limit``."""
        i = bisect.bisect_right(self._starts, addr)
        return min(self._starts[i], limit) if i < len(self._starts) else limit

    def present_pfns(self) -> Iterator[int]:
        """Every pfn with bytes in the file (wholly or partly), in address order, once."""
        size = self.page_size
        last_yielded = -1
        for seg in self.segments:
            held = max(0, min(seg.filesz, self.source.size - seg.offset))
            if not held:
                continue
            first = max(seg.paddr // size, last_yielded + 1)
            last = -(-(seg.paddr + held) // size)
            yield from range(first, last)
            last_yielded = max(last_yielded, last - 1)

    def ram_bytes(self) -> int:
        return sum(p.memsz for p in self.segments)


def _program_headers(source: ByteSource, head: ElfHeader) -> list[ProgramHeader]:
    phnum = head.phnum
    if phnum == _PN_XNUM:
        if head.shoff <= 0 or head.shentsize < 64:
            raise NotACrashDump("e_phnum is PN_XNUM but there is no section header 0")
        (phnum,) = _SHDR0_INFO.unpack(source.read(head.shoff + 44, 4, "section header 0"))
    if head.phentsize != _PHDR.size:
        raise UnsupportedDump(f"program header size {head.phentsize} is not 56")
    if phnum == 0 or phnum > _MAX_PHNUM:
        raise NotACrashDump(f"{phnum} program headers is not sane for a vmcore")
    table = source.read(head.phoff, phnum * _PHDR.size, "program headers")
    return [ProgramHeader(*_PHDR.unpack_from(table, i * _PHDR.size)) for i in range(phnum)]


def open_elf(source: ByteSource) -> Layout:
    """Read the ELF header, program headers and notes of an ELF vmcore."""
    if source.size < _EHDR.size:
        raise TruncatedDump("ELF header is cut short", offset=0)
    head = ElfHeader.from_bytes(source.read(0, _EHDR.size, "ELF header"))
    if head.ident[:4] != ELF_MAGIC:
        raise NotACrashDump("no ELF magic")
    if head.ident[4] != 2 or head.ident[5] != 1:
        raise UnsupportedDump("only little-endian ELF64 vmcores are supported")
    if head.type != _ET_CORE:
        raise NotACrashDump(f"ELF type {head.type} is not ET_CORE")
    arch = MACHINES.get(head.machine, f"machine-{head.machine}")
    phdrs = _program_headers(source, head)

    complete = True
    reasons: list[str] = []
    if head.flags & _DUMP_ELF_INCOMPLETE:
        complete = False
        reasons.append("makedumpfile marked the dump incomplete (DUMP_ELF_INCOMPLETE)")

    cpus: list[CpuState] = []
    vmcoreinfo_text = b""
    qemu_notes = 0
    fp_notes = 0
    notes_total = 0
    for ph in phdrs:
        if ph.type != _PT_NOTE or ph.filesz == 0:
            continue
        notes_total += ph.filesz
        if notes_total > _MAX_NOTES:
            raise UnsupportedDump(f"ELF notes exceed {_MAX_NOTES} bytes")
        if ph.offset + ph.filesz > source.size:
            complete = False
            reasons.append("the file ends inside the ELF notes")
        blob = source.read_upto(ph.offset, ph.filesz)
        for note in iter_notes(blob):
            if note.name == "CORE" and note.type == NT_PRSTATUS:
                cpus.append(parse_prstatus(note.desc, len(cpus), arch))
            elif note.name == "VMCOREINFO" and len(note.desc) <= MAX_VMCOREINFO_BYTES:
                vmcoreinfo_text = note.desc
            elif note.name == "QEMU":
                qemu_notes += 1
            elif note.name == "CORE" and note.type == _NT_PRFPREG:
                # The kernel's crash notes hold NT_PRSTATUS only; QEMU adds the FP
                # registers of each vCPU (and, on x86, "QEMU" notes; on arm64 none).
                fp_notes += 1

    loads = [p for p in phdrs if p.type == _PT_LOAD]
    if not loads:
        raise NotACrashDump("the ELF core has no PT_LOAD segments")
    last_end = max(p.offset + p.filesz for p in loads)
    if last_end > source.size:
        complete = False
        reasons.append(
            f"the file is cut short: PT_LOAD data ends at {last_end:#x}, "
            f"the file at {source.size:#x}"
        )
    info = VmcoreInfo.parse(vmcoreinfo_text)
    page_size = info.pagesize or 4096
    if page_size & (page_size - 1) or not 512 <= page_size <= 1 << 20:
        raise UnsupportedDump(f"PAGESIZE={page_size} is not supported")
    pages = ElfPages(source, loads, page_size)

    phys_base = None
    for p in loads:  # kexec's kernel-text segment (makedumpfile get_phys_base_x86_64)
        if p.vaddr >= _START_KERNEL_MAP and arch == "x86_64":
            phys_base = p.paddr - (p.vaddr - _START_KERNEL_MAP)
            break
    return Layout(
        format="qemu-elf" if qemu_notes or fp_notes else "elf",
        compression="none",
        store=pages,
        page_size=page_size,
        arch=arch,
        vmcoreinfo=info,
        cpus=tuple(cpus),
        complete=complete,
        incomplete_reason="; ".join(reasons) or None,
        nr_cpus=len(cpus) or None,
        phys_base=phys_base,
        memory_bytes=pages.ram_bytes,
        notes={"qemu": qemu_notes},
    )
