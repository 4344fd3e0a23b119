"""The console's data read from the store, through the libraries of the areas that own it.

:class:`StoreSources` is what ``kdiag serve`` gives the console: drill history through
:func:`kdiag.drill.history` (``store/drills.py``).  Readiness and the dump catalog come
from their areas' libraries as those land; until then they report nothing, and the pages
say "not checked" and "no dumps".
"""

from __future__ import annotations

from collections.abc import Sequence

from kdiag import drill
from kdiag.console.sources import (
    DrillRecord,
    DrillStep,
    DumpDetail,
    DumpGroup,
    DumpSummary,
    Readiness,
)
from kdiag.store import Store

__all__ = ("StoreSources", "drill_record", "drill_steps")

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


class StoreSources:
    """Drills from the store; readiness and dumps from their areas once they are there."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def readiness(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, Readiness]:
        return {}

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
        return []

    def group_dumps(self, account_id: str, signature: str) -> list[DumpSummary]:
        return []

    def dump(self, account_id: str, dump_id: str) -> DumpDetail | None:
        return None
