"""SQLite: the audit intent is committed with synchronous=FULL (fsynced), other writes not;
the WAL is checkpointed by the store's thread or by SQLite, as asked.

Everything goes through the Store's public methods; what SQLite was told is read from
SQLAlchemy's engine-wide event hook (registered on the Engine class, so no private
attribute of the store is touched)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event

from kdiag.store import AuditEntry, Store

__all__ = ()


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the block runs."""
    sent: list[str] = []

    def hook(_conn, _cursor, sql, *_rest) -> None:
        sent.append(sql)

    event.listen(Engine, "before_cursor_execute", hook)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", hook)


def test_only_the_intent_commit_is_fsynced(tmp_path, monkeypatch):
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store, statements_sent() as sent:
        entry = AuditEntry(action="SendDiagnosticInterrupt", outcome="", request_id="r1")
        audit_id = store.start_audit(entry)
        store.finish_audit(audit_id, outcome="sent")
        store.record_audit(AuditEntry(action="DescribeInstances", outcome="ok", request_id="r2"))
        start = store.start_audit(AuditEntry(action="SendDiagnosticInterrupt", outcome=""))
        pragmas_and_writes = [
            " ".join(sql.split()[:3])
            for sql in sent
            if sql.startswith(("PRAGMA synchronous", "INSERT", "UPDATE"))
        ]
        assert pragmas_and_writes == [
            "PRAGMA synchronous=FULL",
            "INSERT INTO audit_log",
            "PRAGMA synchronous=NORMAL",
            "UPDATE audit_log SET",
            "INSERT INTO audit_log",
            "PRAGMA synchronous=FULL",
            "INSERT INTO audit_log",
        ]
        rows = store.audit_rows()
        assert [r.outcome for r in rows] == ["sent", "ok", "pending"]
        assert rows[-1].id == start


def test_background_checkpoints_move_the_wal_into_the_database(tmp_path, monkeypatch):
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with Store.open(url, checkpoint_every=3600) as store:  # the thread will not run here
        for n in range(300):  # well past 1000 WAL pages: no write checkpoints on its own
            store.record_audit(AuditEntry(action="A", outcome="ok", request_id=f"r{n}"))
        frames, done = store.checkpoint() or (0, 0)
        assert frames > 1000
        assert done == frames
        assert len(store.audit_rows()) == 300
    with Store.open(url) as store:  # SQLite's own autocheckpoint (1000 pages) is back
        for n in range(300):
            store.record_audit(AuditEntry(action="A", outcome="ok", request_id=f"s{n}"))
        frames, done = store.checkpoint() or (0, 0)
        assert frames <= 1000
        assert len(store.audit_rows()) == 600


def test_the_checkpoint_thread_runs_and_stops(tmp_path, monkeypatch):
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
