"""Start-up reconciliation: rows left ``pending`` by a crash become ``unknown``."""

import datetime as dt

from kdiag.store import AuditEntry
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir", "store")


def _entry(outcome: str) -> AuditEntry:
    return AuditEntry(
        action="SendDiagnosticInterrupt",
        outcome=outcome,
        time=dt.datetime.now(dt.UTC),
        instance_id="i-0123456789abcdef0",
    )


def test_only_pending_rows_become_unknown(store):
    sent = store.start_audit(_entry(""))
    store.finish_audit(sent, outcome="sent", message="NMI recorded")
    failed = store.record_audit(_entry("failed"))
    crashed = [store.start_audit(_entry("")), store.start_audit(_entry(""))]
    assert store.reconcile_pending() == crashed
    by_id = {r.id: r for r in store.audit_rows()}
    assert by_id[sent].outcome == "sent"
    assert by_id[sent].message == "NMI recorded"
    assert by_id[failed].outcome == "failed"
    for row_id in crashed:
        row = by_id[row_id]
        assert (row.outcome, row.error_code) == ("unknown", "DeliveryUnconfirmed")
        assert "may or may not have been delivered" in (row.message or "")
    assert store.reconcile_pending() == []  # idempotent
