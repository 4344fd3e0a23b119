"""What every request handler shares: authentication, throttling, authorization, audit.

:class:`ServiceContext` holds the store, the SigV4 verifier, the per-principal rate limiter
and the backends.  The EC2 Query endpoint (:mod:`kdiag.service.ec2`) and the JSON API
(:mod:`kdiag.service.rest`) both run each request through :meth:`ServiceContext.run`, which
turns any failure into an :class:`~kdiag.service.errors.ApiError` and makes sure the request
lands in the audit log exactly once: ``SendDiagnosticInterrupt`` is audited by the use case
(:func:`kdiag.interrupts.send_diagnostic_interrupt`), everything else here.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from kdiag.errors import AccessDenied
from kdiag.service.errors import ApiError, to_api_error
from kdiag.service.ratelimit import TokenBucketLimiter
from kdiag.service.sigv4 import IncomingRequest, ReplayCache, Verifier
from kdiag.store.ids import check_instance_id
from kdiag.store.records import AccessKey, AuditEntry, Instance, User

if TYPE_CHECKING:
    from kdiag.backends.base import BackendPool
    from kdiag.service.ec2 import Filter
    from kdiag.store.store import Store

__all__ = ("Principal", "RequestAudit", "ServiceContext")

log = logging.getLogger("kdiag.service")

_MAX_CACHED_KEYS = 10_000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, and the region its signature is scoped to."""

    access_key: AccessKey
    user: User
    region: str


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

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


class ServiceContext:
    """The service's shared state; thread-safe (handlers run in a thread pool)."""

    def __init__(
        self,
        store: Store,
        *,
        regions: Collection[str] = ("us-east-1",),
        limiter: TokenBucketLimiter | None = None,
        backends: BackendPool | None = None,
        skew: int = 300,
        key_cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._key_ttl = key_cache_seconds
        self._keys: dict[str, tuple[float, tuple[str, tuple[AccessKey, User]]]] = {}
        self._keys_lock = threading.Lock()
        self.regions = tuple(regions)
        self.limiter = limiter if limiter is not None else TokenBucketLimiter()
        self.backends = backends
        self.verifier: Verifier[tuple[AccessKey, User]] = Verifier(
            self._lookup, regions=self.regions, skew=skew, replay_cache=ReplayCache(), clock=clock
        )

    def close(self) -> None:
        if self.backends is not None:
            self.backends.close()

    # -- authentication ------------------------------------------------------------------------

    def _lookup(self, key_id: str) -> tuple[str, tuple[AccessKey, User]] | None:
        """The secret and owner of an active key.  Found keys are remembered for
        ``key_cache_seconds`` (a deactivated or deleted key stops working within that
        time); unknown keys are never remembered, so a new key works at once."""
        now = time.monotonic()
        with self._keys_lock:
            cached = self._keys.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self.store.lookup_access_key(key_id)
        if found is None:
            with self._keys_lock:
                self._keys.pop(key_id, None)
            return None
        key, user, secret = found
        result = (secret, (key, user))
        if self._key_ttl > 0:
            with self._keys_lock:
                if len(self._keys) >= _MAX_CACHED_KEYS:
                    self._keys.clear()
                self._keys[key_id] = (now + self._key_ttl, result)
        return result

    def authenticate(self, req: IncomingRequest, audit: RequestAudit) -> Principal:
        """Verify the signature, spend a token of the caller's bucket, then mark the
        signature used (a throttled request did nothing and may be retried as signed)."""
        verified = self.verifier.verify(req, consume=False)
        key, user = verified.principal
        audit.principal = user.arn
        audit.access_key_id = key.id
        audit.region = verified.region
        self.limiter.take(user.arn)
        self.verifier.consume(verified)
        return Principal(key, user, verified.region)

    # -- authorization -------------------------------------------------------------------------

    def request_context(self, principal: Principal, source_ip: str | None) -> dict[str, str]:
        """The global condition keys of a request (``aws:*`` and ``ec2:Region``)."""
        now = dt.datetime.now(dt.UTC)
        context = {
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(now.timestamp())),
            "aws:username": principal.user.name,
            "aws:userid": principal.user.id,
            "aws:PrincipalArn": principal.user.arn,
            "aws:PrincipalAccount": principal.user.account_id,
            "aws:RequestedRegion": principal.region,
            "ec2:Region": principal.region,
        }
        if source_ip:
            context["aws:SourceIp"] = source_ip
        return context

    def authorize(
        self, principal: Principal, action: str, resource: str, audit: RequestAudit
    ) -> None:
        """Evaluate the caller's policies; raise AccessDenied (UnauthorizedOperation)."""
        from kdiag import policy

        decision = policy.evaluate(
            self.store.user_policies(principal.user),
            action,
            resource,
            self.request_context(principal, audit.source_ip),
        )
        audit.decision = "allow" if decision.allowed else "deny"
        audit.reason = str(decision.reason)
        if not decision.allowed:
            raise AccessDenied(
                f"User: {principal.user.arn} is not authorized to perform: {action} "
                f"on resource: {resource}"
            )

    # -- actions --------------------------------------------------------------------------------

    def send_interrupt(
        self, principal: Principal, instance_id: str, *, dry_run: bool, audit: RequestAudit
    ) -> str:
        """Run the use case; return its outcome (``sent``); DryRun raises DryRunOperation."""
        from kdiag import interrupts

        request = interrupts.InterruptRequest(
            caller=interrupts.Caller(
                account_id=principal.user.account_id,
                user_name=principal.user.name,
                user_id=principal.user.id,
                access_key_id=principal.access_key.id,
                source_ip=audit.source_ip,
            ),
            instance_id=instance_id,
            dry_run=dry_run,
            region=principal.region,
            request_id=audit.request_id,
        )
        try:
            result = interrupts.send_diagnostic_interrupt(
                self.store, request, backends=self.backends
            )
        except Exception:
            audit.audited = True  # the use case audits every outcome, failures included
            raise
        audit.audited = True
        if result.outcome == "dry-run":
            raise ApiError.dry_run()
        return result.outcome

    def describe_instances(
        self,
        principal: Principal,
        ids: Sequence[str],
        filters: Sequence[Filter],
        *,
        audit: RequestAudit,
    ) -> list[Instance]:
        """The caller's instances in its region, by id and filter (``ec2:DescribeInstances``)."""
        from kdiag.service.ec2 import match_filters

        for iid in ids:
            check_instance_id(iid)
        self.authorize(principal, "ec2:DescribeInstances", "*", audit)
        if audit.dry_run:
            raise ApiError.dry_run()
        found = self.store.list_instances(
            ids or None, account_id=principal.user.account_id, region=principal.region
        )
        missing = sorted(set(ids) - {i.id for i in found})
        if missing:
            raise ApiError(
                "InvalidInstanceID.NotFound",
                f"The instance IDs '{', '.join(missing)}' do not exist",
            )
        return [i for i in found if match_filters(i, filters)]

    def audit_log(
        self,
        principal: Principal,
        *,
        since: dt.datetime | None,
        limit: int,
        audit: RequestAudit,
    ) -> list[AuditEntry]:
        """Audit rows (``cloudtrail:LookupEvents`` on ``*``)."""
        self.authorize(principal, "cloudtrail:LookupEvents", "*", audit)
        return self.store.audit_rows(since=since, limit=limit)

    # -- the per-request frame ---------------------------------------------------------------

    def run(
        self, handler: Callable[[], T], audit: RequestAudit
    ) -> tuple[T | None, ApiError | None]:
        """Call ``handler``; map any failure; audit the request unless the use case did."""
        try:
            value = handler()
        except Exception as exc:  # the one boundary: everything becomes an EC2 error
            error = to_api_error(exc)
            if error.code == "InternalError":
                log.exception("request %s failed", audit.request_id)
            self._record(audit, error)
            return None, error
        self._record(audit, None)
        return value, None

    def _record(self, audit: RequestAudit, error: ApiError | None) -> None:
        if audit.audited:
            return
        if error is None:
            outcome = "ok"
        elif error.code == "DryRunOperation":
            outcome = "dry-run"
        elif error.code == "UnauthorizedOperation":
            outcome = "denied"
        elif error.code == "InternalError":
            outcome = "failed"
        else:
            outcome = "rejected"
        entry = AuditEntry(
            action=(audit.action or "-")[:64],
            outcome=outcome,
            request_id=audit.request_id,
            principal=audit.principal,
            access_key_id=audit.access_key_id,
            source_ip=audit.source_ip,
            instance_id=audit.instance_id,
            region=audit.region,
            decision=audit.decision,
            reason=audit.reason,
            error_code=None if error is None else error.code,
            message=None if error is None else error.message,
            latency_ms=audit.elapsed_ms(),
            dry_run=audit.dry_run,
        )
        try:
            self.store.record_audit(entry)
        except Exception:  # the answer still goes out; the failure is logged loudly
            log.exception("could not audit request %s", audit.request_id)
