"""The catalog's frozen records: what the store hands out about dumps, paths and groups.

Nothing here reads a file or a database; :mod:`kdiag.store.dumps` builds these from rows and
:mod:`kdiag.catalog.scan` from what it indexed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = (
    "DumpDetail",
    "DumpEntry",
    "DumpGroup",
    "DumpPath",
    "Occurrence",
    "Rejected",
    "ScanOutcome",
    "ScanReport",
)


def _iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class DumpPath:
    """One file of a dump: a copy, a rename, or a member of a ``makedumpfile --split`` set.

    ``part`` numbers the members of a split set from 0 (0 for a whole dump); ``size`` is the
    file's own size (a ``.zst`` copy is smaller than the dump it holds); ``compression``
    the file's own compression (``zstd``, ``gzip``, ...) or ``None``.
    """

    path: str
    part: int
    size: int
    compression: str | None
    seen_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "part": self.part,
            "size": self.size,
            "compression": self.compression,
            "seen_at": _iso(self.seen_at),
        }


@dataclass(frozen=True)
class DumpEntry:
    """One crash dump in the catalog, whatever the number of copies of it.

    ``identity`` is the content identity (:mod:`kdiag.catalog.identity`); ``paths`` every
    file known to hold it, split-set members in ``part`` order. ``host`` comes from the
    caller, else the ``/var/crash`` folder name, else the dump's utsname nodename. ``time``
    is the crash time (``CRASHTIME``, else the dump header's time, else the folder name's
    time), ``None`` when nothing says. ``size`` is the size of the dump itself (the
    decompressed size of a ``.zst`` copy; the sum of a split set's files). ``klass`` is the
    panic class (:data:`kdiag.vmcore.panic.CLASSES`), ``signature`` and ``signature_id``
    the crash signature (``None`` when the log has none). ``complete`` is False for a
    truncated or unfinished dump, ``incomplete_reason`` says why.
    """

    id: str
    account_id: str
    identity: str
    paths: tuple[str, ...]
    host: str | None
    time: dt.datetime | None
    format: str
    compression: str
    arch: str
    size: int
    release: str | None
    klass: str
    signature: str | None
    signature_id: str | None
    complete: bool
    incomplete_reason: str | None
    source: str
    indexed_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identity": self.identity,
            "paths": list(self.paths),
            "host": self.host,
            "time": _iso(self.time),
            "format": self.format,
            "compression": self.compression,
            "arch": self.arch,
            "size": self.size,
            "release": self.release,
            "class": self.klass,
            "signature": self.signature,
            "signature_id": self.signature_id,
            "complete": self.complete,
            "incomplete_reason": self.incomplete_reason,
            "source": self.source,
            "indexed_at": _iso(self.indexed_at),
        }


@dataclass(frozen=True)
class DumpDetail:
    """A dump with what ``kdiag dumps show`` prints: the triage summary as ``kdiag analyze
    --json`` gives it (``summary``; its ``path`` is the file first indexed), the summary
    block as ``kdiag analyze`` prints it, the last lines of the kernel log, and every file."""

    entry: DumpEntry
    files: tuple[DumpPath, ...]
    summary: dict[str, Any] = field(compare=False)
    summary_text: str
    log_tail: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.entry.to_json(),
            "files": [f.to_json() for f in self.files],
            "summary": self.summary,
            "log_tail": list(self.log_tail),
        }


@dataclass(frozen=True)
class Rejected:
    """A file the scan could not index: ``code`` is the :mod:`kdiag.errors` class's code
    (``NotACrashDump``, ``TruncatedDump``, ``UnsupportedDump``, ``CorruptPage``,
    ``DumpFormatError``, ``ConfigError`` for a file that cannot be opened)."""

    path: str
    code: str
    message: str
    size: int | None
    seen_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "code": self.code,
            "message": self.message,
            "size": self.size,
            "seen_at": _iso(self.seen_at),
        }


@dataclass(frozen=True)
class DumpGroup:
    """The dumps that share a crash signature (ABRT Analytics' "problem" of kernel oopses).

    ``first_seen``/``last_seen`` are the earliest and latest crash times (the index time
    for a dump with none); ``hosts`` and ``releases`` are sorted and distinct.
    """

    signature_id: str
    signature: str
    klass: str
    count: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    hosts: tuple[str, ...]
    releases: tuple[str, ...]
    dump_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "signature_id": self.signature_id,
            "signature": self.signature,
            "class": self.klass,
            "count": self.count,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "hosts": list(self.hosts),
            "releases": list(self.releases),
            "dump_ids": list(self.dump_ids),
        }


@dataclass(frozen=True)
class Occurrence:
    """How many dumps of one signature crashed in one period (``start`` inclusive, a day
    or an hour long)."""

    signature_id: str
    start: dt.datetime
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"signature_id": self.signature_id, "start": _iso(self.start), "count": self.count}


@dataclass(frozen=True)
class ScanOutcome:
    """What happened to one file (or split set) in a scan.

    ``status``: ``new`` (a dump the catalog did not hold), ``matched`` (read, and found to
    be a dump the catalog held: a rename, a copy, or a file rewritten with the same dump;
    its path is added), ``unchanged`` (the path was indexed before and its file has not
    changed, so it was not read again), ``rejected`` (``error`` says why).
    """

    paths: tuple[str, ...]
    status: str
    entry: DumpEntry | None
    error: Rejected | None

    def to_json(self) -> dict[str, Any]:
        return {
            "paths": list(self.paths),
            "status": self.status,
            "dump_id": None if self.entry is None else self.entry.id,
            "error": None if self.error is None else self.error.to_json(),
        }


@dataclass(frozen=True)
class ScanReport:
    """A whole scan: one outcome per file or split set, in the order found."""

    outcomes: tuple[ScanOutcome, ...]
    seconds: float
    bytes_read: int

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "scanned": len(self.outcomes),
            "new": self.count("new"),
            "matched": self.count("matched"),
            "unchanged": self.count("unchanged"),
            "rejected": self.count("rejected"),
            "seconds": round(self.seconds, 3),
            "bytes_read": self.bytes_read,
            "outcomes": [o.to_json() for o in self.outcomes],
        }
