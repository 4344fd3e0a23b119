"""Keeping drills: the store's drill history, and the dump catalog for the dumps they find.

:func:`history` is what a browser console or a report reads: frozen
:class:`~kdiag.store.drills.DrillRecord` values, newest first.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kdiag.catalog import index_dump
from kdiag.drill.evidence import DumpFindings
from kdiag.drill.report import DrillReport
from kdiag.errors import DumpFormatError, KdiagError
from kdiag.store import Store
from kdiag.store.drills import DrillRecord, StepTiming, list_drills, record_drill

__all__ = ("catalog_dump", "history", "save")


def history(
    store: Store,
    instance_id: str | None = None,
    *,
    account: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
) -> list[DrillRecord]:
    """Recorded drills, newest first, of one instance and/or one account (its 12-digit id).

    :raises ConfigError: a bad ``limit`` or a naive ``since``.
    """
    return list_drills(store, instance_id=instance_id, account_id=account, since=since, limit=limit)


def save(store: Store, report: DrillReport) -> DrillRecord:
    """Record one drill in the store."""
    return record_drill(
        store,
        DrillRecord(
            account_id=report.account_id,
            instance_id=report.instance_id,
            started_at=report.started_at,
            finished_at=report.finished_at,
            verdict=report.diagnosis.verdict,
            diagnosis=report.diagnosis.code,
            summary=report.diagnosis.summary,
            steps=tuple(StepTiming(s.name, s.status, s.seconds, s.detail) for s in report.steps),
            report=report.to_json(),
            dump_path=report.evidence.dump.path if report.evidence.dump else None,
            host_dump_path=report.evidence.host_dump.path if report.evidence.host_dump else None,
            dump_id=report.evidence.dump.catalog_id if report.evidence.dump else None,
        ),
    )


def catalog_dump(
    store: Store, dump: DumpFindings, *, host: str | None, account_id: str
) -> tuple[str | None, str | None]:
    """Add a drill's dump to the dump catalog: ``(entry id, None)`` or ``(None, why not)``.

    Through :func:`kdiag.catalog.index_dump` (source ``drill``); a catalog failure never
    fails the drill, it is noted in the report.
    """
    try:
        entry = index_dump(store, Path(dump.path), host=host, source="drill", account_id=account_id)
    except (DumpFormatError, KdiagError, OSError) as exc:
        return None, f"not catalogued: {exc}"
    return str(entry.id), None
