"""SQLite: the audit intent is committed with synchronous=FULL (fsynced), other writes not."""

from __future__ import annotations

from sqlalchemy import event, text

from kdiag.store import AuditEntry, Store

__all__ = ()


def test_only_the_intent_commit_is_fsynced(tmp_path, monkeypatch):
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store:
        with store._durable_writer.begin() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        with store._writer.begin() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL

        statements: list[str] = []
        event.listen(
            store._engine,
            "before_cursor_execute",
            lambda _conn, _cursor, sql, *_rest: statements.append(sql),
        )
        entry = AuditEntry(action="SendDiagnosticInterrupt", outcome="", request_id="r1")
        audit_id = store.start_audit(entry)
        store.finish_audit(audit_id, outcome="sent")
        store.record_audit(AuditEntry(action="DescribeInstances", outcome="ok", request_id="r2"))
        pragmas_and_writes = [
            sql[:40] for sql in statements if sql.startswith(("PRAGMA", "INSERT", "UPDATE"))
        ]
        assert pragmas_and_writes[0] == "PRAGMA synchronous=FULL"
        assert pragmas_and_writes[1].startswith("INSERT INTO audit_log")
        assert pragmas_and_writes[2] == "PRAGMA synchronous=NORMAL"
        assert pragmas_and_writes[3].startswith("UPDATE audit_log")
        assert pragmas_and_writes[4].startswith("INSERT INTO audit_log")
        assert [r.outcome for r in store.audit_rows()] == ["sent", "ok"]
