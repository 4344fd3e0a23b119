"""One readiness finding and the report that holds them (Linux doctor and Windows alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the report module stays import-light: the CLI's --help reads TRIGGERS
    from kdiag.readiness.platform import Platform

__all__ = ("Check", "CheckList", "Report")


@dataclass(frozen=True)
class Check:
    """One finding."""

    id: str
    status: str  # pass | warn | fail | n/a
    evidence: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status, "evidence": self.evidence, "fix": self.fix}


class CheckList:
    """What every report offers over its ``checks``: the verdict and lookup by id."""

    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def get(self, check_id: str) -> Check:
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(check_id)


@dataclass(frozen=True)
class Report(CheckList):
    """All checks plus the platform they were judged on."""

    platform: Platform
    family: str | None
    purpose: str
    checks: tuple[Check, ...]

    def to_json(self) -> dict[str, object]:
        plat = self.platform.to_json()
        plat["family"] = self.family
        return {
            "platform": plat,
            "purpose": self.purpose,
            "checks": [c.to_json() for c in self.checks],
        }
