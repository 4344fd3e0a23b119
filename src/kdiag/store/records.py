"""Store records: the plain, immutable values the Store API hands out.

Callers never see ORM objects: every query returns one of these frozen dataclasses, so a
record can cross threads, be logged (no secrets in any of them) or be serialised with
:meth:`to_json` without touching the database again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kdiag import policy
from kdiag.backends.credentials import masked_settings

__all__ = (
    "AccessKey",
    "Account",
    "AuditEntry",
    "Instance",
    "User",
    "masked_settings",
)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Account:
    """An account: the 12-digit id that appears in every ARN kdiag builds."""

    id: str
    name: str
    is_default: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class User:
    """An IAM-style user; ``id`` is the unique ``AIDA…`` id (``aws:userid``)."""

    id: str
    name: str
    account_id: str
    created_at: dt.datetime

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:user/<name>``, the principal in the audit log."""
        return policy.user_arn(self.account_id, self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "UserId": self.id,
            "UserName": self.name,
            "Arn": self.arn,
            "AccountId": self.account_id,
            "CreateDate": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class AccessKey:
    """An access key by id; the secret is never part of this record."""

    id: str
    user_id: str
    user_name: str
    status: str
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "AccessKeyId": self.id,
            "UserName": self.user_name,
            "Status": self.status,
            "CreateDate": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Instance:
    """A machine kdiag can interrupt, and how to reach it.

    ``target`` holds the backend's settings (for ``qmp``: ``{"address": "/run/vm.qmp"}``).
    """

    id: str
    account_id: str
    region: str
    availability_zone: str
    backend: str
    target: Mapping[str, Any]
    arch: str
    state: str
    tags: Mapping[str, str]
    created_at: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _frozen(self.target))
        object.__setattr__(self, "tags", _frozen(self.tags))

    @property
    def arn(self) -> str:
        """``arn:aws:ec2:<region>:<account>:instance/<id>``."""
        return policy.instance_arn(self.region, self.account_id, self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "InstanceId": self.id,
            "AccountId": self.account_id,
            "Region": self.region,
            "AvailabilityZone": self.availability_zone,
            "Backend": self.backend,
            "Target": masked_settings(dict(self.target)),
            "Architecture": self.arch,
            "State": self.state,
            "Tags": dict(self.tags),
            "CreateDate": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log: one request, whatever became of it.

    ``decision`` is the policy's verdict (``"allow"``, ``"deny"``, or ``None`` when the
    request never reached the policy); ``outcome`` is what happened: ``"pending"`` (intent
    recorded, delivery under way or interrupted), ``"sent"``, ``"dry-run"``, ``"denied"``,
    ``"rejected"`` (malformed, unknown, wrong state, unsupported), ``"failed"`` (the
    backend failed before sending) or ``"unknown"`` (the NMI may have been sent: the
    backend failed after sending, or the service died between intent and outcome).
    ``id`` is ``None`` until the row is stored.
    """

    action: str
    outcome: str
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    request_id: str = ""
    principal: str | None = None
    access_key_id: str | None = None
    source_ip: str | None = None
    instance_id: str | None = None
    region: str | None = None
    decision: str | None = None
    reason: str | None = None
    error_code: str | None = None
    message: str | None = None
    latency_ms: float | None = None
    dry_run: bool = False
    backend: str | None = None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": _iso(self.time),
            "request_id": self.request_id,
            "principal": self.principal,
            "access_key_id": self.access_key_id,
            "source_ip": self.source_ip,
            "action": self.action,
            "instance_id": self.instance_id,
            "region": self.region,
            "decision": self.decision,
            "reason": self.reason,
            "outcome": self.outcome,
            "error_code": self.error_code,
            "message": self.message,
            "latency_ms": self.latency_ms,
            "dry_run": self.dry_run,
            "backend": self.backend,
        }
