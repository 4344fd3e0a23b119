"""SendDiagnosticInterrupt: the one place that decides whether an NMI goes out.

Order of the checks, and why:

1. **Syntax** — an id that is not ``i-`` + 8 or 17 hex digits is rejected with
   ``InvalidInstanceID.Malformed`` before anything else.  This is request validation, like
   ``MissingParameter``: it depends only on the text the caller sent, so answering it before
   authorization reveals nothing about what exists.  (The instance ARN of a malformed id
   would be meaningless to evaluate a policy against.)
2. **Authorization** — ``kdiag.policy.evaluate`` over the caller's inline policies, action
   ``ec2:SendDiagnosticInterrupt``, resource
   ``arn:aws:ec2:<region>:<account>:instance/<id>``, with the request context (source
   address, time, user, region, and the instance's tags, zone and id when it exists).  An
   instance that does not exist in the caller's account and region is evaluated with no tags
   (reference §1.5): "not found" is never revealed to a caller who may not act on that ARN.
3. **DryRun** — an authorized dry run stops here (``outcome="dry-run"``; the service answers
   ``DryRunOperation``), whether or not the instance exists.
4. **Existence and state** — ``InvalidInstanceID.NotFound``; ``IncorrectInstanceState`` when
   the inventory or the backend says the machine is not ``running``; ``UnsupportedOperation``
   when the backend or the architecture (arm64) cannot take an NMI.
5. **Intent** — an audit row with outcome ``pending`` is committed and fsynced.
6. **Delivery** — ``backend.send_nmi``; then the row is completed (``sent`` or ``failed``).

Every call, whatever its fate, leaves exactly one audit row with its latency.  A process
killed between 5 and 6 leaves the ``pending`` row: no NMI ever goes out unrecorded.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kdiag import policy
from kdiag.backends.base import Backend, BackendPool, Target
from kdiag.errors import (
    AccessDenied,
    IncorrectState,
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
    "request_context",
    "send_diagnostic_interrupt",
)

ACTION = "ec2:SendDiagnosticInterrupt"
_AUDIT_ACTION = "SendDiagnosticInterrupt"

_default_pool: BackendPool | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal (an IAM-style user) and where the request came from."""

    account_id: str
    user_name: str
    user_id: str
    access_key_id: str | None = None
    source_ip: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"


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


def request_context(
    request: InterruptRequest, instance: Instance | None, now: dt.datetime
) -> dict[str, str | list[str]]:
    """The IAM condition keys for this request (reference §3.6), via
    :func:`kdiag.policy.request_context`.

    The instance's zone and tags are known only when it exists in the caller's account and
    region; keys with no value are left out, so the policy's missing-key rules apply.
    ``ec2:InstanceID`` is the id the caller asked for.
    """
    caller = request.caller
    return policy.request_context(
        account_id=caller.account_id,
        user_name=caller.user_name,
        user_id=caller.user_id,
        source_ip=caller.source_ip,
        region=request.region,
        instance_id=request.instance_id,
        availability_zone=instance.availability_zone if instance is not None else None,
        tags=dict(instance.tags) if instance is not None else None,
        now=now,
        principal_arn=caller.arn,
    )


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
    :raises BackendError: the backend failed; the audit row says ``failed``.
    """
    started = time.perf_counter()
    when = now or dt.datetime.now(dt.UTC)
    caller = request.caller
    pool = backends if backends is not None else _default_backends()
    entry = AuditEntry(
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
    )

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000.0, 3)

    def audit(outcome: str, exc: BaseException | None = None, **changes: Any) -> int:
        code = message = None
        if isinstance(exc, KdiagError):
            code, message = exc.code, str(exc)
        elif exc is not None:
            code, message = "InternalError", type(exc).__name__
        return store.record_audit(
            replace(
                entry,
                outcome=outcome,
                error_code=code,
                message=message,
                latency_ms=elapsed(),
                **changes,
            )
        )

    # 1. syntax
    try:
        check_instance_id(request.instance_id)
    except KdiagError as exc:
        audit("rejected", exc)
        raise

    # 2. authorization
    try:
        instance = store.get_instance(request.instance_id)
        if instance is not None and (
            instance.account_id != caller.account_id or instance.region != request.region
        ):
            instance = None
        arn = policy.instance_arn(request.region, caller.account_id, request.instance_id)
        policies = store.policies_of(caller.account_id, caller.user_name)
        decision = policy.evaluate(policies, ACTION, arn, request_context(request, instance, when))
    except Exception as exc:
        audit("failed", exc)
        raise
    reason = str(decision.reason)
    if not decision.allowed:
        denied = AccessDenied(
            "You are not authorized to perform this operation. "
            f"User: {caller.arn} is not authorized to perform: {ACTION} on resource: {arn}"
        )
        audit("denied", denied, decision="deny", reason=reason)
        raise denied
    entry = replace(entry, decision="allow", reason=reason)

    # 3. dry run
    if request.dry_run:
        audit_id = audit("dry-run")
        return InterruptResult(
            request.request_id,
            request.instance_id,
            "dry-run",
            "Request would have succeeded, but DryRun flag is set.",
            audit_id,
        )

    # 4. existence, state, capability
    if instance is not None:
        entry = replace(entry, backend=instance.backend)
    try:
        instance, backend, target = _deliverable(request, instance, pool)
    except KdiagError as exc:
        expected = isinstance(exc, InvalidInstanceIDNotFound | IncorrectState | NMINotSupported)
        audit("rejected" if expected else "failed", exc)
        raise
    except Exception as exc:
        audit("failed", exc)
        raise

    # 5. intent, committed before anything leaves
    audit_id = store.start_audit(replace(entry, latency_ms=elapsed()))

    # 6. delivery
    try:
        result = backend.send_nmi(target)
    except BaseException as exc:
        code, message = (
            (exc.code, str(exc)) if isinstance(exc, KdiagError) else ("InternalError", repr(exc))
        )
        store.finish_audit(
            audit_id, outcome="failed", error_code=code, message=message, latency_ms=elapsed()
        )
        raise
    store.finish_audit(audit_id, outcome="sent", message=result.detail, latency_ms=elapsed())
    return InterruptResult(request.request_id, instance.id, "sent", result.detail, audit_id)


def _deliverable(
    request: InterruptRequest, instance: Instance | None, pool: Mapping[str, Backend]
) -> tuple[Instance, Backend, Target]:
    """The instance, its backend and target when an NMI can go out now; raises otherwise."""
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
    target = Target(instance.id, instance.target, instance.arch)
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
