"""The serving process's periodic sweep reconciles a row left pending once it is stale,
and leaves a fresh one (another replica's request in flight) alone."""

import datetime as dt
import time

from kdiag.service.sweep import PendingSweeper
from kdiag.store import AuditEntry
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir", "store")


def _pending(store, age: float) -> int:
    return store.start_audit(
        AuditEntry(
            action="SendDiagnosticInterrupt",
            outcome="",
            time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age),
            instance_id="i-0123456789abcdef0",
        )
    )


def _outcomes(store) -> dict[int, str]:
    return {r.id: r.outcome for r in store.audit_rows()}


def test_sweep_takes_rows_as_they_become_stale(store):
    stale = _pending(store, 30)
    fresh = _pending(store, 0)
    born = time.monotonic()
    # 6 s: the fresh row must still be within the bound when the stale one is seen taken;
    # with 2 s a loaded machine could get there only after the fresh row was stale too
    sweeper = PendingSweeper(store, older_than=6.0, interval=0.2).start()
    try:
        deadline = time.monotonic() + 60
        while _outcomes(store)[stale] != "unknown":
            assert time.monotonic() < deadline, "the sweep never reconciled the stale row"
            time.sleep(0.05)
        # still within the bound
        assert _outcomes(store)[fresh] == "pending", f"{time.monotonic() - born:.1f} s old"
        while _outcomes(store)[fresh] != "unknown":  # ... until it is not
            assert time.monotonic() < deadline, "the sweep never took the row once stale"
            time.sleep(0.05)
    finally:
        sweeper.stop()
    (row,) = [r for r in store.audit_rows() if r.id == fresh]
    assert row.error_code == "DeliveryUnconfirmed"
    assert sweeper.sweep() == []  # nothing left; idempotent


def test_sweep_survives_a_failing_store():
    class Broken:
        def reconcile_pending(self, *, older_than: float = 0) -> list[int]:
            raise OSError("database gone")

    assert PendingSweeper(Broken(), older_than=1).sweep() == []
