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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kdiag.errors import AccessDenied, DryRunOperation, InternalError
from kdiag.service.errors import ApiError, to_api_error
from kdiag.store import AuditEntry, Store
from kdiag.store.ledger import RecordedAnswer

__all__ = (
    "BodyIncomplete",
    "Replayed",
    "RequestAudit",
    "WireEvent",
    "outcome_of",
    "record_rejection",
    "record_wire_event",
    "run_audited",
)

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


@dataclass(frozen=True, slots=True)
class WireEvent:
    """A request the HTTP layer ended before the app saw it: what its audit row says."""

    code: str
    message: str
    #: the status answered; None: the client left, nothing was answered
    status: int | None
    peer: str | None
    method: str | None = None
    path: str | None = None


class BodyIncomplete(Exception):
    """The request's body never arrived whole: the client left, or the HTTP layer timed
    it out (``code`` ``ClientDisconnected`` or ``RequestTimeout``).  Nothing was done; the
    request is audited ``rejected`` and its answer goes nowhere."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    except BodyIncomplete as gone:
        error = ApiError(gone.code, gone.message, 408)
        _record(store, audit, error)
        return error
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


def record_rejection(store: Store, audit: RequestAudit, code: str, message: str) -> None:
    """Audit a request that ended without an answer from the app (``rejected``): a body
    that timed out, a client that left while sending it."""
    _record(store, audit, ApiError(code, message, 400))


def record_wire_event(store: Store, event: WireEvent) -> None:
    """Audit a request the HTTP layer ended itself (bad head, timeout, disconnect)."""
    audit = RequestAudit(request_id=str(uuid.uuid4()), source_ip=event.peer)
    method = event.method or "HTTP"
    audit.action = f"{method} {event.path or '-'}"[:64]
    shown = f" (answered {event.status})" if event.status is not None else ""
    record_rejection(store, audit, event.code, event.message + shown)
