"""What the console shows, as plain records, and where it comes from.

The console reads three areas built beside it: fleet readiness (:mod:`kdiag.fleet`), drills
(:mod:`kdiag.drill`) and the dump catalog (:mod:`kdiag.catalog`).  Each is reached through
one method of :class:`Sources`, scoped to one account, so the pages never depend on those
areas' storage and a deployment without one of them shows "no data" rather than failing.
:class:`EmptySources` knows nothing beyond the instances themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = (
    "DrillRecord",
    "DrillStep",
    "DumpDetail",
    "DumpGroup",
    "DumpSummary",
    "EmptySources",
    "FailingCheck",
    "Readiness",
    "Sources",
)


@dataclass(frozen=True, slots=True)
class FailingCheck:
    """A readiness check that failed (or warned), with the fix that makes it pass."""

    id: str
    status: str
    evidence: str
    fix: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """An instance's last readiness verdict: ``ready``, ``not-ready`` (or ``unknown``)."""

    verdict: str
    checked_at: dt.datetime | None
    failing: tuple[FailingCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class DrillStep:
    """One step of a drill, in seconds from the drill's start; ``ok`` is False for the step
    that failed."""

    name: str
    start: float
    end: float
    ok: bool = True


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """One drill of one instance: verdict (``passed``, ``failed``, ``running``), its steps
    and, when it failed, the diagnosis."""

    id: str
    instance_id: str
    started_at: dt.datetime
    verdict: str
    steps: tuple[DrillStep, ...] = ()
    diagnosis: str | None = None

    @property
    def duration(self) -> float:
        return max((s.end for s in self.steps), default=0.0)


@dataclass(frozen=True, slots=True)
class DumpSummary:
    """A dump in the catalog (one row of a group's list)."""

    id: str
    instance_id: str | None
    host: str
    release: str
    crashed_at: dt.datetime | None
    panic_class: str
    signature: str
    #: the key of the dump's group (:attr:`DumpGroup.key`)
    group: str = ""


@dataclass(frozen=True, slots=True)
class DumpDetail:
    """What ``kdiag analyze`` shows of one dump: its summary block as printed
    (``summary_text``) or as pairs, and the kernel log's last lines."""

    dump: DumpSummary
    summary: tuple[tuple[str, str], ...]
    log_tail: tuple[str, ...]
    summary_text: str = ""
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DumpGroup:
    """The catalog's dumps of one crash signature."""

    signature: str
    panic_class: str
    count: int
    hosts: tuple[str, ...]
    releases: tuple[str, ...]
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    times: tuple[dt.datetime, ...] = field(default=())
    #: what names the group in a URL (the catalog's signature id); the signature if empty
    key: str = ""

    @property
    def ident(self) -> str:
        return self.key or self.signature


class Sources(Protocol):
    """Where the console's data comes from; every call is limited to ``account_id``."""

    def readiness(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, Readiness]:
        """The last readiness verdict of each instance that has one."""
        ...

    def drills(self, account_id: str, instance_id: str, limit: int) -> list[DrillRecord]:
        """The instance's drills, newest first."""
        ...

    def last_drills(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, DrillRecord]:
        """The newest drill of each instance that has one."""
        ...

    def dump_groups(self, account_id: str) -> list[DumpGroup]:
        """The catalog grouped by signature, most dumps first."""
        ...

    def group_dumps(self, account_id: str, key: str) -> list[DumpSummary]:
        """The dumps of one group (:attr:`DumpGroup.ident`), newest first."""
        ...

    def dump(self, account_id: str, dump_id: str) -> DumpDetail | None:
        """One dump, or None when it is not in the account's catalog."""
        ...


class EmptySources:
    """No readiness verdicts, drills or dumps: the pages say so."""

    def readiness(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, Readiness]:
        return {}

    def drills(self, account_id: str, instance_id: str, limit: int) -> list[DrillRecord]:
        return []

    def last_drills(self, account_id: str, instance_ids: Sequence[str]) -> dict[str, DrillRecord]:
        return {}

    def dump_groups(self, account_id: str) -> list[DumpGroup]:
        return []

    def group_dumps(self, account_id: str, key: str) -> list[DumpSummary]:
        return []

    def dump(self, account_id: str, dump_id: str) -> DumpDetail | None:
        return None
