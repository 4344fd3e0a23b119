"""SendDiagnosticInterrupt: the one place that decides whether an NMI goes out.

Order of the checks, and why:

1. **Syntax** — an id that is not ``i-`` + 8 or 17 hex digits is rejected with
   ``InvalidInstanceID.Malformed`` before anything else.  This is request validation, like
   ``MissingParameter``: it depends only on the text the caller sent, so answering it before
   authorization reveals nothing about what exists.  (The instance ARN of a malformed id
   would be meaningless to evaluate a policy against.)
2. **Authorization** — :func:`kdiag.authz.authorize`, action
   ``ec2:SendDiagnosticInterrupt``, resource ``arn:aws:ec2:<region>:<account>:instance/<id>``,
   with the request context every action shares (source address, time, user, principal
   type, region) plus the instance's tags, zone and id when it exists.  An instance that
   does not exist in the caller's account and region is evaluated with no tags
   (reference §1.5): "not found" is never revealed to a caller who may not act on that ARN.
3. **DryRun** — an authorized dry run stops here (``outcome="dry-run"``; the service answers
   ``DryRunOperation``), whether or not the instance exists.
4. **Existence and state** — ``InvalidInstanceID.NotFound``; ``IncorrectInstanceState`` when
   the inventory or the backend says the machine is not ``running``; ``UnsupportedOperation``
   when the backend or the architecture (arm64) cannot take an NMI.
5. **Intent** — an audit row with outcome ``pending`` is committed and fsynced.
6. **Delivery** — ``backend.send_nmi``; then the row is completed: ``sent``, ``failed``
   (nothing left) or ``unknown`` (it may have left; the caller gets ``DeliveryUnconfirmed``,
   which names the row and which no SDK retries — see :func:`_deliver`).

Every call, whatever its fate, leaves exactly one audit row with its latency.  A process
killed between 5 and 6 leaves the ``pending`` row: no NMI ever goes out unrecorded, and
``kdiag serve`` marks such rows ``unknown`` when it starts (never ``sent`` or ``failed``:
there is no evidence either way).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from kdiag import policy
from kdiag.authz import Caller, authorize, instance_in_scope
from kdiag.backends.base import Backend, BackendPool, Target
from kdiag.errors import (
    AccessDenied,
    BackendError,
    DeliveryUnconfirmed,
    DryRunOperation,
    IncorrectState,
    InternalError,
    InvalidInstanceIDMalformed,
    InvalidInstanceIDNotFound,
    KdiagError,
    NMINotSupported,
)
from kdiag.store import AuditEntry, Instance, Store, check_instance_id

__all__ = (
    "ACTION",
    "Caller",
    "InterruptRequest",
    "InterruptResult",
    "send_diagnostic_interrupt",
)

log = logging.getLogger("kdiag.interrupts")

ACTION = "ec2:SendDiagnosticInterrupt"
_AUDIT_ACTION = "SendDiagnosticInterrupt"
#: What the caller asked wrongly (audited ``rejected``); any other failure is ``failed``.
_REJECTIONS = (
    InvalidInstanceIDMalformed,
    InvalidInstanceIDNotFound,
    IncorrectState,
    NMINotSupported,
)

_default_pool: BackendPool | None = None


@dataclass(frozen=True, slots=True)
class InterruptRequest:
    """One SendDiagnosticInterrupt call."""

    caller: Caller
    instance_id: str
    dry_run: bool = False
    region: str = "us-east-1"
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, slots=True)
class InterruptResult:
    """What happened: ``outcome`` is ``"sent"`` (the backend accepted the NMI — not proof
    of a panic or a dump) or ``"dry-run"`` (authorized; nothing sent)."""

    request_id: str
    instance_id: str
    outcome: str
    detail: str = ""
    audit_id: int | None = None


def _default_backends() -> BackendPool:
    global _default_pool  # noqa: PLW0603  # one process-wide pool of loaded backends
    if _default_pool is None:
        _default_pool = BackendPool()
    return _default_pool


def send_diagnostic_interrupt(
    store: Store,
    request: InterruptRequest,
    *,
    backends: Mapping[str, Backend] | None = None,
    now: dt.datetime | None = None,
) -> InterruptResult:
    """Authorize, check, record and deliver one diagnostic interrupt.

    :param backends: backends by name (default: a process-wide :class:`BackendPool` that
        loads them from the ``kdiag.backends`` entry points).
    :param now: the request time (default: the clock); ``aws:CurrentTime`` and the audit row.
    :return: ``outcome="sent"`` or ``outcome="dry-run"``.
    :raises InvalidInstanceIDMalformed: the id is not an instance id.
    :raises AccessDenied: no policy allows it, or one denies it (``UnauthorizedOperation``).
    :raises InvalidInstanceIDNotFound: authorized, but no such instance here.
    :raises IncorrectState: the instance is not running.
    :raises NMINotSupported: the backend or architecture cannot take an NMI.
    :raises DeliveryUnconfirmed: the NMI may have left (the backend failed after sending,
        or the outcome could not be recorded); the audit row says ``unknown`` (or stays
        ``pending``).  Never retry this automatically.
    :raises BackendError: the backend failed before sending; the audit row says ``failed``.
    """
    pool = backends if backends is not None else _default_backends()
    trail = _Trail.begin(store, request, now or dt.datetime.now(dt.UTC))
    with trail.recording_failures():
        check_instance_id(request.instance_id)
        instance = _authorize(store, request, trail)
        if request.dry_run:
            audit_id = trail.record("dry-run")
            return InterruptResult(
                request.request_id,
                request.instance_id,
                "dry-run",
                DryRunOperation.public_message or "",
                audit_id,
            )
        if instance is not None:
            trail.note(backend=instance.backend)
        instance, backend, target = _deliverable(store, request, instance, pool)
    audit_id = trail.record_intent()
    detail = _deliver(backend, target, trail, audit_id)
    return InterruptResult(request.request_id, instance.id, "sent", detail, audit_id)


def _authorize(store: Store, request: InterruptRequest, trail: _Trail) -> Instance | None:
    """Step 2: the caller may interrupt this instance ARN; returns the instance when it
    exists in the caller's account and region (else None: its tags must not count)."""
    caller = request.caller
    instance = instance_in_scope(store, caller, request.region, request.instance_id)
    decision = authorize(
        store,
        caller,
        ACTION,
        policy.instance_arn(request.region, caller.account_id, request.instance_id),
        region=request.region,
        instance_id=request.instance_id,
        instance=instance,
        now=trail.draft.time,
    )
    trail.note(decision="allow", reason=decision.reason)
    return instance


def _deliverable(
    store: Store,
    request: InterruptRequest,
    instance: Instance | None,
    pool: Mapping[str, Backend],
) -> tuple[Instance, Backend, Target]:
    """Step 4: the instance, its backend and target when an NMI can go out now; raises
    otherwise."""
    if instance is None:
        raise InvalidInstanceIDNotFound(
            f"The instance ID '{request.instance_id}' does not exist",
            target=request.instance_id,
        )
    if instance.state != "running":
        raise IncorrectState(
            f"The instance '{instance.id}' is not in the 'running' state "
            f"(inventory: {instance.state}).",
            target=instance.id,
        )
    backend = pool[instance.backend]
    target = store.target_of(instance)  # with the account's named credentials
    if not backend.supports_nmi(target):
        raise NMINotSupported(
            f"The instance '{instance.id}' ({instance.arch}, backend "
            f"{instance.backend!r}) does not support diagnostic interrupts.",
            target=instance.id,
        )
    live = backend.state(target)
    if live != "running":
        raise IncorrectState(
            f"The instance '{instance.id}' is not in the 'running' state "
            f"(the {instance.backend} backend reports '{live}').",
            target=instance.id,
        )
    return instance, backend, target


def _deliver(backend: Backend, target: Target, trail: _Trail, audit_id: int) -> str:
    """Step 6: send the NMI and complete the intent row; returns the backend's detail.

    Every failure is classified by whether the NMI may have left.  *Before*: a
    :class:`~kdiag.errors.BackendError` other than ``DeliveryUnconfirmed`` (the backend's
    contract: nothing was sent) — the row says ``failed`` and the error is raised as is,
    retryable or not as its status says.  *After or unknown*: ``DeliveryUnconfirmed`` from
    the backend, any other exception (a bug cannot vouch that nothing went out), or a
    failure to record the outcome of a delivery — the row says ``unknown`` (or stays
    ``pending``, reconciled to ``unknown`` at the next start of ``kdiag serve``) and the
    caller gets :class:`~kdiag.errors.DeliveryUnconfirmed` naming the row, which no SDK
    retries.
    """
    instance_id = target.instance_id
    try:
        result = backend.send_nmi(target)
    except BackendError as exc:
        if not isinstance(exc, DeliveryUnconfirmed):
            _complete(trail, audit_id, "failed", exc)
            raise
        _complete(trail, audit_id, "unknown", exc)
        why = "the connection to the hypervisor broke after the interrupt was sent"
        raise DeliveryUnconfirmed.for_row(instance_id, audit_id, why) from exc
    except Exception as exc:
        _complete(trail, audit_id, "unknown", exc)
        why = "the backend failed while sending it"
        raise DeliveryUnconfirmed.for_row(instance_id, audit_id, why) from exc
    try:
        trail.record_outcome(audit_id, "sent", detail=result.detail)
    except Exception as exc:
        log.exception("audit row %d: the NMI was accepted; recording that failed", audit_id)
        why = "the hypervisor accepted it, but the outcome could not be recorded"
        raise DeliveryUnconfirmed.for_row(instance_id, audit_id, why) from exc
    return result.detail


def _complete(trail: _Trail, audit_id: int, outcome: str, exc: BaseException) -> None:
    """Record a failed or unknown outcome; if even that fails the row stays ``pending``
    (start-up reconciles it to ``unknown``) and the caller still gets the delivery error."""
    try:
        trail.record_outcome(audit_id, outcome, exc)
    except Exception:
        log.exception("audit row %d: could not record outcome %r", audit_id, outcome)


def _failure(exc: BaseException | None) -> tuple[str | None, str | None]:
    """The audit row's error code and message for ``exc``: a kdiag error's own; for
    anything else ``InternalError`` and the exception's type (its text may hold internals)."""
    if exc is None:
        return None, None
    if isinstance(exc, KdiagError):
        return exc.code, str(exc)
    return InternalError.code, type(exc).__name__


@dataclass(slots=True)
class _Trail:
    """The audit row of one call: a draft that learns the decision and the backend as the
    steps pass, then is written once — or as intent, then outcome, around a delivery."""

    store: Store
    draft: AuditEntry
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def begin(cls, store: Store, request: InterruptRequest, when: dt.datetime) -> _Trail:
        caller = request.caller
        return cls(
            store,
            AuditEntry(
                action=_AUDIT_ACTION,
                outcome="",
                time=when,
                request_id=request.request_id,
                principal=caller.arn,
                access_key_id=caller.access_key_id,
                source_ip=caller.source_ip,
                instance_id=request.instance_id,
                region=request.region,
                dry_run=request.dry_run,
            ),
        )

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000.0, 3)

    def note(self, **changes: Any) -> None:
        """What a step learned (``decision``, ``reason``, ``backend``) for the row."""
        self.draft = replace(self.draft, **changes)

    def record(self, outcome: str, exc: BaseException | None = None) -> int:
        """Write the row: the call ends here."""
        code, message = _failure(exc)
        row = replace(
            self.draft,
            outcome=outcome,
            error_code=code,
            message=message,
            latency_ms=self._elapsed_ms(),
        )
        return self.store.record_audit(row)

    @contextmanager
    def recording_failures(self) -> Iterator[None]:
        """Any failure of the steps inside ends the call with its row: ``denied``,
        ``rejected`` (what the caller asked wrongly) or ``failed``."""
        try:
            yield
        except AccessDenied as exc:
            self.note(decision="deny", reason=exc.reason)
            self.record("denied", exc)
            raise
        except Exception as exc:
            self.record("rejected" if isinstance(exc, _REJECTIONS) else "failed", exc)
            raise

    def record_intent(self) -> int:
        """Step 5: the ``pending`` row, committed durably before anything is sent."""
        return self.store.start_audit(replace(self.draft, latency_ms=self._elapsed_ms()))

    def record_outcome(
        self, audit_id: int, outcome: str, exc: BaseException | None = None, *, detail: str = ""
    ) -> None:
        """Complete the intent row: ``sent`` (with the backend's detail), ``failed`` or
        ``unknown``."""
        code, message = _failure(exc)
        self.store.finish_audit(
            audit_id,
            outcome=outcome,
            error_code=code,
            message=message if exc is not None else detail,
            latency_ms=self._elapsed_ms(),
        )
