"""Index crash dumps: :func:`index_dump` for one dump, :func:`scan` for trees and files.

A dump is read once, exactly as ``kdiag analyze`` reads it (:func:`kdiag.vmcore.triage.triage`:
headers, notes, VMCOREINFO, the kernel log), and recorded under its content identity
(:mod:`kdiag.catalog.identity`). A path indexed before whose file is unchanged (same device,
inode, size and modification time) is not read again; a new path to a known dump (a rename,
a copy) is read, recognised by its identity and added to that dump's paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kdiag import vmcore
from kdiag.catalog.identity import content_identity
from kdiag.catalog.names import folder_facts
from kdiag.catalog.records import DumpEntry, Rejected, ScanOutcome, ScanReport
from kdiag.catalog.writes import READER_BUGS, Pending, ScanWriter, outcome, rejects
from kdiag.errors import ConfigError, KdiagError
from kdiag.store import dump_batch
from kdiag.store import dumps as dumpdb
from kdiag.store._base import StoreBase
from kdiag.vmcore.describe import summary_block
from kdiag.vmcore.discover import find_dumps
from kdiag.vmcore.formats.diskdump import DISKDUMP_SIGNATURE, DiskDumpHeader, KdumpSubHeader
from kdiag.vmcore.spool import file_compression
from kdiag.vmcore.triage import triage

__all__ = (
    "LOG_TAIL_LINES",
    "DumpOpener",
    "ScanProgress",
    "index_dump",
    "scan",
    "scan_files",
    "targets",
)

#: Kernel log lines kept for ``kdiag dumps show``.
LOG_TAIL_LINES = 50
_SOURCE_NAMES = frozenset({"scan", "drill", "api"})

#: ``progress(done, total, path)`` after each file or split set of a scan.
ScanProgress = Callable[[int, int, str], None]
#: ``opener(path)`` -> an open dump, for files that are not local (``scan_files``).
DumpOpener = Callable[[str], vmcore.Dump]


@dataclass(frozen=True)
class _Done:
    """A file whose outcome needs no write: unchanged, or rejected as it was before."""

    outcome: ScanOutcome
    unchanged_id: str | None = None


def _check_source(source: str) -> str:
    if source not in _SOURCE_NAMES:
        raise ConfigError(
            f"unknown dump source {source!r}: one of {', '.join(sorted(_SOURCE_NAMES))}"
        )
    return source


_NONBLOCK = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _regular(path: str) -> os.stat_result:
    """``os.stat`` of a regular file; :class:`ConfigError` for anything else (a named pipe
    would block the scan on open, a device would never end)."""
    try:
        st = os.stat(path)
    except PermissionError as exc:
        raise ConfigError(f"cannot read {path}: permission denied") from exc
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ConfigError(f"{path} is {kind}, not a crash dump")
    return st


def _stat(path: str) -> dumpdb.FileFacts:
    """The file's facts; :class:`ConfigError` when it cannot be looked at or read."""
    _regular(path)
    try:
        fd = os.open(path, _NONBLOCK)
    except PermissionError as exc:
        raise ConfigError(f"cannot read {path}: permission denied") from exc
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the stat and the open
            raise ConfigError(f"{path} is not a regular file")
        head = os.pread(fd, 8, 0)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return dumpdb.FileFacts(
        path=path,
        part=0,
        size=st.st_size,
        compression=file_compression(head),
        device=st.st_dev,
        inode=st.st_ino,
        mtime_ns=st.st_mtime_ns,
    )


@dataclass(frozen=True)
class _Known:
    """What the store knew, before a scan, about the paths it is about to read."""

    files: dict[str, tuple[dumpdb.FileFacts, str]]
    rejects: dict[str, tuple[Rejected, int | None, int | None]]

    @classmethod
    def load(cls, store: StoreBase, paths: Sequence[str], account: str) -> _Known:
        return cls(
            dumpdb.known_files(store, paths, account_id=account),
            dumpdb.known_rejects(store, paths, account_id=account),
        )

    def unchanged(self, files: Sequence[dumpdb.FileFacts]) -> str | None:
        """The id of the dump all ``files`` were indexed as, when none changed since."""
        ids = set()
        for file in files:
            known = self.files.get(file.path)
            if known is None:
                return None
            before, dump_id = known
            if (before.size, before.device, before.inode, before.mtime_ns) != (
                file.size,
                file.device,
                file.inode,
                file.mtime_ns,
            ):
                return None
            ids.add(dump_id)
        return ids.pop() if len(ids) == 1 else None

    def still_rejected(self, files: Sequence[dumpdb.FileFacts]) -> Rejected | None:
        """The rejection of a single file that has not changed since it was rejected."""
        if len(files) != 1 or files[0].path not in self.rejects:
            return None
        rejected, size, mtime_ns = self.rejects[files[0].path]
        return rejected if (size, mtime_ns) == (files[0].size, files[0].mtime_ns) else None


def _log_tail(log: Sequence[vmcore.LogRecord]) -> str:
    lines = vmcore.format_dmesg(log[-LOG_TAIL_LINES:]).splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines)


def _read(
    paths: Sequence[str],
    files: Sequence[dumpdb.FileFacts],
    host: str | None,
    source: str,
    opener: DumpOpener | None = None,
) -> tuple[dumpdb.NewDump, list[dumpdb.FileFacts], int]:
    """Open, triage and identify one dump; the facts to record, its files in part order,
    and the bytes read."""
    opened = (
        opener(paths[0])
        if opener is not None
        else vmcore.open(list(paths) if len(paths) > 1 else paths[0])
    )
    with opened as dump:
        result = triage(dump)
        identity = content_identity(dump, result.log)
        members = [os.fspath(m) for m in dump.members]
        size = dump.source.size if not members else sum(f.size for f in files)
        bytes_read = dump.bytes_read
    if members:
        by_path = {f.path: f for f in files}
        ordered = [by_path[m] for m in members if m in by_path]
        ordered += [f for f in files if f not in ordered]
    else:
        ordered = list(files)
    ordered = [
        dumpdb.FileFacts(f.path, part, f.size, f.compression, f.device, f.inode, f.mtime_ns)
        for part, f in enumerate(ordered)
    ]
    folder = folder_facts(paths[0])
    facts = dumpdb.NewDump(
        identity=identity,
        host=host or folder.host or result.nodename or None,
        crash_time=result.crash_time or folder.time,
        format=result.format,
        compression=result.compression,
        arch=result.arch,
        size=size,
        release=result.release,
        klass=result.panic.klass,
        signature=result.panic.signature,
        signature_id=result.panic.signature_id,
        complete=result.complete,
        incomplete_reason=result.incomplete_reason,
        source=source,
        summary={"triage": result.to_json(), "text": summary_block(result)},
        log_tail=_log_tail(result.log),
    )
    return facts, ordered, bytes_read


def _examine(
    paths: Sequence[str],
    *,
    host: str | None,
    source: str,
    known: _Known | None,
    given: Sequence[dumpdb.FileFacts] | None = None,
    opener: DumpOpener | None = None,
) -> _Done | Pending:
    """Look at and read one file or split set: what to record about it (nothing written)."""
    files: list[dumpdb.FileFacts] = []
    try:
        files = list(given) if given is not None else [_stat(p) for p in paths]
        if known is not None:
            dump_id = known.unchanged(files)
            if dump_id is not None:  # filled in by scan() for all such files at once
                return _Done(ScanOutcome(tuple(paths), "unchanged", None, None), dump_id)
            before = known.still_rejected(files)
            if before is not None:  # the same bad file as last time: not read again
                return _Done(ScanOutcome(tuple(paths), "rejected", None, before))
        facts, ordered, bytes_read = _read(paths, files, host, source, opener)
    except KdiagError as exc:
        return Pending(tuple(paths), rejects(paths, files, exc.code, str(exc)), exc, 0)
    return Pending(tuple(paths), (dump_batch.NewFiles(facts, ordered),), None, bytes_read)


def index_dump(
    store: StoreBase,
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    host: str | None = None,
    source: str = "drill",
    account_id: str | None = None,
) -> DumpEntry:
    """Index one dump (a file, or the files of one ``makedumpfile --split`` set) and return
    its catalog entry: a new one, or the one it already had under its content identity
    (then ``path`` is added to its paths).

    ``host`` names the machine (default: the ``/var/crash`` folder name's host, else the
    dump's nodename); ``source`` is ``drill``, ``scan`` or ``api``. The file is always read
    (a drill wants the triage of what it found).

    :raises DumpFormatError: (and subclasses: ``NotACrashDump``, ``TruncatedDump``, ...) the
        file is not a readable dump; it is recorded as rejected with that code first.
    :raises ConfigError: the file cannot be opened (also recorded), or ``source`` is unknown.
    """
    _check_source(source)
    names = (
        [os.fspath(path)] if isinstance(path, (str, os.PathLike)) else [os.fspath(p) for p in path]
    )
    if not names:
        raise ConfigError("no dump file given")
    account = dumpdb.checked_account(store, account_id)
    pending = _examine(names, host=host, source=source, known=None)
    assert isinstance(pending, Pending)  # nothing is known, so the file is read
    found = outcome(pending, dump_batch.record_batch(store, pending.items, account_id=account))
    if pending.error is not None:
        raise pending.error
    assert found.entry is not None
    return found.entry


# --- scans --------------------------------------------------------------------------------------


def _split_key(path: str) -> tuple[object, ...] | None:
    """What the files of one ``makedumpfile --split`` set share (utsname, dump time, pfn
    count), from the kdump header and sub header alone (two small reads); ``None`` for a
    file that is not an uncompressed split member, or cannot be read (indexing says why)."""
    try:
        _regular(path)
        fd = os.open(path, _NONBLOCK)
        try:
            raw = os.pread(fd, DiskDumpHeader.SIZE, 0)
            if len(raw) < DiskDumpHeader.SIZE or raw[:8] != DISKDUMP_SIGNATURE:
                return None
            head = DiskDumpHeader.from_bytes(raw)
            if head.header_version < 2 or not 512 <= head.block_size <= 1 << 20:
                return None
            raw_sub = os.pread(fd, KdumpSubHeader.SIZE, head.block_size)
            if len(raw_sub) < KdumpSubHeader.SIZE:
                return None
            sub = KdumpSubHeader.from_bytes(raw_sub, head.header_version)
        finally:
            os.close(fd)
    except (OSError, KdiagError, struct.error):
        return None
    if not sub.split:
        return None
    max_mapnr = sub.max_mapnr_64 or head.max_mapnr
    return (head.utsname, head.timestamp_sec, head.timestamp_usec, max_mapnr)


def _is_dir(operand: str) -> bool:
    try:
        return Path(operand).is_dir()
    except OSError:
        return False


def targets(operands: Iterable[str | os.PathLike[str]]) -> list[list[str]]:
    """What a scan of ``operands`` reads: files and split sets, in the order found.

    A directory is searched for the names the capture tools write (``vmcore``, ``vmcore.*``,
    ``dump.*``, ``*-incomplete``; :func:`kdiag.vmcore.discover.find_dumps`); any other
    operand is a file, whatever its name. The members of a ``--split`` set become one target.
    """
    files: list[str] = []
    seen: set[str] = set()
    for operand in operands:
        name = os.fspath(operand)
        found = [str(p) for p in find_dumps(name)] if _is_dir(name) else [name]
        for path in found:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                files.append(path)
    out: list[list[str]] = []
    sets: dict[tuple[object, ...], list[str]] = {}
    for path in files:
        key = _split_key(path)
        if key is None:
            out.append([path])
        elif key in sets:
            sets[key].append(path)
        else:
            sets[key] = [path]
            out.append(sets[key])
    return out


def scan(
    store: StoreBase,
    operands: Iterable[str | os.PathLike[str]],
    *,
    host: str | None = None,
    source: str = "scan",
    account_id: str | None = None,
    progress: ScanProgress | None = None,
) -> ScanReport:
    """Index every dump under ``operands`` (directories such as ``/var/crash``, and files).

    A file that is not a readable dump is recorded as rejected with its typed reason and the
    scan goes on; so does one that fails in an unexpected way (code ``InternalError``).
    Rescanning adds nothing: unchanged files are not read again and known dumps are found
    by identity.

    :raises ConfigError: an operand does not exist.
    """
    _check_source(source)
    names = [os.fspath(o) for o in operands]
    for name in names:
        if not os.path.lexists(name):
            raise ConfigError(f"{name}: no such file or directory")
    account = dumpdb.checked_account(store, account_id)
    started = time.monotonic()
    work = targets(names)
    jobs = [_Job(paths, None) for paths in work]
    return _scan(store, jobs, account, started, _How(host, source, None, progress))


@dataclass(frozen=True)
class _Job:
    """One file or split set to index (``given``: its facts, when the caller has them)."""

    paths: list[str]
    given: list[dumpdb.FileFacts] | None


@dataclass(frozen=True)
class _How:
    """A scan's options."""

    host: str | None
    source: str
    opener: DumpOpener | None
    progress: ScanProgress | None


def _scan(
    store: StoreBase, jobs: Sequence[_Job], account: str, started: float, how: _How
) -> ScanReport:
    known = _Known.load(store, [p for job in jobs for p in job.paths], account)
    host, source, opener, progress = how.host, how.source, how.opener, how.progress
    outcomes: list[ScanOutcome | None] = []
    writer = ScanWriter(store, account, outcomes)
    unchanged: dict[int, str] = {}
    total = 0
    try:
        for done, job in enumerate(jobs, 1):
            paths = job.paths
            try:
                step = _examine(
                    paths, host=host, source=source, known=known, given=job.given, opener=opener
                )
            except READER_BUGS as exc:
                # A reader bug must not end the scan of a whole tree: say which file, go on.
                message = f"unexpected {type(exc).__name__}: {exc}"
                step = Pending(tuple(paths), rejects(paths, [], "InternalError", message), None, 0)
            if isinstance(step, Pending):
                writer.add(step)
                total += step.bytes_read
            else:
                if step.unchanged_id is not None:
                    unchanged[len(outcomes)] = step.unchanged_id
                outcomes.append(step.outcome)
            if progress is not None:
                progress(done, len(jobs), paths[0])
            writer.flush_if_due()
    except BaseException:
        with contextlib.suppress(Exception):  # keep what was read before the interruption
            writer.flush()
        raise
    writer.flush()
    entries = dumpdb.entries_by_id(store, unchanged.values(), account_id=account)
    final: list[ScanOutcome] = []
    for at, found in enumerate(outcomes):
        assert found is not None
        dump_id = unchanged.get(at)
        final.append(
            found if dump_id is None else dataclasses.replace(found, entry=entries.get(dump_id))
        )
    return ScanReport(tuple(final), time.monotonic() - started, total)


def scan_files(
    store: StoreBase,
    files: Sequence[dumpdb.FileFacts],
    opener: DumpOpener,
    *,
    host: str | None = None,
    source: str = "scan",
    account_id: str | None = None,
    progress: ScanProgress | None = None,
) -> ScanReport:
    """Index dumps that are not local files (``ssh://`` URLs, say): each of ``files`` was
    looked at by the caller (its size, modification time and compression; ``device`` and
    ``inode`` 0 when the transport has none) and is opened with ``opener(path)``.

    Same rules as :func:`scan`: one identity for a dump whatever its path (a dump scanned
    remotely and then locally is one entry with two paths), unchanged paths not read
    again, rejects recorded with their reason. Each file is one dump (no split sets).
    """
    _check_source(source)
    account = dumpdb.checked_account(store, account_id)
    started = time.monotonic()
    jobs = [_Job([file.path], [file]) for file in files]
    return _scan(store, jobs, account, started, _How(host, source, opener, progress))
