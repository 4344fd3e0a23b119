"""What every request handler shares: the store, the backends, and who is asking.

:class:`ServiceContext` holds the store, the backends, the SigV4 verifier (over a
:class:`~kdiag.service.keys.KeyCache`) and the throttle settings.
:meth:`ServiceContext.authenticate` turns a signed request into the
:class:`~kdiag.authz.Caller` every action takes, after claiming its signature in the
replay ledger (:mod:`kdiag.store.ledger`); :meth:`ServiceContext.run` is the per-request
frame (:func:`kdiag.service.audit.run_audited`).  What each action does is in
:mod:`kdiag.service.actions`, authorization in :mod:`kdiag.authz`.

No state here changes an answer: the ledger and the token buckets are in the database, so
replicas of the service on one database answer as one process would.  (The key cache
remembers an active key for 2 s: a deactivated key works that much longer on each.)
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import TypeVar

from kdiag.authz import Caller
from kdiag.backends.base import BackendPool
from kdiag.errors import DeliveryUnconfirmed
from kdiag.service.audit import (
    Replayed,
    RequestAudit,
    WireEvent,
    record_wire_event,
    run_audited,
)
from kdiag.service.errors import ApiError
from kdiag.service.keys import KeyCache
from kdiag.service.ratelimit import Throttle
from kdiag.service.sigv4 import IncomingRequest, Verifier
from kdiag.store import Store
from kdiag.store.ledger import Claim, LedgerEntry, RecordedAnswer

__all__ = ("PENDING_WAIT", "ServiceContext")

log = logging.getLogger("kdiag.service")

T = TypeVar("T")

#: Seconds after a signature's first request began during which a repeat waits for its
#: answer; a repeat of a request still unanswered after that (its server died, or it hangs)
#: is answered ``DeliveryUnconfirmed``.
PENDING_WAIT = 30.0
#: Prune expired ledger rows and idle buckets once every so many claims (per process).
PRUNE_EVERY = 1024


class ServiceContext:
    """The service's shared state; thread-safe (handlers run in a thread pool)."""

    def __init__(
        self,
        store: Store,
        *,
        regions: Collection[str] = ("us-east-1",),
        throttle: Throttle | None = None,
        backends: BackendPool | None = None,
        skew: int = 300,
        key_cache_seconds: float = 2.0,
        pending_wait: float = PENDING_WAIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.regions = tuple(regions)
        self.throttle = throttle if throttle is not None else Throttle()
        self.backends = backends
        self.pending_wait = pending_wait
        self._clock = clock
        self._claims = itertools.count(1)
        self.verifier: Verifier[Caller] = Verifier(
            KeyCache(store, ttl=key_cache_seconds).lookup,
            regions=self.regions,
            skew=skew,
            clock=clock,
        )

    def close(self) -> None:
        if self.backends is not None:
            self.backends.close()

    def authenticate(self, req: IncomingRequest, audit: RequestAudit) -> tuple[Caller, str]:
        """The caller and the region its signature is scoped to.

        Verify the signature, then claim it in the replay ledger, which also spends a token
        of the caller's bucket (a throttled request claims nothing and may be resent as
        signed).  A signature claimed before raises :class:`Replayed` with its first
        request's answer (waiting for it while that request runs).
        """
        verified = self.verifier.verify(req, consume=False)
        # aws:SecureTransport is always present, false on plain HTTP, so that the usual
        # "Deny unless aws:SecureTransport" guardrail refuses it (TLS terminated by a proxy
        # counts when --forwarded-allow-ips trusts that proxy's X-Forwarded-Proto).
        caller = replace(
            verified.principal,
            source_ip=audit.source_ip,
            secure_transport=req.scheme == "https",
        )
        audit.principal = caller.arn
        audit.access_key_id = caller.access_key_id
        audit.region = verified.region
        claim = Claim(
            signature=verified.signature,
            access_key_id=verified.access_key_id,
            principal=caller.arn,
            presigned=verified.presigned,
            expires_at=verified.valid_until,
            request_id=audit.request_id,
        )
        first = self.store.claim_signature(
            claim, now=self._clock(), bucket=self.throttle.bucket(caller.arn)
        )
        if first is None:
            audit.ledger_signature = verified.signature
            self._maybe_prune()
            return caller, verified.region
        answer = self._first_answer(first)
        if answer.body is None:  # too large to keep: a read, run again (and not recorded)
            return caller, verified.region
        raise Replayed(answer)

    def _first_answer(self, entry: LedgerEntry) -> RecordedAnswer:
        """``entry``'s answer, waiting while its request runs (up to ``pending_wait`` from
        its start)."""
        while entry.answer is None:
            if self._clock() >= entry.claimed_at + self.pending_wait:
                raise DeliveryUnconfirmed(
                    f"An identical signed request (request {entry.request_id}) was accepted "
                    "and has no recorded answer: it may still be running, or its server "
                    "stopped. Its outcome is unknown; check before signing a new request."
                )
            time.sleep(0.02)
            found = self.store.ledger_entry(entry.signature)
            if found is None:  # expired and pruned meanwhile: nothing more to wait for
                raise DeliveryUnconfirmed(
                    f"An identical signed request (request {entry.request_id}) expired "
                    "before its answer was recorded; its outcome is unknown."
                )
            entry = found
        return entry.answer

    def record_answer(
        self, audit: RequestAudit, status: int, content_type: str, body: bytes
    ) -> None:
        """Keep the answer of a request that claimed its signature, for its repeats."""
        if audit.ledger_signature is None:
            return
        try:
            self.store.record_answer(audit.ledger_signature, status, content_type, body)
        except Exception:  # repeats of it answer DeliveryUnconfirmed after the wait
            log.exception("could not record the answer of request %s", audit.request_id)

    def _maybe_prune(self) -> None:
        if next(self._claims) % PRUNE_EVERY:
            return
        try:
            self.store.prune_ledger(self._clock(), idle_before=self.throttle.idle_before())
        except Exception:  # housekeeping: the next prune tries again
            log.exception("could not prune the replay ledger")

    def audit_wire_event(self, event: WireEvent) -> None:
        """Audit a request the HTTP layer ended itself (the protocol's auditor)."""
        record_wire_event(self.store, event)

    def run(self, handler: Callable[[], T], audit: RequestAudit) -> T | ApiError | Replayed:
        """Call ``handler``: its value, the client's error, or a repeated signature's
        recorded answer; the request is audited."""
        return run_audited(self.store, handler, audit)
