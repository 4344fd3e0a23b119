"""The catalog's read side for callers outside the store (``kdiag dumps``, the console):
thin, documented entries over :mod:`kdiag.store.dumps`."""

from __future__ import annotations

import datetime as dt

from kdiag.catalog.records import DumpDetail, DumpEntry, Rejected
from kdiag.store import dumps as dumpdb
from kdiag.store._base import StoreBase

__all__ = ("list_dumps", "list_rejects", "show_dump")


def list_dumps(
    store: StoreBase,
    *,
    account_id: str | None = None,
    since: dt.datetime | None = None,
    signature_id: str | None = None,
    limit: int | None = None,
) -> list[DumpEntry]:
    """The account's dumps, newest crash first; ``since`` by crash time (else index time)."""
    return dumpdb.list_dumps(
        store, account_id=account_id, since=since, signature_id=signature_id, limit=limit
    )


def show_dump(store: StoreBase, dump_id: str, *, account_id: str | None = None) -> DumpDetail:
    """One dump: entry, files, triage summary, log tail.

    :raises NoSuchEntity: no such dump in the account.
    """
    return dumpdb.get_dump(store, dump_id, account_id=account_id)


def list_rejects(store: StoreBase, *, account_id: str | None = None) -> list[Rejected]:
    """Files scans could not index, with their typed reason, by path."""
    return dumpdb.list_rejects(store, account_id=account_id)
