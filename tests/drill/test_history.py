"""Drill history in the store (SQLite and PostgreSQL): recorded, listed newest first,
filtered by instance, account and time, bounded; and ``kdiag drill history``."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kdiag.cli.main import run
from kdiag.drill import DrillRecord, StepTiming, history
from kdiag.errors import ConfigError
from kdiag.store import Store
from kdiag.store.drills import record_drill

T0 = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
A = "i-0123456789abcdef0"
B = "i-0123456789abcdef1"


def _drill(account: str, instance: str, day: int, verdict: str = "pass") -> DrillRecord:
    start = T0 + dt.timedelta(days=day)
    return DrillRecord(
        account_id=account,
        instance_id=instance,
        started_at=start,
        finished_at=start + dt.timedelta(seconds=61.5),
        verdict=verdict,
        diagnosis="ok" if verdict == "pass" else "no-reboot-capture-hang",
        summary="the capture kernel started but never finished" if verdict == "fail" else "ok",
        steps=(
            StepTiming("readiness", "pass", 0.12),
            StepTiming("send", "pass", 0.4, "accepted"),
            StepTiming("panic", "pass", 1.5),
            StepTiming("reboot", "fail" if verdict == "fail" else "pass", 40.0),
            StepTiming("dump", "skipped", None),
        ),
        report={"verdict": verdict, "nested": {"x": [1, 2]}},
        dump_path=None if verdict == "fail" else f"/crash/{day}/vmcore",
    )


def test_record_and_list(store: Store) -> None:
    acct = store.default_account().id
    other = store.create_account("other").id
    saved = [
        record_drill(store, _drill(acct, A, 0)),
        record_drill(store, _drill(acct, A, 7, "fail")),
        record_drill(store, _drill(acct, B, 3)),
        record_drill(store, _drill(other, A, 9)),
    ]
    assert all(r.id is not None for r in saved)
    mine = history(store, A, account=acct)
    assert [r.started_at for r in mine] == [T0 + dt.timedelta(days=7), T0]
    latest = mine[0]
    assert (latest.verdict, latest.diagnosis) == ("fail", "no-reboot-capture-hang")
    assert [s.name for s in latest.steps] == ["readiness", "send", "panic", "reboot", "dump"]
    assert latest.steps[3] == StepTiming("reboot", "fail", 40.0, "")
    assert latest.steps[4].seconds is None
    assert latest.report["nested"] == {"x": [1, 2]}
    assert latest.seconds == pytest.approx(61.5)
    with pytest.raises(TypeError):
        latest.report["verdict"] = "pass"  # type: ignore[index]
    assert len(history(store)) == 4
    assert {r.account_id for r in history(store, account=other)} == {other}
    assert len(history(store, since=T0 + dt.timedelta(days=5))) == 2
    assert len(history(store, limit=1)) == 1
    assert json.loads(json.dumps(latest.to_json()))["steps"][1]["detail"] == "accepted"


def test_bad_records_and_queries_are_refused(store: Store) -> None:
    acct = store.default_account().id
    with pytest.raises(ConfigError):
        record_drill(store, _drill(acct, A, 0, verdict="maybe"))
    naive = _drill(acct, A, 0)
    object.__setattr__(naive, "started_at", naive.started_at.replace(tzinfo=None))
    with pytest.raises(ConfigError):
        record_drill(store, naive)
    with pytest.raises(ConfigError):
        history(store, limit=0)
    with pytest.raises(ConfigError):
        history(store, since=dt.datetime(2026, 1, 1))


def test_huge_fields_are_bounded(store: Store) -> None:
    acct = store.default_account().id
    big = _drill(acct, A, 0)
    object.__setattr__(big, "summary", "x" * 1_000_000)
    object.__setattr__(big, "report", {"console": ["y" * 1000] * 2000})
    rec = record_drill(store, big)
    (back,) = history(store, A)
    assert back.id == rec.id
    assert len(back.summary) <= 2048
    assert back.report == {"truncated": True, "bytes": back.report["bytes"]}


def test_cli_history(store: Store, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    acct = store.default_account().id
    record_drill(store, _drill(acct, A, 0))
    record_drill(store, _drill(acct, B, 1, "fail"))
    assert run(["drill", "history", "--db", db_url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["instance_id"] for d in doc["Drills"]] == [B, A]
    assert run(["drill", "history", A, "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert A in out
    assert "readiness=0.1" in out
    assert "dump=-" in out
    assert run(["drill", "history", "i-bad", "--db", db_url]) == 2
