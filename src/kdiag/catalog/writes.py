"""A scan's writes to the catalog, committed a few files at a time.

Reading a dump takes milliseconds; committing its row one file at a time cost about a
third of a first scan.  :class:`ScanWriter` keeps the outcomes of the files read and
commits them together, in order, in one short write transaction (``BEGIN IMMEDIATE`` on
SQLite) when :data:`BATCH_FILES` files wait or the oldest has waited
:data:`BATCH_SECONDS`.  The dumps are read outside the transaction, so the write lock is
held only for the rows of one bounded batch: on SQLite (WAL) readers such as ``kdiag
serve`` never wait for it, and its writers wait at most one batch's commit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from kdiag.catalog.records import Rejected, ScanOutcome
from kdiag.errors import KdiagError
from kdiag.store import dump_batch
from kdiag.store import dumps as dumpdb
from kdiag.store._base import StoreBase

__all__ = ("BATCH_FILES", "BATCH_SECONDS", "READER_BUGS", "Pending", "ScanWriter", "rejects")

#: files (or split sets) whose rows are committed together at most
BATCH_FILES = 32
#: seconds a file's row waits for its batch's commit at most (checked after each file)
BATCH_SECONDS = 5.0
#: exceptions that mean a bug in the code reading one file: that file is rejected with
#: code ``InternalError`` and the scan goes on
READER_BUGS = (ValueError, LookupError, ArithmeticError, MemoryError, RecursionError)


@dataclass(frozen=True)
class Pending:
    """What one file (or split set) of a scan asks to record: the dump its files hold, or
    one rejection per file; ``error`` is why it was rejected (``index_dump`` raises it)."""

    paths: tuple[str, ...]
    items: tuple[dump_batch.NewFiles | dump_batch.NewReject, ...]
    error: KdiagError | None
    bytes_read: int


def rejects(
    paths: Sequence[str], files: Sequence[dumpdb.FileFacts], code: str, message: str
) -> tuple[dump_batch.NewReject, ...]:
    """One rejection per path, with the size and time of the files looked at."""
    facts = {f.path: f for f in files}
    return tuple(
        dump_batch.NewReject(
            path,
            code,
            message,
            size=facts[path].size if path in facts else None,
            mtime_ns=facts[path].mtime_ns if path in facts else None,
        )
        for path in paths
    )


def outcome(pending: Pending, results: Sequence[dump_batch.BatchResult]) -> ScanOutcome:
    """The outcome of ``pending`` once recorded (``results``: one per item)."""
    first = results[0]
    if isinstance(first, Rejected):
        return ScanOutcome(pending.paths, "rejected", None, first)
    entry, created = first
    return ScanOutcome(pending.paths, "new" if created else "matched", entry, None)


def record_now(store: StoreBase, pending: Pending, account: str) -> ScanOutcome:
    """Record one file's outcome in a transaction of its own.  A write that fails in a way
    :data:`READER_BUGS` names records the file as rejected (``InternalError``) instead."""
    try:
        results = dump_batch.record_batch(store, pending.items, account_id=account)
    except READER_BUGS as exc:
        message = f"unexpected {type(exc).__name__}: {exc}"
        items = rejects(pending.paths, [], "InternalError", message)
        results = dump_batch.record_batch(store, items, account_id=account)
    return outcome(pending, results)


class ScanWriter:
    """Commits the pending outcomes of a scan in bounded batches and fills them into the
    scan's outcome list (``None`` where a file waits for its commit)."""

    def __init__(
        self,
        store: StoreBase,
        account: str,
        outcomes: list[ScanOutcome | None],
        *,
        most: int | None = None,
        seconds: float | None = None,
    ) -> None:
        self._store = store
        self._account = account
        self._outcomes = outcomes
        self._most = BATCH_FILES if most is None else most
        self._seconds = BATCH_SECONDS if seconds is None else seconds
        self._pending: list[tuple[int, Pending]] = []
        self._oldest = 0.0
        #: transactions committed so far
        self.commits = 0

    def add(self, pending: Pending) -> None:
        """Queue ``pending`` as the next outcome; commit when the batch is full or old."""
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append((len(self._outcomes), pending))
        self._outcomes.append(None)
        if len(self._pending) >= self._most:
            self.flush()

    def flush_if_due(self) -> None:
        if self._pending and time.monotonic() - self._oldest >= self._seconds:
            self.flush()

    def flush(self) -> None:
        """Commit every pending outcome (one transaction; file by file when a write fails
        with one of :data:`READER_BUGS`, so that only that file is rejected)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        items = [item for _, pending in batch for item in pending.items]
        try:
            results = dump_batch.record_batch(self._store, items, account_id=self._account)
        except READER_BUGS:
            for at, pending in batch:
                self._outcomes[at] = record_now(self._store, pending, self._account)
                self.commits += 1
            return
        self.commits += 1
        start = 0
        for at, pending in batch:
            end = start + len(pending.items)
            self._outcomes[at] = outcome(pending, results[start:end])
            start = end
