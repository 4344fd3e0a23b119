"""What every request handler shares: the store, the backends, and who is asking.

:class:`ServiceContext` holds the store, the backends, the SigV4 verifier (over a
:class:`~kdiag.service.keys.KeyCache`) and the per-principal rate limiter.
:meth:`ServiceContext.authenticate` turns a signed request into the
:class:`~kdiag.authz.Caller` every action takes; :meth:`ServiceContext.run` is the
per-request frame (:func:`kdiag.service.audit.run_audited`).  What each action does is in
:mod:`kdiag.service.actions`, authorization in :mod:`kdiag.authz`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import TypeVar

from kdiag.authz import Caller
from kdiag.backends.base import BackendPool
from kdiag.service.audit import RequestAudit, run_audited
from kdiag.service.errors import ApiError
from kdiag.service.keys import KeyCache
from kdiag.service.ratelimit import TokenBucketLimiter
from kdiag.service.sigv4 import IncomingRequest, ReplayCache, Verifier
from kdiag.store import Store

__all__ = ("ServiceContext",)

T = TypeVar("T")


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
        self.regions = tuple(regions)
        self.limiter = limiter if limiter is not None else TokenBucketLimiter()
        self.backends = backends
        self.verifier: Verifier[Caller] = Verifier(
            KeyCache(store, ttl=key_cache_seconds).lookup,
            regions=self.regions,
            skew=skew,
            replay_cache=ReplayCache(),
            clock=clock,
        )

    def close(self) -> None:
        if self.backends is not None:
            self.backends.close()

    def authenticate(self, req: IncomingRequest, audit: RequestAudit) -> tuple[Caller, str]:
        """The caller and the region its signature is scoped to.

        Verify the signature, spend a token of the caller's bucket, then mark the signature
        used (a throttled request did nothing and may be retried as signed).
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
        self.limiter.take(caller.arn)
        self.verifier.consume(verified)
        return caller, verified.region

    def run(self, handler: Callable[[], T], audit: RequestAudit) -> T | ApiError:
        """Call ``handler``: its value, or the client's error; the request is audited."""
        return run_audited(self.store, handler, audit)
