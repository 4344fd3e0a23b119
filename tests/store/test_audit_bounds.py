"""Audit rows are bounded at the store, on SQLite and PostgreSQL: no field of a row can be
made large by a caller, and a value wider than its column never makes PostgreSQL refuse the
row (which would lose the audit of that request)."""

from kdiag.store import AuditEntry
from kdiag.store.audit import MAX_AUDIT_TEXT


def test_every_text_field_is_clipped(store):
    big = "x" * 4_000_000
    entry = AuditEntry(
        action=big,
        outcome="rejected",
        request_id="r" * 100,
        principal=big,
        access_key_id=big,
        source_ip=big,
        instance_id=big,
        region=big,
        decision=big,
        reason=big,
        error_code=big,
        message=big,
        backend=big,
    )
    store.record_audit(entry)
    (row,) = store.audit_rows()
    assert len(row.message or "") == MAX_AUDIT_TEXT
    assert len(row.reason or "") == MAX_AUDIT_TEXT
    assert (len(row.action), len(row.principal or ""), len(row.source_ip or "")) == (64, 256, 64)
    assert (row.message or "").endswith("\u2026")


def test_finish_clips_the_message(store):
    entry = AuditEntry(action="SendDiagnosticInterrupt", outcome="pending", request_id="r1")
    audit_id = store.start_audit(entry)
    store.finish_audit(audit_id, outcome="failed", message="m" * 100_000)
    (row,) = store.audit_rows(request_id="r1")
    assert len(row.message or "") == MAX_AUDIT_TEXT
