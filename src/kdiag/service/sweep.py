"""The periodic reconciliation sweep of a serving process.

Start-up reconciles only ``pending`` rows older than any request can stay in flight
(:data:`kdiag.store.audit.PENDING_STALE_AFTER`): younger ones may belong to another
replica's request.  A row left by a crash just before a restart is therefore reconciled
later, by this sweep, which every serving process runs every :data:`SWEEP_INTERVAL`
seconds (idempotent: each row changes once, whichever replica gets it).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol, Self

__all__ = ("SWEEP_INTERVAL", "PendingSweeper")

log = logging.getLogger("kdiag.service")

#: Seconds between two sweeps of one serving process.
SWEEP_INTERVAL = 60.0


class _Reconciles(Protocol):
    def reconcile_pending(self, *, older_than: float = ...) -> list[int]: ...


class PendingSweeper:
    """A daemon thread calling ``store.reconcile_pending(older_than=...)`` every
    ``interval`` seconds until :meth:`stop`; failures are logged, never raised."""

    def __init__(self, store: _Reconciles, *, older_than: float, interval: float = SWEEP_INTERVAL):
        self._store, self._older_than, self._interval = store, older_than, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kdiag-sweep", daemon=True)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.sweep()

    def sweep(self) -> list[int]:
        """One sweep now; the ids it marked ``unknown``."""
        try:
            ids = self._store.reconcile_pending(older_than=self._older_than)
        except Exception:
            log.exception("could not reconcile pending audit rows")
            return []
        if ids:
            log.warning(
                "%d interrupt(s) pending for over %g s marked 'unknown' (delivery "
                "unconfirmed; audit rows %s)",
                len(ids),
                self._older_than,
                ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else ""),
            )
        return ids

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(10)
