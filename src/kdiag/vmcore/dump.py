"""``open(path) -> Dump``: detect the format by content and expose one reading interface.

Detection (first bytes): ``\\x7fELF`` -> ELF vmcore; ``KDUMP   `` -> kdump-compressed;
``makedumpfile`` NUL-padded to 16 bytes -> a flattened stream, indexed in place, whose
reassembled content is again ELF or kdump.  Anything else is :class:`NotACrashDump`.

Nothing proportional to the dump is read at open: headers, notes and VMCOREINFO only (plus
the record headers of a flattened stream).  Pages come on demand through a small LRU.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
import os
import pathlib
import struct
from collections.abc import Sequence
from functools import cached_property
from types import TracebackType
from typing import IO

from kdiag.errors import DumpFormatError, NotACrashDump, TruncatedDump, UnsupportedDump
from kdiag.vmcore.arch.arm64 import Arm64Translator
from kdiag.vmcore.arch.x86_64 import X86_64Translator
from kdiag.vmcore.formats import Layout, ProgressFn
from kdiag.vmcore.formats.diskdump import DISKDUMP_SIGNATURE, open_diskdump
from kdiag.vmcore.formats.elf import ELF_MAGIC, open_elf
from kdiag.vmcore.formats.flattened import FlattenedSource, is_flattened
from kdiag.vmcore.formats.split import Member, combine, member_range
from kdiag.vmcore.memory import PhysicalMemory, Translator, VirtualMemory
from kdiag.vmcore.model import CpuState, LogRecord, Utsname
from kdiag.vmcore.printk import read_kernel_log
from kdiag.vmcore.source import ByteSource, FileSource
from kdiag.vmcore.spool import file_compression, spool, unpack
from kdiag.vmcore.vmcoreinfo import VmcoreInfo

__all__ = ("Dump", "ProgressFn", "open", "open_source", "open_stream")

_UTS_LEN = 6 * 65


class Dump:
    """An open crash dump; use as a context manager or call :meth:`close`."""

    path: pathlib.Path
    format: str
    compression: str
    dump_level: int | None
    complete: bool
    incomplete_reason: str | None
    header_version: int | None
    page_size: int
    arch: str
    vmcoreinfo: VmcoreInfo
    cpus: tuple[CpuState, ...]
    nr_cpus: int
    phys_base: int
    kaslr_offset: int
    flattened: bool
    eraseinfo: str | None
    #: A path other tools (drgn) can open for the same bytes: the dump file, or
    #: ``/proc/self/fd/N`` of the decompressed or spooled copy while the dump is open.
    tool_path: str
    #: The files of a ``makedumpfile --split`` set read as one dump, by pfn; else ``()``.
    members: tuple[pathlib.Path, ...] = ()

    def __init__(self, path: pathlib.Path, source: ByteSource, layout: Layout) -> None:
        self.path = path
        self.tool_path = os.fspath(path)
        self.source = source
        self.layout = layout
        self.format = layout.format
        self.compression = layout.compression
        self.dump_level = layout.dump_level
        self.complete = layout.complete
        self.incomplete_reason = layout.incomplete_reason
        self.header_version = layout.header_version
        self.page_size = layout.page_size
        self.arch = layout.arch
        self.vmcoreinfo = layout.vmcoreinfo
        self.cpus = layout.cpus
        if layout.format.startswith("qemu"):
            # QEMU's notes carry its vCPU number (index + 1) in pr_pid, not a guest pid.
            self.cpus = tuple(dataclasses.replace(cpu, pid=-1) for cpu in layout.cpus)
        self.nr_cpus = layout.nr_cpus or len(layout.cpus)
        self.eraseinfo = layout.eraseinfo
        self.flattened = isinstance(source, FlattenedSource)
        self.phys = PhysicalMemory(layout.store)
        self._translator: Translator | None = None
        self.use_vmcoreinfo(layout.vmcoreinfo)

    def use_vmcoreinfo(self, info: VmcoreInfo) -> None:
        """Read the dump with ``info`` (a VMCOREINFO from elsewhere, like makedumpfile ``-i``).

        Everything derived from VMCOREINFO (phys_base, translation, utsname, memory size,
        crash time) is recomputed on next use.
        """
        self.vmcoreinfo = info
        phys_base = info.phys_base
        if phys_base is None:
            phys_base = self.layout.phys_base
        phys_base = phys_base or 0
        # The kernel writes NUMBER(phys_base) with %ld; the sub header holds the same as u64.
        self.phys_base = phys_base - (1 << 64) if phys_base >= 1 << 63 else phys_base
        self.kaslr_offset = info.kerneloffset or 0
        self._translator = None
        self._log: list[LogRecord] | None = None
        for name in ("virt", "utsname", "memory_bytes", "crash_time"):
            self.__dict__.pop(name, None)

    def scan_vmcoreinfo(self, *, progress: ProgressFn | None = None) -> VmcoreInfo | None:
        """Find the kernel's VMCOREINFO page in memory (for dumps written without the note).

        The kernel keeps the text in a page of its own that starts with ``OSRELEASE=``;
        this reads every page in the dump until it finds one, so it is proportional to the
        dump and only done on request.  Returns the parsed text; use :meth:`use_vmcoreinfo`.
        """
        store = self.layout.store
        pfns = list(store.present_pfns()) if hasattr(store, "present_pfns") else []
        for done, pfn in enumerate(pfns):
            if progress is not None and done % 4096 == 0:
                progress("scan for VMCOREINFO", done, len(pfns))
            try:
                page = self.phys.store.load_page(pfn)
            except DumpFormatError:
                continue
            if page.startswith(b"OSRELEASE="):
                info = VmcoreInfo.parse(page)
                if info.pagesize and info.symbol("init_uts_ns") is not None:
                    return info
        return None

    # --- split sets -------------------------------------------------------------------------

    @property
    def split_range(self) -> tuple[int, int] | None:
        """``(start_pfn, end_pfn)`` of a file of a ``makedumpfile --split`` set read alone."""
        return member_range(self.layout)

    @classmethod
    def combine(cls, members: Sequence[Dump]) -> Dump:
        """The dump a complete ``makedumpfile --split`` set holds, members in any order.

        The new dump owns the members' files (closing it closes them); on an error they
        stay open for the caller to close.

        :raises NotACrashDump: a file is not a split member, belongs to another dump, or
            overlaps another.
        :raises TruncatedDump: a member is missing (the message gives its pfn range).
        """
        source, layout, first = combine(
            [Member(os.fspath(d.path), d.source, d.layout) for d in members]
        )
        lead = next(d for d in members if d.layout is first.layout)
        dump = cls(lead.path, source, layout)
        dump.tool_path = lead.tool_path
        ordered = sorted(members, key=lambda d: d.split_range or (0, 0))
        dump.members = tuple(d.path for d in ordered)
        if lead.vmcoreinfo is not lead.layout.vmcoreinfo:
            dump.use_vmcoreinfo(lead.vmcoreinfo)
        return dump

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Dump:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Dump {self.path.name} {self.format}/{self.compression} {self.arch}>"

    # --- facts ------------------------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        """Bytes read from the file so far."""
        return self.source.bytes_read

    @cached_property
    def memory_bytes(self) -> int | None:
        """RAM of the crashed machine, as crash's ``sys`` MEMORY counts it.

        The sum of ``node_present_pages`` over ``node_data[]`` when VMCOREINFO locates it,
        else, for a complete dump, :attr:`ram_in_dump_bytes` (which leaves out the
        crashkernel reservation). ``None`` for an incomplete dump whose ``node_data`` is in the
        missing part: what the file covers would understate the machine.
        """
        present = self._node_present_pages()
        if present:
            return present * self.page_size
        return self.ram_in_dump_bytes if self.complete else None

    @cached_property
    def ram_in_dump_bytes(self) -> int:
        """RAM the dump file covers: set bits of the 1st bitmap, or the ``PT_LOAD`` sizes."""
        fn = self.layout.memory_bytes
        return fn() if fn is not None else 0

    def _node_present_pages(self) -> int | None:
        info = self.vmcoreinfo
        node_data = info.symbol("node_data")
        nodes = info.length("node_data")
        start = info.offset("pglist_data", "node_start_pfn")
        spanned = info.offset("pglist_data", "node_spanned_pages")
        if node_data is None or not nodes or start is None or spanned is None:
            return None
        # struct pglist_data: node_start_pfn, node_present_pages, node_spanned_pages (longs);
        # only the outer two are exported, so use the middle one only in that layout.
        if spanned - start != 16 or nodes > 1 << 16:
            return None
        try:
            table = self.read_virt(node_data, 8 * nodes)
            total = 0
            for k in range(nodes):
                pgdat = int.from_bytes(table[k * 8 : k * 8 + 8], "little")
                if not pgdat:
                    continue
                fields = self.read_virt(pgdat + start, 24)
                present = int.from_bytes(fields[8:16], "little")
                span = int.from_bytes(fields[16:24], "little")
                if present > span:
                    return None
                total += present
        except DumpFormatError:
            return None
        return total or None

    @cached_property
    def crash_time(self) -> datetime.datetime | None:
        """``CRASHTIME`` from VMCOREINFO (UTC), else the kdump header's dump time."""
        seconds = self.vmcoreinfo.crashtime
        if seconds is not None and 0 < seconds < 253_402_300_800:
            try:
                return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
            except (OverflowError, OSError, ValueError):
                pass
        return self.layout.header_time

    @cached_property
    def utsname(self) -> Utsname | None:
        """The kdump header's utsname when filled, else ``init_uts_ns`` read from memory."""
        if self.layout.header_utsname is not None:
            return self.layout.header_utsname
        return self.read_init_uts_ns()

    def read_init_uts_ns(self) -> Utsname | None:
        """``init_uts_ns.name`` through ``SYMBOL(init_uts_ns)``; ``None`` when unreadable."""
        addr = self.vmcoreinfo.symbol("init_uts_ns")
        if addr is None:
            return None
        known = self.vmcoreinfo.offset("uts_namespace", "name")
        # Older kernels put a kref (4 bytes, padded) before the name and did not export it.
        candidates = [known] if known is not None else [0, 4, 8]
        for offset in candidates:
            try:
                uts = Utsname.from_bytes(self.read_virt(addr + offset, _UTS_LEN))
            except DumpFormatError:
                return None
            if known is not None or uts.sysname == "Linux":
                return uts
        return None

    # --- memory -----------------------------------------------------------------------------

    @property
    def translator(self) -> Translator:
        if self._translator is None:
            info = self.vmcoreinfo
            if self.arch == "arm64":
                # The kdump sub-header's phys_base is PHYS_OFFSET on arm64 (makedumpfile).
                self._translator = Arm64Translator.from_vmcoreinfo(
                    self.phys, info, phys_base=self.layout.phys_base
                )
                return self._translator
            if self.arch != "x86_64":
                raise UnsupportedDump(f"address translation for {self.arch} is not implemented")
            pgd = info.symbol("init_top_pgt")
            if pgd is None:
                pgd = info.symbol("init_level4_pgt")
            self._translator = X86_64Translator(
                self.phys,
                phys_base=self.phys_base,
                pgd_vaddr=pgd,
                five_level=info.pgtable_l5_enabled,
                sme_mask=info.number("sme_mask") or 0,
                kernel_image_size=info.number("KERNEL_IMAGE_SIZE"),
            )
        return self._translator

    @cached_property
    def virt(self) -> VirtualMemory:
        return VirtualMemory(self.phys, self.translator)

    def read_phys(self, paddr: int, size: int, *, zero_excluded: bool = False) -> bytes:
        """Bytes at a physical address; ``PageNotPresent`` for excluded or missing pages.

        ``zero_excluded=True`` reads such pages as zeros instead (crash's
        ``set zero_excluded``); corrupt pages still raise.
        """
        return self.phys.read(paddr, size, fill=zero_excluded)

    def read_virt(self, vaddr: int, size: int, *, zero_excluded: bool = False) -> bytes:
        """Bytes at a kernel virtual address (page-table walk, no vmlinux needed).

        An unmapped address raises ``PageNotPresent`` whatever ``zero_excluded`` says.
        """
        return self.virt.read(vaddr, size, fill=zero_excluded)

    def read_symbol(self, name: str, size: int, *, zero_excluded: bool = False) -> bytes:
        """``size`` bytes at ``SYMBOL(name)`` from VMCOREINFO."""
        return self.read_virt(self.vmcoreinfo.need_symbol(name), size, zero_excluded=zero_excluded)

    def kernel_log(self) -> list[LogRecord]:
        """The printk log: lockless ring buffer (5.10+) or structured ``log_buf`` (3.5-5.9).

        Read once and kept; each call returns a new list of the same records.
        """
        if self._log is None:
            self._log = read_kernel_log(self.virt, self.vmcoreinfo)
        return list(self._log)


def _detect(source: ByteSource, progress: ProgressFn | None) -> tuple[ByteSource, Layout]:
    head = source.read_upto(0, 16)
    if is_flattened(head):
        flat = FlattenedSource(source, progress=progress)
        inner = flat.read_upto(0, 16)
        if inner[:8] == DISKDUMP_SIGNATURE:
            layout = open_diskdump(flat, progress=progress)
        elif inner[:4] == ELF_MAGIC:
            layout = open_elf(flat)
        else:
            raise NotACrashDump("the flattened stream holds neither a kdump nor an ELF file")
        if layout.format == "kdump":
            layout.format = "flattened"
        if not flat.complete:
            layout.complete = False
            reasons = [r for r in (flat.incomplete_reason, layout.incomplete_reason) if r]
            layout.incomplete_reason = "; ".join(reasons)
        return flat, layout
    if head[:8] == DISKDUMP_SIGNATURE:
        return source, open_diskdump(source, progress=progress)
    if head[:4] == ELF_MAGIC:
        return source, open_elf(source)
    if len(head) < 4:
        raise NotACrashDump("the file is empty or too short to be a crash dump")
    raise NotACrashDump("no known crash-dump signature (ELF, KDUMP or flattened)")


def open(  # the contract's name, like io.open
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    progress: ProgressFn | None = None,
    vmcoreinfo: str | bytes | None = None,
) -> Dump:
    """Open a crash dump, detecting its format from its content.

    A list of paths is the files of one ``makedumpfile --split`` set, in any order, read as
    one dump (:meth:`Dump.combine`); a list of one path is that path.

    A zstd, gzip, xz or bzip2 file is decompressed into a private temporary copy first
    (:mod:`kdiag.vmcore.spool`). ``vmcoreinfo`` replaces the dump's own VMCOREINFO (text of
    ``KEY=VALUE`` lines), for dumps written without it or with a wrong one.

    :raises ConfigError: the path cannot be opened (missing, no permission, a directory).
    :raises DumpFormatError: the file is not a crash dump this reader can read, or the
        files are not one complete split set (the message names the file or the gap).
    """
    if not isinstance(path, (str, os.PathLike)):
        return _open_set(list(path), progress, vmcoreinfo)
    plain = FileSource(path)
    file = _uncompressed(plain, os.fspath(path), progress)
    tool_path = os.fspath(path) if file is plain else f"/proc/self/fd/{file.fd}"
    return _open_source(file, pathlib.Path(path), tool_path, progress, vmcoreinfo)


def _open_set(
    paths: list[str | os.PathLike[str]],
    progress: ProgressFn | None,
    vmcoreinfo: str | bytes | None,
) -> Dump:
    if not paths:
        raise NotACrashDump("no dump files given")
    if len(paths) == 1:
        return open(paths[0], progress=progress, vmcoreinfo=vmcoreinfo)
    members: list[Dump] = []
    try:
        for member in paths:
            members.append(open(member, progress=progress))
        dump = Dump.combine(members)
    except BaseException:
        for opened in members:
            opened.close()
        raise
    if vmcoreinfo is not None:
        dump.use_vmcoreinfo(VmcoreInfo.parse(vmcoreinfo))
    return dump


def open_stream(
    stream: IO[bytes],
    *,
    name: str = "-",
    progress: ProgressFn | None = None,
    vmcoreinfo: str | bytes | None = None,
) -> Dump:
    """Open a crash dump read from a stream (``kdiag analyze -`` reads standard input).

    The stream is copied into a private temporary file (mode 0600, already unlinked), then
    read like :func:`open` reads a path; compressed streams are decompressed too.
    """
    fd = spool(stream, what="read the dump", name=name, progress=progress)
    file = _uncompressed(FileSource.from_fd(fd), name, progress)
    return _open_source(file, pathlib.Path(name), f"/proc/self/fd/{file.fd}", progress, vmcoreinfo)


def open_source(
    source: ByteSource,
    *,
    name: str,
    progress: ProgressFn | None = None,
    vmcoreinfo: str | bytes | None = None,
) -> Dump:
    """Open a crash dump read through ``source`` (a remote file read by ranges, say); the
    dump owns the source and closes it.  A compressed file (zstd, gzip, ...) is refused:
    reading it needs the whole file.

    :raises UnsupportedDump: a compressed file.
    :raises DumpFormatError: not a crash dump this reader can read.
    """
    kind = file_compression(source.read_upto(0, 8))
    if kind is not None:
        source.close()
        raise UnsupportedDump(f"{name} is {kind}-compressed: copy and decompress it first")
    return _open_source(source, pathlib.Path(name), name, progress, vmcoreinfo)


def _uncompressed(file: FileSource, name: str, progress: ProgressFn | None) -> FileSource:
    """``file`` itself, or a temporary decompressed copy of it when it is compressed."""
    kind = file_compression(file.read_upto(0, 8))
    if kind is None:
        return file
    try:
        with builtins.open(os.dup(file.fd), "rb") as raw:
            fd = unpack(raw, kind, name=name, progress=progress)
    finally:
        file.close()
    return FileSource.from_fd(fd)


def _open_source(
    file: ByteSource,
    path: pathlib.Path,
    tool_path: str,
    progress: ProgressFn | None,
    vmcoreinfo: str | bytes | None,
) -> Dump:
    try:
        source, layout = _detect(file, progress)
    except struct.error as exc:
        file.close()
        raise TruncatedDump(f"a header is cut short: {exc}") from exc
    except BaseException:
        file.close()
        raise
    dump = Dump(path, source, layout)
    dump.tool_path = tool_path
    if vmcoreinfo is not None:
        dump.use_vmcoreinfo(VmcoreInfo.parse(vmcoreinfo))
    return dump
