"""Many dumps and rejections recorded in one write transaction (a scan's files, a bounded
batch at a time: :mod:`kdiag.catalog.writes`).

:func:`record_batch` returns, item by item, what :func:`kdiag.store.dumps.record_dump` and
:func:`~kdiag.store.dumps.record_reject` called one after the other would: an entry lists
the paths its dump had once that item was recorded.  When no path appears twice in the
batch (a scan never names a file twice), the rows the batch touches are looked up with one
query per table and written with one flush, instead of a transaction of five statements per
file; otherwise the items are recorded one by one, in the same transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kdiag.catalog import records
from kdiag.store._base import StoreBase, _now
from kdiag.store.dumps import (
    FileFacts,
    NewDump,
    NewReject,
    _chunks,
    _clean,
    _cut,
    _entry,
    _hold,
    _paths,
    _record_in,
    _refuse,
    _reject_in,
    _resolve,
    _row,
    _str_cut,
    path_key,
)
from kdiag.store.models import DumpPathRow, DumpRejectRow, DumpRow

__all__ = ("BatchResult", "NewFiles", "NewReject", "record_batch")


@dataclass(frozen=True)
class NewFiles:
    """``files`` hold the dump ``facts`` describes (what ``record_dump`` records)."""

    facts: NewDump
    files: Sequence[FileFacts]


#: what :func:`record_batch` returns per item: ``(entry, created)`` or the rejection
BatchResult = tuple[records.DumpEntry, bool] | records.Rejected


def record_batch(
    store: StoreBase, items: Sequence[NewFiles | NewReject], *, account_id: str | None = None
) -> list[BatchResult]:
    """Record ``items`` in order, in one write transaction.  When another writer recorded
    one of the same dumps or paths first, the whole batch is tried again once, as the
    single calls are."""
    account = _resolve(store, account_id)
    keys = [
        [path_key(f.path) for f in item.files]
        if isinstance(item, NewFiles)
        else [path_key(item.path)]
        for item in items
    ]
    flat = [k for item_keys in keys for k in item_keys]
    distinct = len(set(flat)) == len(flat)
    for attempt in (1, 2):
        try:
            with store._write() as session:
                if distinct:
                    return _Batch(session, account, flat).record(items, keys)
                return [
                    _record_in(session, account, item.facts, item.files)
                    if isinstance(item, NewFiles)
                    else _reject_in(session, account, item)
                    for item in items
                ]
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass
class _Change:
    """A path row an item of the batch gave to a dump (``dump_id``) or removed (``None``),
    and its dump and part before the batch (``None``: a new row)."""

    at: int
    dump_id: str | None
    before: tuple[str, int] | None


class _Batch:
    """The rows a batch of distinct paths touches, looked up once."""

    def __init__(self, session: Session, account: str, keys: list[str]) -> None:
        self.session = session
        self.account = account
        self.paths: dict[str, DumpPathRow] = {}
        self.rejects: dict[str, DumpRejectRow] = {}
        for chunk in _chunks(keys):
            self.paths.update(
                (p.path_key, p)
                for p in session.scalars(
                    select(DumpPathRow).where(
                        DumpPathRow.account_id == account, DumpPathRow.path_key.in_(chunk)
                    )
                )
            )
            self.rejects.update(
                (r.path_key, r)
                for r in session.scalars(
                    select(DumpRejectRow).where(
                        DumpRejectRow.account_id == account, DumpRejectRow.path_key.in_(chunk)
                    )
                )
            )
        self.changes: dict[int, tuple[DumpPathRow, _Change]] = {}  # by id(row)

    def _dumps(self, identities: list[str]) -> dict[str, DumpRow]:
        out: dict[str, DumpRow] = {}
        for chunk in _chunks(sorted(set(identities))):
            query = select(DumpRow).where(
                DumpRow.account_id == self.account, DumpRow.identity.in_(chunk)
            )
            out.update((r.identity, r) for r in self.session.scalars(query))
        return out

    def _changed(self, row: DumpPathRow, at: int, dump_id: str | None, new: bool) -> None:
        before = None if new else (row.dump_id, row.part)
        self.changes[id(row)] = (row, _Change(at, dump_id, before))

    def record(
        self, items: Sequence[NewFiles | NewReject], keys: list[list[str]]
    ) -> list[BatchResult]:
        dumps = self._dumps([i.facts.identity for i in items if isinstance(i, NewFiles)])
        # the new dumps first: their rows must exist before the paths that name them
        creator: dict[str, int] = {}
        for at, item in enumerate(items):
            if isinstance(item, NewFiles) and item.facts.identity not in dumps:
                dumps[item.facts.identity] = _row(self.account, item.facts, _now())
                self.session.add(dumps[item.facts.identity])
                creator[item.facts.identity] = at
        self.session.flush()
        done: list[BatchResult] = []
        for at, (item, item_keys) in enumerate(zip(items, keys, strict=True)):
            if isinstance(item, NewReject):
                done.append(self._reject(at, item, item_keys[0]))
                continue
            when = _now()
            row = dumps[item.facts.identity]
            created = creator.get(item.facts.identity) == at
            if not created and row.host is None and item.facts.host is not None:
                row.host = _str_cut(item.facts.host, 255)
            for key, file in zip(item_keys, item.files, strict=True):
                path_row = self.paths.get(key)
                new = path_row is None
                if path_row is None:
                    path_row = DumpPathRow(
                        account_id=self.account, path_key=key, path=_clean(file.path)
                    )
                    self.session.add(path_row)
                    self.paths[key] = path_row
                self._changed(path_row, at, row.id, new)
                _hold(path_row, row.id, file, when)
                reject = self.rejects.pop(key, None)
                if reject is not None:
                    self.session.delete(reject)
            done.append((_entry(row, ()), created))  # its paths are filled in below
        self.session.flush()
        return self._with_paths(done)

    def _reject(self, at: int, item: NewReject, key: str) -> records.Rejected:
        when = _now()
        text = _cut(item.message) or ""
        path_row = self.paths.pop(key, None)
        if path_row is not None:
            self._changed(path_row, at, None, False)
            self.session.delete(path_row)
        row = self.rejects.get(key)
        if row is None:
            row = DumpRejectRow(account_id=self.account, path_key=key, path=_clean(item.path))
            self.session.add(row)
            self.rejects[key] = row
        return _refuse(row, item, text, when)

    def _with_paths(self, done: list[BatchResult]) -> list[BatchResult]:
        """Each entry with the paths its dump had right after its item: the rows the batch
        left alone, and those it changed as they were at that point."""
        ids = {r[0].id for r in done if isinstance(r, tuple)}
        now = _paths(self.session, ids)
        unchanged = {d: [p for p in rows if id(p) not in self.changes] for d, rows in now.items()}
        out: list[BatchResult] = []
        for at, result in enumerate(done):
            if not isinstance(result, tuple):
                out.append(result)
                continue
            entry, created = result
            held = [(p.part, p.id, p) for p in unchanged[entry.id]]
            for path_row, change in self.changes.values():
                if change.at <= at and change.dump_id == entry.id:
                    held.append((path_row.part, path_row.id, path_row))
                elif change.at > at and change.before and change.before[0] == entry.id:
                    held.append((change.before[1], path_row.id, path_row))
            held.sort(key=lambda h: (h[0], h[1]))
            paths = tuple(h[2].path for h in held)
            out.append((dataclasses.replace(entry, paths=paths), created))
        return out
