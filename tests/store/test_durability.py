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


def test_background_checkpoints_move_the_wal_into_the_database(tmp_path, monkeypatch):
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with Store.open(url, checkpoint_every=3600) as store:  # the thread will not run here
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        for n in range(300):  # well past 1000 WAL pages: no write checkpoints on its own
            store.record_audit(AuditEntry(action="A", outcome="ok", request_id=f"r{n}"))
        frames, done = store.checkpoint() or (0, 0)
        assert frames > 1000
        assert done == frames
        assert len(store.audit_rows()) == 300
    with Store.open(url) as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert len(store.audit_rows()) == 300


def test_the_checkpoint_thread_runs_and_stops(tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    db = tmp_path / "k.db"
    with Store.open(f"sqlite:///{db}", checkpoint_every=0.05) as store:
        before = db.stat().st_size
        for n in range(300):
            store.record_audit(AuditEntry(action="A", outcome="ok", request_id=f"r{n}"))
        deadline = time.monotonic() + 30
        while db.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > before  # the rows reached the database file
    assert not [t for t in threading.enumerate() if t.name == "kdiag-checkpoint"]
