"""A dump's content identity: the same crash dump gives the same identity under any name.

Nothing is read for it that triage has not read already. The identity is the SHA-256 of,
in this order (each field length-prefixed, so no two field lists hash alike):

1. the version tag ``kdiag-dump-identity/1``;
2. stable header facts of the dump as the reader sees it after any file compression is
   undone: format, architecture, page size, dump level, header version, CPU count, the
   dump's size in bytes, whether it is complete, and the pfn range of a split-set member;
3. the first 4 KiB of the dump (the ELF header and program headers, or the kdump header
   with its utsname and dump time): read at open;
4. the VMCOREINFO note, key by key (it holds ``CRASHTIME``, the build id and the KASLR
   offset: different for every crash of one kernel);
5. every CPU's saved registers and pid (``NT_PRSTATUS``);
6. the kernel log, record by record: sequence number, timestamp in nanoseconds, bytes.

What this gives:

* **renamed and copied files** hold the same bytes, so the same identity; a ``.zst``,
  ``.gz``, ``.xz`` or ``.bz2`` copy too, because the reader sees the decompressed dump;
* **two dumps of one kernel** differ in ``CRASHTIME``, in the registers, and in the log's
  timestamps (nanoseconds since boot): different identities even for the same panic on
  the same machine, and so do two host-side dumps of one guest (their logs go on);
* **a truncated copy** differs in size and completeness (and usually in what log it
  still holds): a separate entry, recorded incomplete, never merged into the whole one;
* **the same crash written twice** (``/proc/vmcore`` as ELF and ``makedumpfile -c``) differs
  in format and size: two entries, which share a signature and so a group.

It is not a hash of the whole file: two files that agree on everything above but differ
in a page triage never reads are one dump to the catalog. Page contents outside the
headers, notes and log are not evidence the catalog shows, and reading them would make a
scan cost the size of the dumps.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING

from kdiag.errors import DumpFormatError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kdiag.vmcore.dump import Dump
    from kdiag.vmcore.model import LogRecord

__all__ = ("HEAD_BYTES", "IDENTITY_VERSION", "content_identity")

IDENTITY_VERSION = b"kdiag-dump-identity/1"
#: How much of the start of the dump goes into the identity.
HEAD_BYTES = 4096

_LEN = struct.Struct("<Q")
_RECORD = struct.Struct("<QQ")
_CPU = struct.Struct("<qq")


class _Hasher:
    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def field(self, data: bytes) -> None:
        self._sha.update(_LEN.pack(len(data)))
        self._sha.update(data)

    def text(self, value: object) -> None:
        self.field(repr(value).encode())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _head(dump: Dump) -> bytes:
    try:
        return dump.source.read_upto(0, HEAD_BYTES)
    except DumpFormatError:
        return b""


def content_identity(dump: Dump, log: Iterable[LogRecord] | None = None) -> str:
    """The 64-hex-digit content identity of an open dump.

    ``log`` is the kernel log triage read (:attr:`kdiag.vmcore.triage.Triage.log`); without
    it the dump's own cached log is used, or none when it cannot be read.
    """
    h = _Hasher()
    h.field(IDENTITY_VERSION)
    for fact in (
        dump.format,
        dump.arch,
        dump.page_size,
        dump.dump_level,
        dump.header_version,
        dump.nr_cpus,
        dump.source.size,
        dump.complete,
        dump.split_range,
        len(dump.members),
    ):
        h.text(fact)
    h.field(_head(dump))
    info = dump.vmcoreinfo.raw
    h.text(len(info))
    for key in sorted(info):
        h.field(key.encode("utf-8", "surrogateescape"))
        h.field(info[key].encode("utf-8", "surrogateescape"))
    h.text(len(dump.cpus))
    for cpu in dump.cpus:
        h.field(_CPU.pack(cpu.cpu, cpu.pid))
        h.text(sorted(cpu.registers.items()))
    if log is None:
        try:
            log = dump.kernel_log()
        except DumpFormatError:
            log = ()
    for record in log:
        h.field(_RECORD.pack(record.seq & (2**64 - 1), record.ts_nsec & (2**64 - 1)))
        h.field(record.raw if record.raw is not None else record.text.encode("utf-8", "replace"))
    return h.hexdigest()
