"""Fleet runs in the store: each run over an inventory and every host's answer (migration 0005).

Functions over a :class:`~kdiag.store.Store` (the fleet area owns its queries); rows leave as
frozen :class:`FleetRun` and :class:`FleetHost` values, always scoped to one account.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, select

from kdiag.errors import ConfigError
from kdiag.store._base import StoreBase
from kdiag.store.models import FleetHostRow, FleetRunRow

__all__ = (
    "HOST_STATUSES",
    "MAX_LIST",
    "FleetHost",
    "FleetRun",
    "fleet_hosts",
    "latest_hosts",
    "list_fleet_runs",
    "record_fleet_run",
)

#: what a host's answer can be
HOST_STATUSES = ("pass", "fail", "unreachable", "error")
RUN_KINDS = ("doctor", "configure", "drill")
MAX_LIST = 10_000
#: a facts document bigger than this is not kept (the collector's is a few KiB)
_MAX_FACTS_BYTES = 512 * 1024
_MAX_MESSAGE = 2048


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FleetHost:
    """One host's answer: its status, failing check ids, every check, the facts."""

    host: str
    status: str  # pass | fail | unreachable | error
    answered_at: dt.datetime
    failing: tuple[str, ...] = ()
    checks: tuple[Mapping[str, str], ...] = ()
    facts: Mapping[str, Any] | None = None
    message: str | None = None
    run_id: int | None = None

    def to_json(self, *, facts: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "host": self.host,
            "status": self.status,
            "failing": list(self.failing),
            "checks": [dict(c) for c in self.checks],
            "message": self.message,
            "answered_at": _iso(self.answered_at),
            "run_id": self.run_id,
        }
        if facts:
            data["facts"] = dict(self.facts) if self.facts is not None else None
        return data


@dataclass(frozen=True, slots=True)
class FleetRun:
    """One run of ``kdiag fleet`` over an inventory.  ``id`` is ``None`` until recorded."""

    account_id: str
    kind: str  # doctor | configure | drill
    inventory: str
    purpose: str
    started_at: dt.datetime
    finished_at: dt.datetime
    hosts: int
    failed: int
    limit_pattern: str | None = None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "kind": self.kind,
            "inventory": self.inventory,
            "limit": self.limit_pattern,
            "purpose": self.purpose,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "hosts": self.hosts,
            "failed": self.failed,
        }


def _facts(facts: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    text = json.dumps(dict(facts), default=str, sort_keys=True)
    if len(text) > _MAX_FACTS_BYTES:
        return {"truncated": True, "bytes": len(text)}
    data: dict[str, Any] = json.loads(text)
    return data


def _check_run(run: FleetRun, hosts: Sequence[FleetHost]) -> None:
    if run.kind not in RUN_KINDS:
        raise ConfigError(f"a fleet run is one of {', '.join(RUN_KINDS)}, not {run.kind!r}")
    for value in (run.started_at, run.finished_at, *(h.answered_at for h in hosts)):
        if value.tzinfo is None:
            raise ConfigError("fleet run times must be timezone-aware")
    for host in hosts:
        if host.status not in HOST_STATUSES:
            raise ConfigError(f"a host status is one of {HOST_STATUSES}, not {host.status!r}")


def record_fleet_run(
    store: StoreBase, run: FleetRun, hosts: Sequence[FleetHost]
) -> tuple[FleetRun, list[FleetHost]]:
    """Store one run and its hosts in one transaction; returns them with their ids.

    :raises ConfigError: an unknown kind or status, or naive times.
    """
    _check_run(run, hosts)
    account = store._account_id(run.account_id)
    row = FleetRunRow(
        account_id=account,
        kind=run.kind,
        inventory=_cut(run.inventory, 1024) or "",
        limit_pattern=_cut(run.limit_pattern, 1024),
        purpose=run.purpose[:8],
        started_at=run.started_at,
        finished_at=run.finished_at,
        hosts=run.hosts,
        failed=run.failed,
    )
    with store._write() as session:
        session.add(row)
        session.flush()
        run_id = row.id
        session.add_all(
            FleetHostRow(
                run_id=run_id,
                account_id=account,
                host=host.host[:255],
                status=host.status,
                failing=list(host.failing),
                checks=[dict(c) for c in host.checks],
                facts=_facts(host.facts),
                message=_cut(host.message, _MAX_MESSAGE),
                answered_at=host.answered_at,
            )
            for host in hosts
        )
    return replace(run, id=run_id), [replace(h, run_id=run_id) for h in hosts]


def _host(row: FleetHostRow) -> FleetHost:
    return FleetHost(
        host=row.host,
        status=row.status,
        answered_at=row.answered_at,
        failing=tuple(str(x) for x in row.failing or ()),
        checks=tuple(MappingProxyType(dict(c)) for c in row.checks or () if isinstance(c, dict)),
        facts=MappingProxyType(dict(row.facts)) if isinstance(row.facts, dict) else None,
        message=row.message,
        run_id=row.run_id,
    )


def _run(row: FleetRunRow) -> FleetRun:
    return FleetRun(
        id=row.id,
        account_id=row.account_id,
        kind=row.kind,
        inventory=row.inventory,
        limit_pattern=row.limit_pattern,
        purpose=row.purpose,
        started_at=row.started_at,
        finished_at=row.finished_at,
        hosts=row.hosts,
        failed=row.failed,
    )


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
        raise ConfigError(f"limit must be 1 to {MAX_LIST}, not {limit!r}")
    return limit


def list_fleet_runs(
    store: StoreBase, *, account_id: str | None = None, limit: int = 100
) -> list[FleetRun]:
    """The account's runs, newest first."""
    account = store._account_id(account_id)
    query = (
        select(FleetRunRow)
        .where(FleetRunRow.account_id == account)
        .order_by(FleetRunRow.id.desc())
        .limit(_limit(limit))
    )
    with store._read() as session:
        return [_run(r) for r in session.scalars(query)]


def fleet_hosts(store: StoreBase, run_id: int, *, account_id: str | None = None) -> list[FleetHost]:
    """The hosts of one run of the account, by host name (another account's run: none)."""
    account = store._account_id(account_id)
    query = (
        select(FleetHostRow)
        .where(FleetHostRow.run_id == run_id, FleetHostRow.account_id == account)
        .order_by(FleetHostRow.host)
    )
    with store._read() as session:
        return [_host(r) for r in session.scalars(query)]


def latest_hosts(
    store: StoreBase, *, account_id: str | None = None, limit: int = 1000
) -> list[FleetHost]:
    """Each host's most recent answer in the account, by host name."""
    account = store._account_id(account_id)
    newest = (
        select(func.max(FleetHostRow.id))
        .where(FleetHostRow.account_id == account)
        .group_by(FleetHostRow.host)
    )
    query = (
        select(FleetHostRow)
        .where(FleetHostRow.id.in_(newest))
        .order_by(FleetHostRow.host)
        .limit(_limit(limit))
    )
    with store._read() as session:
        return [_host(r) for r in session.scalars(query)]
