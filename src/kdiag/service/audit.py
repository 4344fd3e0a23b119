"""The per-request frame: every request ends as exactly one audit row.

:func:`run_audited` calls a request's handler, turns any failure into the
:class:`~kdiag.service.errors.ApiError` the client sees, and writes the request's audit row
from its :class:`RequestAudit` — unless the use case wrote it itself
(``SendDiagnosticInterrupt``: :func:`kdiag.interrupts.send_diagnostic_interrupt` audits every
outcome, intent first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kdiag.errors import AccessDenied, DryRunOperation, InternalError
from kdiag.service.errors import ApiError, to_api_error
from kdiag.store import AuditEntry, Store
from kdiag.store.ledger import RecordedAnswer

__all__ = ("Replayed", "RequestAudit", "outcome_of", "run_audited")

log = logging.getLogger("kdiag.service")

T = TypeVar("T")


@dataclass(slots=True)
class RequestAudit:
    """What one request has revealed so far; becomes its audit row when it ends."""

    request_id: str
    source_ip: str | None
    started: float = field(default_factory=time.perf_counter)
    action: str | None = None
    principal: str | None = None
    access_key_id: str | None = None
    instance_id: str | None = None
    region: str | None = None
    dry_run: bool = False
    decision: str | None = None
    reason: str | None = None
    #: the use case wrote this request's audit row itself
    audited: bool = False
    #: the signature this request claimed in the replay ledger (its answer is owed there)
    ledger_signature: str | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


class Replayed(Exception):
    """A repeated signature: the request is answered with its first request's answer."""

    def __init__(self, answer: RecordedAnswer) -> None:
        super().__init__(answer.request_id)
        self.answer = answer


def outcome_of(error: ApiError | None) -> str:
    """The audit outcome of a request answered with ``error`` (None: success)."""
    if error is None:
        return "ok"
    return {
        DryRunOperation.code: "dry-run",
        AccessDenied.code: "denied",
        InternalError.code: "failed",
    }.get(error.code, "rejected")


def run_audited(
    store: Store, handler: Callable[[], T], audit: RequestAudit
) -> T | ApiError | Replayed:
    """Call ``handler``: its value, or the error the client sees for its failure, or the
    recorded answer of a repeated signature; either way the request is audited (unless the
    use case did it)."""
    try:
        value = handler()
    except Replayed as replay:
        answer = replay.answer
        _record(
            store,
            audit,
            None,
            outcome="replayed",
            message=f"repeated signature: answered with the recorded answer (HTTP "
            f"{answer.status}) of request {answer.request_id}; nothing was done again",
        )
        return replay
    except Exception as exc:  # the one boundary: everything becomes an EC2 error
        error = to_api_error(exc)
        if error.code == InternalError.code:
            log.exception("request %s failed", audit.request_id)
        _record(store, audit, error)
        return error
    _record(store, audit, None)
    return value


def _record(
    store: Store,
    audit: RequestAudit,
    error: ApiError | None,
    *,
    outcome: str | None = None,
    message: str | None = None,
) -> None:
    if audit.audited:
        return
    entry = AuditEntry(
        action=(audit.action or "-")[:64],
        outcome=outcome or outcome_of(error),
        request_id=audit.request_id,
        principal=audit.principal,
        access_key_id=audit.access_key_id,
        source_ip=audit.source_ip,
        instance_id=audit.instance_id,
        region=audit.region,
        decision=audit.decision,
        reason=audit.reason,
        error_code=None if error is None else error.code,
        message=message if error is None else error.message,
        latency_ms=audit.elapsed_ms(),
        dry_run=audit.dry_run,
    )
    try:
        store.record_audit(entry)
    except Exception:  # the answer still goes out; the failure is logged loudly
        log.exception("could not audit request %s", audit.request_id)
