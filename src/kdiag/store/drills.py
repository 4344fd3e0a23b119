"""Drill history in the store: one row per ``kdiag drill`` run (migration 0004).

Functions over a :class:`~kdiag.store.Store` rather than a mixin of it, so the drill area
owns its queries.  Rows leave as frozen :class:`DrillRecord` values.

>>> rec = record_drill(store, DrillRecord(...))            # doctest: +SKIP
>>> [r.verdict for r in list_drills(store, instance_id="i-0123456789abcdef0")]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy import select

from kdiag.errors import ConfigError
from kdiag.store._base import StoreBase
from kdiag.store.models import DrillRow

__all__ = ("MAX_LIST", "DrillRecord", "StepTiming", "list_drills", "record_drill")

#: The most rows one listing returns.
MAX_LIST = 1000
#: Bounds on what one row holds (the report is evidence: console excerpts stay short).
_MAX_SUMMARY = 2048
_MAX_REPORT_BYTES = 256 * 1024
_MAX_STEPS = 32


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class StepTiming:
    """One step of a recorded drill: its name, status and seconds taken."""

    name: str
    status: str
    seconds: float | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": self.seconds,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """One drill as the store keeps it.  ``id`` is ``None`` until it is recorded."""

    account_id: str
    instance_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    verdict: str  # "pass" | "fail"
    diagnosis: str  # a code such as "ok", "nmi-ignored", "capture-hang"
    summary: str
    steps: tuple[StepTiming, ...] = ()
    report: Mapping[str, Any] = field(default_factory=dict)
    dump_path: str | None = None
    host_dump_path: str | None = None
    dump_id: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "report", MappingProxyType(dict(self.report)))
        object.__setattr__(self, "steps", tuple(self.steps))

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "instance_id": self.instance_id,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "seconds": round(self.seconds, 3),
            "verdict": self.verdict,
            "diagnosis": self.diagnosis,
            "summary": self.summary,
            "steps": [s.to_json() for s in self.steps],
            "dump_path": self.dump_path,
            "host_dump_path": self.host_dump_path,
            "dump_id": self.dump_id,
        }


def _check(record: DrillRecord) -> None:
    if record.verdict not in ("pass", "fail"):
        raise ConfigError(f"a drill verdict is pass or fail, not {record.verdict!r}")
    for value, what in ((record.started_at, "started_at"), (record.finished_at, "finished_at")):
        if value.tzinfo is None:
            raise ConfigError(f"drill {what} must be timezone-aware")
    if len(record.steps) > _MAX_STEPS:
        raise ConfigError(f"a drill has at most {_MAX_STEPS} steps, not {len(record.steps)}")


def _bounded_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as JSON-safe data, replaced by a stub when it is unreasonably large."""
    text = json.dumps(dict(report), default=str, sort_keys=True)
    if len(text) > _MAX_REPORT_BYTES:
        return {"truncated": True, "bytes": len(text)}
    data: dict[str, Any] = json.loads(text)
    return data


def record_drill(store: StoreBase, record: DrillRecord) -> DrillRecord:
    """Store one drill; returns it with its ``id``.

    :raises ConfigError: a verdict other than pass/fail, naive times, too many steps.
    """
    _check(record)
    row = DrillRow(
        account_id=record.account_id,
        instance_id=record.instance_id[:19],
        started_at=record.started_at,
        finished_at=record.finished_at,
        verdict=record.verdict,
        diagnosis=record.diagnosis[:40],
        summary=_cut(record.summary, _MAX_SUMMARY) or "",
        steps=[{**s.to_json(), "detail": _cut(s.detail, _MAX_SUMMARY) or ""} for s in record.steps],
        report=_bounded_report(record.report),
        dump_path=_cut(record.dump_path, 4096),
        host_dump_path=_cut(record.host_dump_path, 4096),
        dump_id=_cut(record.dump_id, 80),
    )
    with store._write() as session:
        session.add(row)
        session.flush()
        new_id = row.id
    return replace(record, id=new_id)


def _record(row: DrillRow) -> DrillRecord:
    steps = tuple(
        StepTiming(
            str(s.get("name", "?")),
            str(s.get("status", "?")),
            s.get("seconds") if isinstance(s.get("seconds"), int | float) else None,
            str(s.get("detail") or ""),
        )
        for s in (row.steps or [])
        if isinstance(s, dict)
    )
    return DrillRecord(
        id=row.id,
        account_id=row.account_id,
        instance_id=row.instance_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        verdict=row.verdict,
        diagnosis=row.diagnosis,
        summary=row.summary,
        steps=steps,
        report=row.report or {},
        dump_path=row.dump_path,
        host_dump_path=row.host_dump_path,
        dump_id=row.dump_id,
    )


def list_drills(
    store: StoreBase,
    *,
    instance_id: str | None = None,
    account_id: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
) -> list[DrillRecord]:
    """Recorded drills, newest first: of one instance and/or account, since a time.

    :raises ConfigError: ``limit`` outside 1..:data:`MAX_LIST`, or a naive ``since``.
    """
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
        raise ConfigError(f"limit must be 1 to {MAX_LIST}, not {limit!r}")
    if since is not None and since.tzinfo is None:
        raise ConfigError("since must be timezone-aware")
    query = select(DrillRow)
    if instance_id is not None:
        query = query.where(DrillRow.instance_id == instance_id)
    if account_id is not None:
        query = query.where(DrillRow.account_id == account_id)
    if since is not None:
        query = query.where(DrillRow.started_at >= since)
    query = query.order_by(DrillRow.started_at.desc(), DrillRow.id.desc()).limit(limit)
    with store._read() as session:
        rows: Sequence[DrillRow] = session.scalars(query).all()
        return [_record(r) for r in rows]
