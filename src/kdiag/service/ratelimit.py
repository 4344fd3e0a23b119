"""The throttle: a token bucket per principal, the source of ``RequestLimitExceeded``.

Each principal (a user ARN) gets ``burst`` tokens, refilled at ``rate`` tokens per second;
a request takes one.  The buckets live in the database (``throttle_buckets``,
:mod:`kdiag.store.ledger`), taken by one atomic statement, so every replica of the service
draws on the same bucket and a restart does not refill it: there is no per-process bucket.
:class:`Throttle` holds only the settings and the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kdiag.store.ledger import Bucket

__all__ = ("Throttle",)


@dataclass(frozen=True, slots=True)
class Throttle:
    """``burst`` tokens per principal, ``rate`` more a second; ``clock`` in seconds (every
    replica must use the same one: the default, wall-clock time)."""

    rate: float = 50.0
    burst: int = 100
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")

    def bucket(self, principal: str) -> Bucket:
        """One take from ``principal``'s bucket, now."""
        return Bucket(principal, self.rate, self.burst, self.clock())

    def idle_before(self) -> float:
        """Buckets untouched since this moment are full again (and can be forgotten)."""
        return self.clock() - self.burst / self.rate - 1.0
