"""Dumps grouped by crash signature, and how often each group occurs over time.

The way ABRT Analytics groups kernel oopses into problems: every dump whose kernel log gives
the same signature (:func:`kdiag.vmcore.panic.classify`: class, title and first non-generic
frames; identical across reboots, KASLR, pids and CPUs) is one group. Dumps without a
signature (an empty or unreadable log) are in no group. A group's time is each dump's crash
time, or its index time when the dump holds none.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from kdiag.catalog.records import DumpEntry, DumpGroup, Occurrence
from kdiag.errors import ConfigError
from kdiag.store import dumps as dumpdb
from kdiag.store._base import StoreBase

__all__ = ("BUCKETS", "group_dumps", "group_entries", "occurrences")

#: Period lengths :func:`occurrences` counts by.
BUCKETS = ("hour", "day", "week")


def _when(entry: DumpEntry) -> dt.datetime:
    return entry.time or entry.indexed_at


def group_entries(entries: list[DumpEntry]) -> list[DumpGroup]:
    """Group ``entries`` by signature: most dumps first, then the latest seen first."""
    by_sig: dict[str, list[DumpEntry]] = defaultdict(list)
    for entry in entries:
        if entry.signature_id is not None and entry.signature is not None:
            by_sig[entry.signature_id].append(entry)
    groups: list[DumpGroup] = []
    for sig_id, members in by_sig.items():
        members.sort(key=lambda e: (_when(e), e.id))
        classes = Counter(e.klass for e in members)
        groups.append(
            DumpGroup(
                signature_id=sig_id,
                signature=members[0].signature or "",
                klass=classes.most_common(1)[0][0],
                count=len(members),
                first_seen=_when(members[0]),
                last_seen=_when(members[-1]),
                hosts=tuple(sorted({e.host for e in members if e.host})),
                releases=tuple(sorted({e.release for e in members if e.release})),
                dump_ids=tuple(e.id for e in members),
            )
        )
    groups.sort(key=lambda g: (-g.count, -g.last_seen.timestamp(), g.signature_id))
    return groups


def group_dumps(
    store: StoreBase, *, account_id: str | None = None, since: dt.datetime | None = None
) -> list[DumpGroup]:
    """The account's dumps by signature (``since``: only dumps seen at or after it)."""
    return group_entries(dumpdb.list_dumps(store, account_id=account_id, since=since))


def _bucket_start(when: dt.datetime, bucket: str) -> dt.datetime:
    utc = when.astimezone(dt.UTC)
    if bucket == "hour":
        return utc.replace(minute=0, second=0, microsecond=0)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "day":
        return day
    return day - dt.timedelta(days=day.weekday())  # weeks start on Monday (ISO 8601)


def occurrences(
    store: StoreBase,
    *,
    account_id: str | None = None,
    signature_id: str | None = None,
    since: dt.datetime | None = None,
    bucket: str = "day",
) -> list[Occurrence]:
    """Dumps per signature and period (UTC hours, days or ISO weeks), oldest first; periods
    with no dump are left out. ``signature_id`` keeps one group."""
    if bucket not in BUCKETS:
        raise ConfigError(f"unknown period {bucket!r}: one of {', '.join(BUCKETS)}")
    entries = dumpdb.list_dumps(
        store, account_id=account_id, since=since, signature_id=signature_id
    )
    counts: Counter[tuple[dt.datetime, str]] = Counter()
    for entry in entries:
        if entry.signature_id is not None:
            counts[(_bucket_start(_when(entry), bucket), entry.signature_id)] += 1
    return [Occurrence(sig, start, n) for (start, sig), n in sorted(counts.items())]
