"""The console's data read from the store, through the libraries of the areas that own it.

:class:`StoreSources` is what ``kdiag serve`` gives the console: drill history through
:func:`kdiag.drill.history` (``store/drills.py``) and readiness through the fleet's last
answer of each host (:func:`kdiag.store.fleet.latest_hosts`, written by ``kdiag fleet
doctor``).  A fleet host is an instance's when its name is the instance's tag
``kdiag:host``, else its tag ``Host``, else its tag ``Name``, else its id.  Dumps come from
the catalog (:mod:`kdiag.catalog`: ``list_dumps``, ``group_entries``, ``show_dump``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from kdiag import catalog, drill
from kdiag.console.sources import (
    DrillRecord,
    DrillStep,
    DumpDetail,
    DumpGroup,
    DumpSummary,
    FailingCheck,
    Readiness,
)
from kdiag.errors import NoSuchEntity
from kdiag.store import Instance, Store
from kdiag.store.fleet import FleetHost, latest_hosts

__all__ = ("HOST_TAGS", "StoreSources", "drill_record", "drill_steps", "host_names", "readiness_of")

#: The most dumps of an account the Crashes page reads.
MAX_ACCOUNT_DUMPS = 10_000

#: The tags that name an instance's host in a fleet inventory, first found wins.
HOST_TAGS = ("kdiag:host", "Host", "Name")

#: How many drills of an account the fleet page reads to find each instance's last one.
MAX_ACCOUNT_DRILLS = 1000

_VERDICTS = {"pass": "passed", "fail": "failed"}


def drill_steps(steps: Sequence[drill.StepTiming | drill.StepResult]) -> tuple[DrillStep, ...]:
    """Steps laid end to end (each starts when the one before ended); a step that never ran
    (``seconds`` None) is left out, a failed one marked."""
    out: list[DrillStep] = []
    at = 0.0
    for s in steps:
        if s.seconds is None:
            continue
        out.append(DrillStep(s.name, at, at + s.seconds, s.status != "fail"))
        at += s.seconds
    return tuple(out)


def drill_record(rec: drill.DrillRecord) -> DrillRecord:
    diagnosis = None if rec.verdict == "pass" else f"{rec.diagnosis}: {rec.summary}"
    return DrillRecord(
        str(rec.id),
        rec.instance_id,
        rec.started_at,
        _VERDICTS.get(rec.verdict, rec.verdict),
        drill_steps(rec.steps),
        diagnosis,
    )


def host_names(instance: Instance) -> tuple[str, ...]:
    """The names a fleet inventory may know ``instance`` by, in order of preference."""
    names = [instance.tags[t] for t in HOST_TAGS if instance.tags.get(t)]
    return (*names, instance.id)


def readiness_of(host: FleetHost) -> Readiness:
    """A fleet host's last answer as the console shows it: failing checks first, then
    warnings, each with its evidence and fix; an unreachable host or a collector error is
    ``unknown``, its message the one finding."""
    if host.status in ("unreachable", "error"):
        finding = FailingCheck(f"host-{host.status}", "warn", host.message or host.status, "")
        return Readiness("unknown", host.answered_at, (finding,))
    found = [
        FailingCheck(c.get("id", "?"), c.get("status", ""), c.get("evidence", ""), c.get("fix", ""))
        for c in host.checks
        if c.get("status") in ("fail", "warn")
    ]
    found.sort(key=lambda c: c.status != "fail")
    if host.status == "fail" and not any(c.status == "fail" for c in found):
        found[:0] = [FailingCheck(i, "fail", "", "") for i in host.failing]
    return Readiness(
        "ready" if host.status == "pass" else "not-ready", host.answered_at, tuple(found)
    )


class StoreSources:
    """Drills from the store; readiness and dumps from their areas once they are there."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def readiness(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, Readiness]:
        hosts = {h.host: h for h in latest_hosts(self.store, account_id=account_id)}
        if not hosts:
            return {}
        wanted = set(instance_ids)
        found: dict[str, Readiness] = {}
        for instance in self.store.list_instances(account_id=account_id):
            if instance.id not in wanted:
                continue
            host = next((hosts[n] for n in host_names(instance) if n in hosts), None)
            if host is not None:
                found[instance.id] = readiness_of(host)
        return found

    def drills(self, account_id: str, instance_id: str, limit: int) -> list[DrillRecord]:
        found = drill.history(self.store, instance_id, account=account_id, limit=limit)
        return [drill_record(r) for r in found]

    def last_drills(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, DrillRecord]:
        wanted = set(instance_ids)
        last: dict[str, DrillRecord] = {}
        for rec in drill.history(self.store, account=account_id, limit=MAX_ACCOUNT_DRILLS):
            if rec.instance_id in wanted and rec.instance_id not in last:
                last[rec.instance_id] = drill_record(rec)
        return last

    def dump_groups(self, account_id: str) -> list[DumpGroup]:
        entries = catalog.list_dumps(self.store, account_id=account_id, limit=MAX_ACCOUNT_DUMPS)
        times: dict[str, list[dt.datetime]] = {}
        for e in entries:
            if e.signature_id is not None:
                times.setdefault(e.signature_id, []).append(e.time or e.indexed_at)
        return [
            DumpGroup(
                g.signature,
                g.klass,
                g.count,
                g.hosts,
                g.releases,
                g.first_seen,
                g.last_seen,
                tuple(times.get(g.signature_id, ())),
                g.signature_id,
            )
            for g in catalog.group_entries(entries)
        ]

    def group_dumps(self, account_id: str, key: str) -> list[DumpSummary]:
        entries = catalog.list_dumps(
            self.store, account_id=account_id, signature_id=key, limit=MAX_ACCOUNT_DUMPS
        )
        return [_dump_summary(e) for e in entries]

    def dump(self, account_id: str, dump_id: str) -> DumpDetail | None:
        try:
            detail = catalog.show_dump(self.store, dump_id, account_id=account_id)
        except NoSuchEntity:
            return None
        return DumpDetail(
            _dump_summary(detail.entry),
            (),
            tuple(detail.log_tail),
            detail.summary_text,
            tuple(f.path for f in detail.files),
        )


def _dump_summary(entry: catalog.DumpEntry) -> DumpSummary:
    return DumpSummary(
        entry.id,
        None,
        entry.host or "",
        entry.release or "",
        entry.time or entry.indexed_at,
        entry.klass,
        entry.signature or "",
        entry.signature_id or "",
    )
