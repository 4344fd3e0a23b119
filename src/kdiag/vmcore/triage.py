"""One pass over a dump: what ``crash``'s ``sys`` shows, as far as no debuginfo allows.

>>> with kdiag.vmcore.open("vmcore") as dump:          # doctest: +SKIP
...     t = triage(dump)
...     print(t.release, t.panic.klass, t.panic.signature)

Everything comes from the dump headers, VMCOREINFO, ``init_uts_ns`` and the kernel log (via
:mod:`kdiag.vmcore.panic`); nothing needs a vmlinux. Fields that cannot be recovered are
``None`` rather than guessed: the crash time of a QEMU host dump (no ``CRASHTIME``: the guest
never reached ``crash_kexec()``), the panicking CPU when the log has no ``CPU:`` line.

Uptime is the timestamp of the last log record (``local_clock()``), not crash's jiffies-based
value; the two differ by up to about a second.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdiag.errors import DumpFormatError
from kdiag.vmcore.panic import PanicInfo, classify

if TYPE_CHECKING:
    from kdiag.vmcore.dump import Dump
    from kdiag.vmcore.model import LogRecord

__all__ = ("KDUMP_FORMATS", "SCHEMA_VERSION", "Triage", "triage")

#: The version of :meth:`Triage.to_json`'s shape (``schema_version`` in ``kdiag analyze
#: --json``). Adding a field keeps it; removing or renaming a field, or changing a field's
#: type, unit or meaning, raises it (docs/analyze.md).
SCHEMA_VERSION = 1

#: Formats built on makedumpfile's kdump-compressed layout (page filtering possible).
KDUMP_FORMATS = frozenset({"kdump", "flattened", "qemu-kdump"})


@dataclass(frozen=True)
class Triage:
    """The first answers about a crash dump. ``to_json()`` is ``kdiag analyze --json``."""

    path: str
    format: str
    compression: str
    dump_level: int | None
    complete: bool
    incomplete_reason: str | None
    header_version: int | None
    arch: str
    page_size: int
    release: str | None
    version: str | None
    machine: str | None
    nodename: str | None
    domainname: str | None
    build_id: str | None
    crash_time: datetime.datetime | None
    uptime_s: float | None
    cpus: int
    memory_bytes: int | None
    phys_base: int
    kaslr_offset: int
    cpu_pids: tuple[tuple[int, int], ...]
    panic: PanicInfo
    log_records: int
    log_error: str | None
    eraseinfo: str | None
    bytes_read: int
    log: tuple[LogRecord, ...] = field(default=(), repr=False, compare=False)

    @property
    def no_signature_reason(self) -> str | None:
        """Why there is no crash signature (``None`` when there is one)."""
        if self.panic.signature is not None:
            return None
        if self.log_error:
            return "the kernel log is unreadable"
        if not self.log_records:
            return "the kernel log is empty"
        return "no panic or oops report in the kernel log"

    @property
    def partial(self) -> bool:
        """crash's ``[PARTIAL DUMP]``: a kdump-format file written with page filtering."""
        return self.format in KDUMP_FORMATS and bool(self.dump_level)

    def to_json(self) -> dict[str, Any]:
        crash_time = None
        if self.crash_time is not None:
            crash_time = self.crash_time.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "format": self.format,
            "compression": self.compression,
            "dump_level": self.dump_level,
            "header_version": self.header_version,
            "complete": self.complete,
            "incomplete_reason": self.incomplete_reason,
            "partial": self.partial,
            "arch": self.arch,
            "release": self.release,
            "version": self.version,
            "machine": self.machine,
            "nodename": self.nodename,
            "domainname": self.domainname,
            "build_id": self.build_id,
            "crash_time": crash_time,
            "uptime_s": None if self.uptime_s is None else round(self.uptime_s, 6),
            "cpus": self.cpus,
            "memory_bytes": self.memory_bytes,
            "page_size": self.page_size,
            "phys_base": self.phys_base,
            "kaslr_offset": self.kaslr_offset,
            "cpu_pids": {str(cpu): pid for cpu, pid in self.cpu_pids},
            "panic": {
                "message": self.panic.message,
                "panic_line": self.panic.panic_line,
                "report_line": self.panic.report_line,
                "cpu": self.panic.cpu,
                "pid": self.panic.pid,
                "comm": self.panic.comm,
                "class": self.panic.klass,
                "title": self.panic.title,
                "frames": list(self.panic.frames),
                "signature": self.panic.signature,
                "signature_id": self.panic.signature_id,
                "no_signature_reason": self.no_signature_reason,
            },
            "log_records": self.log_records,
            "log_error": self.log_error,
            "eraseinfo": self.eraseinfo,
            "bytes_read": self.bytes_read,
        }


def _log_lines(records: tuple[LogRecord, ...]) -> list[str]:
    lines: list[str] = []
    for rec in records:
        lines.extend(rec.text.split("\n"))
    return lines


def triage(dump: Dump) -> Triage:
    """Read what a dump says about its crash. Never raises for an unreadable log or utsname:
    those fields come back ``None`` (and ``log_error`` says why)."""
    info = dump.vmcoreinfo
    log: tuple[LogRecord, ...] = ()
    log_error: str | None = None
    try:
        log = tuple(dump.kernel_log())
    except DumpFormatError as exc:
        log_error = str(exc)
    try:
        uts = dump.utsname
    except DumpFormatError:
        uts = None
    release = (uts.release if uts and uts.release else None) or info.osrelease
    panic = classify(_log_lines(log))
    uptime = log[-1].ts_nsec / 1e9 if log else None
    try:
        memory = dump.memory_bytes
    except DumpFormatError:
        memory = None
    eraseinfo = getattr(dump, "eraseinfo", None)
    if isinstance(eraseinfo, bytes):
        eraseinfo = eraseinfo.decode("utf-8", "replace")
    return Triage(
        path=str(dump.path),
        format=dump.format,
        compression=dump.compression,
        dump_level=dump.dump_level,
        complete=dump.complete,
        incomplete_reason=dump.incomplete_reason,
        header_version=dump.header_version,
        arch=dump.arch,
        page_size=dump.page_size,
        release=release,
        version=uts.version if uts else None,
        machine=(uts.machine if uts and uts.machine else None) or dump.arch,
        nodename=uts.nodename if uts else None,
        domainname=uts.domainname if uts else None,
        build_id=info.build_id,
        crash_time=dump.crash_time,
        uptime_s=uptime,
        cpus=dump.nr_cpus,
        memory_bytes=memory,
        phys_base=dump.phys_base,
        kaslr_offset=dump.kaslr_offset,
        cpu_pids=tuple((cpu.cpu, cpu.pid) for cpu in dump.cpus),
        panic=panic,
        log_records=len(log),
        log_error=log_error,
        eraseinfo=eraseinfo or None,
        bytes_read=dump.bytes_read,
        log=log,
    )
