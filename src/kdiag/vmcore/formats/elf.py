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
from dataclasses import dataclass, field

from kdiag.errors import NotACrashDump, PageNotPresent, TruncatedDump, UnsupportedDump
from kdiag.vmcore.arch import MACHINES, unsupported_message
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
_MAX_ERASEINFO = 1 << 20
#: ``e_machine`` values that are only ever 32-bit (kexec packs i386 PAE and arm LPAE memory
#: in ELF64); EM_MIPS is not here: mips64 uses it too.
_MACHINES32 = frozenset({"i386", "arm", "ppc", "sparc"})
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
        # The kernel-image segments kexec writes before the RAM ones alias RAM. Where they
        # hold file data they are read first, as crash and makedumpfile read an ELF dump
        # (the first PT_LOAD in the table that covers the address): makedumpfile -E
        # --config erases in the first segment only, so the RAM copy still holds what was
        # erased.
        order = {id(p): i for i, p in enumerate(loads)}
        self._first = sorted(
            (p for p in loads if p.memsz > 0 and id(p) not in {id(r) for r in ram}),
            key=lambda p: order[id(p)],
        )
        self._order = order

    def file_offset(self, paddr: int) -> int | None:
        """Where in the file the byte at ``paddr`` is read from; None when it is not there."""
        seg = self._segment(paddr)
        if seg is None or paddr - seg.paddr >= seg.filesz:
            return None
        return seg.offset + paddr - seg.paddr

    def _segment(self, paddr: int) -> ProgramHeader | None:
        i = bisect.bisect_right(self._starts, paddr) - 1
        seg = self.segments[i] if i >= 0 else None
        if seg is not None and not paddr < seg.paddr + seg.memsz:
            seg = None
        for alias in self._first:
            if alias.paddr <= paddr < alias.paddr + alias.filesz and (
                seg is None or self._order[id(alias)] < self._order[id(seg)]
            ):
                return alias
        return seg

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


@dataclass
class _Notes:
    """What the ``PT_NOTE`` segments hold."""

    cpus: list[CpuState] = field(default_factory=list)
    vmcoreinfo: bytes = b""
    eraseinfo: str | None = None
    qemu: int = 0
    fp: int = 0
    cut: bool = False


def _read_notes(source: ByteSource, phdrs: list[ProgramHeader], arch: str) -> _Notes:
    """CPU registers, VMCOREINFO, makedumpfile's ERASEINFO and QEMU's notes."""
    out = _Notes()
    notes_total = 0
    for ph in phdrs:
        if ph.type != _PT_NOTE or ph.filesz == 0:
            continue
        notes_total += ph.filesz
        if notes_total > _MAX_NOTES:
            raise UnsupportedDump(f"ELF notes exceed {_MAX_NOTES} bytes")
        if ph.offset + ph.filesz > source.size:
            out.cut = True
        for note in iter_notes(source.read_upto(ph.offset, ph.filesz)):
            if note.name == "CORE" and note.type == NT_PRSTATUS:
                out.cpus.append(parse_prstatus(note.desc, len(out.cpus), arch))
            elif note.name == "VMCOREINFO" and len(note.desc) <= MAX_VMCOREINFO_BYTES:
                out.vmcoreinfo = note.desc
            elif note.name == "ERASEINFO":
                # makedumpfile -E --config: what it erased, the text of the kdump format's
                # eraseinfo blob ("erase jiffies size 8\n...").
                text = note.desc[:_MAX_ERASEINFO].decode("utf-8", "replace").rstrip("\0")
                out.eraseinfo = text or out.eraseinfo
            elif note.name == "QEMU":
                out.qemu += 1
            elif note.name == "CORE" and note.type == _NT_PRFPREG:
                # The kernel's crash notes hold NT_PRSTATUS only; QEMU adds the FP
                # registers of each vCPU (and, on x86, "QEMU" notes; on arm64 none).
                out.fp += 1
    return out


def _check_ident(head: ElfHeader, raw: bytes) -> str:
    """The architecture of a little-endian ELF64 ``ET_CORE``; anything else is refused."""
    if head.ident[:4] != ELF_MAGIC:
        raise NotACrashDump("no ELF magic")
    elf_class, order = head.ident[4], head.ident[5]
    if elf_class not in (1, 2) or order not in (1, 2):
        raise NotACrashDump(f"ELF class {elf_class} / data encoding {order} is not valid")
    machine = struct.unpack_from("<H" if order == 1 else ">H", raw, 18)[0]
    arch = MACHINES.get(machine, f"machine-{machine}")
    if elf_class != 2 or order != 1 or arch in _MACHINES32:
        raise UnsupportedDump(
            unsupported_message(
                arch,
                bits=32 if elf_class == 1 or arch in _MACHINES32 else 64,
                little_endian=order == 1,
                container=f"ELF{32 if elf_class == 1 else 64}",
            )
        )
    if head.type != _ET_CORE:
        raise NotACrashDump(f"ELF type {head.type} is not ET_CORE")
    return arch


def open_elf(source: ByteSource) -> Layout:
    """Read the ELF header, program headers and notes of an ELF vmcore."""
    if source.size < _EHDR.size:
        raise TruncatedDump("ELF header is cut short", offset=0)
    raw = source.read(0, _EHDR.size, "ELF header")
    head = ElfHeader.from_bytes(raw)
    arch = _check_ident(head, raw)
    phdrs = _program_headers(source, head)

    reasons: list[str] = []
    if head.flags & _DUMP_ELF_INCOMPLETE:
        reasons.append("makedumpfile marked the dump incomplete (DUMP_ELF_INCOMPLETE)")
    notes = _read_notes(source, phdrs, arch)
    if notes.cut:
        reasons.append("the file ends inside the ELF notes")

    loads = [p for p in phdrs if p.type == _PT_LOAD]
    if not loads:
        raise NotACrashDump("the ELF core has no PT_LOAD segments")
    last_end = max(p.offset + p.filesz for p in loads)
    if last_end > source.size:
        reasons.append(
            f"the file is cut short: PT_LOAD data ends at {last_end:#x}, "
            f"the file at {source.size:#x}"
        )
    info = VmcoreInfo.parse(notes.vmcoreinfo)
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
        format="qemu-elf" if notes.qemu or notes.fp else "elf",
        compression="none",
        store=pages,
        page_size=page_size,
        arch=arch,
        vmcoreinfo=info,
        cpus=tuple(notes.cpus),
        complete=not reasons,
        incomplete_reason="; ".join(reasons) or None,
        nr_cpus=len(notes.cpus) or None,
        phys_base=phys_base,
        eraseinfo=notes.eraseinfo,
        memory_bytes=pages.ram_bytes,
        notes={"qemu": notes.qemu},
    )
