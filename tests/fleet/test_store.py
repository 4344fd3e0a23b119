"""Fleet runs in the store (migration 0005), on SQLite and PostgreSQL: recorded whole,
read back per run and per host, scoped to one account, bounded."""

from __future__ import annotations

import datetime as dt

import pytest

from kdiag.errors import ConfigError, NoSuchEntity
from kdiag.store import Store
from kdiag.store.fleet import (
    FleetHost,
    FleetRun,
    fleet_hosts,
    latest_hosts,
    list_fleet_runs,
    record_fleet_run,
)

T0 = dt.datetime(2026, 12, 6, 20, 0, tzinfo=dt.UTC)


def _run(account: str, failed: int = 1) -> FleetRun:
    return FleetRun(
        account_id=account,
        kind="doctor",
        inventory="/srv/inv.ini",
        purpose="nmi",
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=9),
        hosts=2,
        failed=failed,
        limit_pattern="web*",
    )


def _hosts(when: dt.datetime, web1: str = "fail") -> list[FleetHost]:
    return [
        FleetHost(
            "web1",
            web1,
            when,
            failing=("unknown-nmi-panic",) if web1 == "fail" else (),
            checks=({"id": "unknown-nmi-panic", "status": web1, "evidence": "0", "fix": ""},),
            facts={"schema": 1, "kernel_release": "6.1.0"},
        ),
        FleetHost("web2", "unreachable", when, message="Connection refused"),
    ]


def test_run_and_hosts_round_trip(store: Store) -> None:
    acct = store.default_account().id
    run, hosts = record_fleet_run(store, _run(acct), _hosts(T0))
    assert run.id is not None
    assert all(h.run_id == run.id for h in hosts)
    [listed] = list_fleet_runs(store)
    assert listed == run
    back = fleet_hosts(store, run.id)
    assert [h.host for h in back] == ["web1", "web2"]
    assert back[0].failing == ("unknown-nmi-panic",)
    assert back[0].facts is not None
    assert back[0].facts["kernel_release"] == "6.1.0"
    assert back[1].status == "unreachable"
    assert back[1].message == "Connection refused"
    assert back[1].facts is None


def test_latest_is_each_hosts_newest_answer(store: Store) -> None:
    acct = store.default_account().id
    record_fleet_run(store, _run(acct), _hosts(T0))
    later = T0 + dt.timedelta(hours=1)
    record_fleet_run(store, _run(acct, failed=0), _hosts(later, web1="pass"))
    latest = {h.host: h for h in latest_hosts(store)}
    assert latest["web1"].status == "pass"
    assert latest["web1"].answered_at == later


def test_accounts_do_not_see_each_other(store: Store) -> None:
    mine = store.default_account().id
    other = store.create_account("other").id
    run, _ = record_fleet_run(store, _run(other), _hosts(T0))
    assert run.id is not None
    assert list_fleet_runs(store, account_id=mine) == []
    assert fleet_hosts(store, run.id, account_id=mine) == []
    assert latest_hosts(store, account_id=mine) == []
    assert len(fleet_hosts(store, run.id, account_id=other)) == 2
    with pytest.raises(NoSuchEntity):
        list_fleet_runs(store, account_id="999999999999")


def test_bad_records_are_refused_and_big_ones_bounded(store: Store) -> None:
    acct = store.default_account().id
    with pytest.raises(ConfigError):
        record_fleet_run(store, _run(acct), [FleetHost("h", "maybe", T0)])
    with pytest.raises(ConfigError):
        record_fleet_run(store, _run(acct), [FleetHost("h", "pass", T0.replace(tzinfo=None))])
    huge = FleetHost(
        "h" * 1000,
        "error",
        T0,
        facts={"blob": "x" * 2_000_000},
        message="m" * 1_000_000,
    )
    run, _ = record_fleet_run(store, _run(acct), [huge])
    assert run.id is not None
    [back] = fleet_hosts(store, run.id)
    assert len(back.host) == 255
    assert back.facts == {"truncated": True, "bytes": pytest.approx(2_000_014, abs=50)}
    assert back.message is not None
    assert len(back.message) == 2048
    with pytest.raises(ConfigError):
        list_fleet_runs(store, limit=0)
