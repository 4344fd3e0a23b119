"""The dump catalog's queries (tables ``dumps``, ``dump_paths``, ``dump_rejects``).

Functions over a :class:`~kdiag.store.Store` (any :class:`~kdiag.store._base.StoreBase`),
account-scoped like the rest of the store: ``account_id=None`` is the default account.
They hand out the frozen records of :mod:`kdiag.catalog.records`; reading and identifying
dumps is :mod:`kdiag.catalog`'s job, not this module's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kdiag.catalog import records
from kdiag.errors import NoSuchEntity
from kdiag.store._base import StoreBase, _now
from kdiag.store.models import DumpPathRow, DumpRejectRow, DumpRow

__all__ = (
    "MAX_TEXT",
    "CheckedAccount",
    "FileFacts",
    "NewDump",
    "NewReject",
    "checked_account",
    "entries_by_id",
    "get_dump",
    "known_files",
    "known_rejects",
    "list_dumps",
    "list_rejects",
    "new_dump_id",
    "path_key",
    "record_dump",
    "record_reject",
)

#: Longest message, reason or log tail kept (characters); longer text is cut with an ellipsis.
MAX_TEXT = 64 * 1024
_ID_PREFIX = "dump-"


class CheckedAccount(str):
    """An account id already checked to exist (:func:`checked_account`): the queries of a
    scan of thousands of files look it up once, not once per query."""

    __slots__ = ()


def checked_account(store: StoreBase, account_id: str | None) -> CheckedAccount:
    """``account_id`` (``None``: the default account) checked once, for many calls."""
    return CheckedAccount(store._account_id(account_id))


def _resolve(store: StoreBase, account_id: str | None) -> str:
    if isinstance(account_id, CheckedAccount):
        return account_id
    return store._account_id(account_id)


def new_dump_id() -> str:
    return _ID_PREFIX + secrets.token_hex(8)


def path_key(path: str) -> str:
    """The key a path is unique by (paths may be longer than an index allows), from its
    bytes (a name that is not UTF-8 keeps its own key)."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


def _clean(text: str) -> str:
    """Text both databases take: undecodable bytes of a file name (``os.fsdecode``'s
    surrogates) as ``\\xNN``, and NUL (PostgreSQL refuses it in text) as ``\\x00``."""
    if text.isprintable() or (text.isascii() and "\0" not in text):
        return text
    safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return safe.replace("\0", "\\x00")


def _clean_json(value: Any) -> Any:
    """``value`` with every string in it (keys too) passed through :func:`_clean`."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def _cut(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None:
        return None
    text = _clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _str_cut(text: str | None, limit: int) -> str | None:
    return None if text is None else _clean(text)[:limit]


@dataclass(frozen=True)
class FileFacts:
    """A file as a scan saw it (``os.stat``), and its place in its dump."""

    path: str
    part: int
    size: int
    compression: str | None
    device: int
    inode: int
    mtime_ns: int


@dataclass(frozen=True)
class NewDump:
    """What indexing learned about a dump, to be recorded under its identity."""

    identity: str
    host: str | None
    crash_time: dt.datetime | None
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
    summary: dict[str, Any]
    log_tail: str


def _paths(session: Session, dump_ids: Iterable[str]) -> dict[str, list[DumpPathRow]]:
    wanted = list(dump_ids)
    out: dict[str, list[DumpPathRow]] = {d: [] for d in wanted}
    if not wanted:
        return out
    query = (
        select(DumpPathRow)
        .where(DumpPathRow.dump_id.in_(wanted))
        .order_by(DumpPathRow.part, DumpPathRow.id)
    )
    for row in session.scalars(query):
        out[row.dump_id].append(row)
    return out


def _entry(row: DumpRow, paths: Sequence[DumpPathRow]) -> records.DumpEntry:
    return records.DumpEntry(
        id=row.id,
        account_id=row.account_id,
        identity=row.identity,
        paths=tuple(p.path for p in paths),
        host=row.host,
        time=row.crash_time,
        format=row.format,
        compression=row.compression,
        arch=row.arch,
        size=row.size,
        release=row.release,
        klass=row.klass,
        signature=row.signature,
        signature_id=row.signature_id,
        complete=row.complete,
        incomplete_reason=row.incomplete_reason,
        source=row.source,
        indexed_at=row.indexed_at,
    )


def _file(row: DumpPathRow) -> records.DumpPath:
    return records.DumpPath(row.path, row.part, row.size, row.compression, row.seen_at)


_CHUNK = 500  # keys per IN (...) list


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for at in range(0, len(items), _CHUNK):
        yield items[at : at + _CHUNK]


def known_files(
    store: StoreBase, paths: Sequence[str], *, account_id: str | None = None
) -> dict[str, tuple[FileFacts, str]]:
    """For each of ``paths`` indexed before: its stat facts then, and its dump's id."""
    account = _resolve(store, account_id)
    by_key = {path_key(p): p for p in paths}
    out: dict[str, tuple[FileFacts, str]] = {}
    with store._read() as session:
        for keys in _chunks(list(by_key)):
            query = select(DumpPathRow).where(
                DumpPathRow.account_id == account, DumpPathRow.path_key.in_(keys)
            )
            for row in session.scalars(query):
                path = by_key[row.path_key]
                facts = FileFacts(
                    path, row.part, row.size, row.compression, row.device, row.inode, row.mtime_ns
                )
                out[path] = (facts, row.dump_id)
    return out


def known_rejects(
    store: StoreBase, paths: Sequence[str], *, account_id: str | None = None
) -> dict[str, tuple[records.Rejected, int | None, int | None]]:
    """For each of ``paths`` rejected before: the rejection, and the file's size and
    modification time (ns) then."""
    account = _resolve(store, account_id)
    by_key = {path_key(p): p for p in paths}
    out: dict[str, tuple[records.Rejected, int | None, int | None]] = {}
    with store._read() as session:
        for keys in _chunks(list(by_key)):
            query = select(DumpRejectRow).where(
                DumpRejectRow.account_id == account, DumpRejectRow.path_key.in_(keys)
            )
            for row in session.scalars(query):
                found = records.Rejected(row.path, row.code, row.message, row.size, row.seen_at)
                out[by_key[row.path_key]] = (found, row.size, row.mtime_ns)
    return out


def entries_by_id(
    store: StoreBase, dump_ids: Iterable[str], *, account_id: str | None = None
) -> dict[str, records.DumpEntry]:
    """The account's dumps among ``dump_ids``, by id (ids of other accounts are left out)."""
    account = _resolve(store, account_id)
    out: dict[str, records.DumpEntry] = {}
    with store._read() as session:
        for ids in _chunks(sorted(set(dump_ids))):
            rows = list(
                session.scalars(
                    select(DumpRow).where(DumpRow.account_id == account, DumpRow.id.in_(ids))
                )
            )
            paths = _paths(session, [r.id for r in rows])
            out.update((r.id, _entry(r, paths[r.id])) for r in rows)
    return out


def _row(account: str, facts: NewDump, when: dt.datetime) -> DumpRow:
    return DumpRow(
        id=new_dump_id(),
        account_id=account,
        identity=facts.identity,
        host=_str_cut(facts.host, 255),
        crash_time=facts.crash_time,
        format=facts.format[:32],
        compression=facts.compression[:32],
        arch=facts.arch[:16],
        size=facts.size,
        release=_str_cut(facts.release, 128),
        klass=facts.klass[:32],
        signature=_cut(facts.signature),
        signature_id=_str_cut(facts.signature_id, 32),
        complete=facts.complete,
        incomplete_reason=_cut(facts.incomplete_reason),
        source=facts.source[:16],
        summary=_clean_json(facts.summary),
        log_tail=_cut(facts.log_tail) or "",
        indexed_at=when,
    )


def _hold(row: DumpPathRow, dump_id: str, file: FileFacts, when: dt.datetime) -> None:
    """``row`` (the path of ``file``) now holds the dump ``dump_id``."""
    row.dump_id = dump_id
    row.part = file.part
    row.size = file.size
    row.compression = file.compression
    row.device = file.device
    row.inode = file.inode
    row.mtime_ns = file.mtime_ns
    row.seen_at = when


def _refuse(
    row: DumpRejectRow, reject: NewReject, text: str, when: dt.datetime
) -> records.Rejected:
    """``row`` now says why ``reject.path`` was rejected (``text``: the message, cut)."""
    row.code = reject.code[:64]
    row.message = text
    row.size = reject.size
    row.mtime_ns = reject.mtime_ns
    row.seen_at = when
    return records.Rejected(_clean(reject.path), reject.code[:64], text, reject.size, when)


def record_dump(
    store: StoreBase,
    facts: NewDump,
    files: Sequence[FileFacts],
    *,
    account_id: str | None = None,
) -> tuple[records.DumpEntry, bool]:
    """Record ``files`` as holding the dump ``facts`` describes; the entry and whether the
    dump is new to the account (``False``: a dump already known by its identity, which
    keeps what it was first recorded with and gains the files it lacked).

    A path that held another dump before is moved to this one; a path that was rejected
    before is no longer.
    """
    account = _resolve(store, account_id)
    for attempt in (1, 2):
        try:
            with store._write() as session:
                return _record_in(session, account, facts, files)
        except IntegrityError:  # another writer recorded the same dump or path first
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _record_in(
    session: Session, account: str, facts: NewDump, files: Sequence[FileFacts]
) -> tuple[records.DumpEntry, bool]:
    when = _now()
    row = session.scalars(
        select(DumpRow).where(DumpRow.account_id == account, DumpRow.identity == facts.identity)
    ).first()
    created = row is None
    if row is None:
        row = _row(account, facts, when)
        session.add(row)
        session.flush()
    elif row.host is None and facts.host is not None:
        row.host = _str_cut(facts.host, 255)
    keys = [path_key(f.path) for f in files]
    existing = {
        p.path_key: p
        for p in session.scalars(
            select(DumpPathRow).where(
                DumpPathRow.account_id == account, DumpPathRow.path_key.in_(keys)
            )
        )
    }
    added: list[DumpPathRow] = []
    for key, file in zip(keys, files, strict=True):
        path_row = existing.get(key)
        if path_row is None:
            path_row = DumpPathRow(account_id=account, path_key=key, path=_clean(file.path))
            session.add(path_row)
        added.append(path_row)
        _hold(path_row, row.id, file, when)
    session.execute(
        delete(DumpRejectRow).where(
            DumpRejectRow.account_id == account, DumpRejectRow.path_key.in_(keys)
        )
    )
    session.flush()
    if created:  # its paths are the ones just added, in _paths' order
        return _entry(row, sorted(added, key=lambda p: (p.part, p.id))), created
    return _entry(row, _paths(session, [row.id])[row.id]), created


def record_reject(
    store: StoreBase,
    path: str,
    code: str,
    message: str,
    *,
    size: int | None = None,
    mtime_ns: int | None = None,
    account_id: str | None = None,
) -> records.Rejected:
    """Record that ``path`` could not be indexed, and why; it no longer holds a dump."""
    account = _resolve(store, account_id)
    reject = NewReject(path, code, message, size, mtime_ns)
    for attempt in (1, 2):
        try:
            with store._write() as session:
                return _reject_in(session, account, reject)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class NewReject:
    """``path`` could not be indexed, and why (what :func:`record_reject` records)."""

    path: str
    code: str
    message: str
    size: int | None = None
    mtime_ns: int | None = None


def _reject_in(session: Session, account: str, reject: NewReject) -> records.Rejected:
    key = path_key(reject.path)
    when = _now()
    text = _cut(reject.message) or ""
    session.execute(
        delete(DumpPathRow).where(DumpPathRow.account_id == account, DumpPathRow.path_key == key)
    )
    row = session.scalars(
        select(DumpRejectRow).where(
            DumpRejectRow.account_id == account, DumpRejectRow.path_key == key
        )
    ).first()
    if row is None:
        row = DumpRejectRow(account_id=account, path_key=key, path=_clean(reject.path))
        session.add(row)
    return _refuse(row, reject, text, when)


def list_dumps(
    store: StoreBase,
    *,
    account_id: str | None = None,
    since: dt.datetime | None = None,
    signature_id: str | None = None,
    limit: int | None = None,
) -> list[records.DumpEntry]:
    """The account's dumps, newest crash first (dumps with no crash time by index time).

    ``since`` keeps dumps whose crash time (else index time) is at or after it.
    """
    account = _resolve(store, account_id)
    with store._read() as session:
        query = select(DumpRow).where(DumpRow.account_id == account)
        if signature_id is not None:
            query = query.where(DumpRow.signature_id == signature_id)
        rows = list(session.scalars(query))
        if since is not None:
            rows = [r for r in rows if (r.crash_time or r.indexed_at) >= since]
        rows.sort(key=lambda r: (r.crash_time or r.indexed_at, r.id), reverse=True)
        if limit is not None:
            rows = rows[:limit]
        paths = _paths(session, [r.id for r in rows])
        return [_entry(r, paths[r.id]) for r in rows]


def get_dump(
    store: StoreBase, dump_id: str, *, account_id: str | None = None
) -> records.DumpDetail:
    """One dump with its files, summary and log tail.

    :raises NoSuchEntity: no dump ``dump_id`` in the account (a dump of another account
        looks the same as one that does not exist).
    """
    account = _resolve(store, account_id)
    with store._read() as session:
        row = session.get(DumpRow, dump_id)
        if row is None or row.account_id != account:
            raise NoSuchEntity(f"no dump {dump_id}")
        files = _paths(session, [row.id])[row.id]
        summary = dict(row.summary)
        return records.DumpDetail(
            entry=_entry(row, files),
            files=tuple(_file(f) for f in files),
            summary=dict(summary.get("triage") or {}),
            summary_text=str(summary.get("text") or ""),
            log_tail=tuple(row.log_tail.splitlines()),
        )


def list_rejects(store: StoreBase, *, account_id: str | None = None) -> list[records.Rejected]:
    """Files scans could not index, by path."""
    account = _resolve(store, account_id)
    with store._read() as session:
        rows = session.scalars(
            select(DumpRejectRow)
            .where(DumpRejectRow.account_id == account)
            .order_by(DumpRejectRow.path)
        )
        return [records.Rejected(r.path, r.code, r.message, r.size, r.seen_at) for r in rows]
