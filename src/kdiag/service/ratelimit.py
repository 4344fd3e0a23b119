"""A token bucket per principal: the source of ``RequestLimitExceeded``.

Each principal (a user ARN) gets ``burst`` tokens, refilled at ``rate`` tokens per second; a
request takes one.  Buckets that are full again carry no information and are dropped when
the table grows past ``max_principals``, so memory stays bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kdiag.errors import RequestLimitExceeded

__all__ = ("TokenBucketLimiter",)


class TokenBucketLimiter:
    """Per-key token buckets; :meth:`take` raises ``RequestLimitExceeded`` when one is empty."""

    def __init__(
        self,
        rate: float = 50.0,
        burst: int = 100,
        *,
        max_principals: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._max = max_principals
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise :class:`RequestLimitExceeded`."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise RequestLimitExceeded("Request limit exceeded.")
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self._max:
                self._drop_full(now)

    def _drop_full(self, now: float) -> None:
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
