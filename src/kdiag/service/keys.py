"""Access keys for the SigV4 verifier, remembered for a moment.

Every signed request needs its key's secret and owner.  :class:`KeyCache` asks the store
and remembers an active key for ``ttl`` seconds (so a deactivated or deleted key stops
working within that time); unknown keys are never remembered, so a new key works at once.
"""

from __future__ import annotations

import threading
import time

from kdiag.authz import Caller
from kdiag.store import Store

__all__ = ("KeyCache",)


class KeyCache:
    """Access key id → (secret, :class:`~kdiag.authz.Caller`); thread-safe and bounded."""

    def __init__(self, store: Store, *, ttl: float = 2.0, max_keys: int = 10_000) -> None:
        self._store = store
        self._ttl = ttl
        self._max = max_keys
        self._keys: dict[str, tuple[float, tuple[str, Caller]]] = {}
        self._lock = threading.Lock()

    def lookup(self, key_id: str) -> tuple[str, Caller] | None:
        """The secret of an active key and the caller it belongs to, or None."""
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._store.lookup_access_key(key_id)
        if found is None:
            with self._lock:
                self._keys.pop(key_id, None)
            return None
        key, user, secret = found
        result = (secret, Caller.of(user, access_key_id=key.id))
        if self._ttl > 0:
            with self._lock:
                if len(self._keys) >= self._max:
                    self._keys.clear()
                self._keys[key_id] = (now + self._ttl, result)
        return result
