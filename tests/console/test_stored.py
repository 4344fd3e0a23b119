"""What the console reads from the store: readiness from the fleet's runs, matched to
instances by tag, and drill history, scoped to one account (SQLite and PostgreSQL)."""

import datetime as dt

from kdiag.console.stored import StoreSources
from kdiag.store.drills import DrillRecord, StepTiming, record_drill
from kdiag.store.fleet import FleetHost, FleetRun, record_fleet_run

NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)
CRASH = {"id": "crashkernel-reserved", "status": "fail", "evidence": "none", "fix": "add it"}
SYSRQ = {"id": "sysrq", "status": "warn", "evidence": "0", "fix": "sysctl kernel.sysrq=1"}
OK = {"id": "kdump-supported", "status": "pass", "evidence": "yes", "fix": ""}


def _fleet(store, account, hosts):
    run = FleetRun(account, "doctor", "inv", "nmi", NOW, NOW, len(hosts), 0)
    record_fleet_run(store, run, hosts)


def test_readiness_matches_hosts_by_tag_and_keeps_accounts_apart(store):
    account = store.default_account().id
    other = store.create_account("other", account_id="999988887777").id
    a = store.add_instance(backend="fake", target={}, tags={"kdiag:host": "web1", "Name": "x"})
    b = store.add_instance(backend="fake", target={}, tags={"Name": "db1"})
    c = store.add_instance(backend="fake", target={})
    d = store.add_instance(backend="fake", target={}, tags={"Name": "web1"}, account_id=other)
    _fleet(
        store,
        account,
        [
            FleetHost("web1", "pass", NOW, (), (OK,)),
            FleetHost("db1", "fail", NOW, ("crashkernel-reserved",), (OK, SYSRQ, CRASH)),
            FleetHost("x", "unreachable", NOW, message="ssh: connection refused"),
        ],
    )
    later = NOW + dt.timedelta(hours=1)  # the newest answer of a host wins
    _fleet(store, account, [FleetHost(c.id, "error", later, message="collector failed")])
    sources = StoreSources(store)
    found = sources.readiness(account, [a.id, b.id, c.id, d.id])
    assert found[a.id].verdict == "ready"  # kdiag:host before Name
    assert found[a.id].failing == ()
    assert found[b.id].verdict == "not-ready"
    assert [(f.id, f.status) for f in found[b.id].failing] == [
        ("crashkernel-reserved", "fail"),
        ("sysrq", "warn"),
    ]
    assert found[b.id].failing[0].fix == "add it"
    assert found[c.id].verdict == "unknown"
    assert found[c.id].failing[0].evidence == "collector failed"
    assert d.id not in found
    assert sources.readiness(other, [d.id]) == {}


def test_drills_newest_first_and_scoped(store):
    account = store.default_account().id
    i = store.add_instance(backend="fake", target={})
    for n, verdict in enumerate(("pass", "fail", "pass")):
        start = NOW + dt.timedelta(hours=n)
        record_drill(
            store,
            DrillRecord(
                account,
                i.id,
                start,
                start + dt.timedelta(seconds=30),
                verdict,
                "ok" if verdict == "pass" else "nmi-ignored",
                "fine" if verdict == "pass" else "the NMI was ignored",
                (
                    StepTiming("send", "pass", 0.5),
                    StepTiming("panic", "pass" if verdict == "pass" else "fail", 2.0),
                    StepTiming("reboot", "skipped", None),
                ),
            ),
        )
    sources = StoreSources(store)
    drills = sources.drills(account, i.id, 10)
    assert [d.verdict for d in drills] == ["passed", "failed", "passed"]
    failed = drills[1]
    assert failed.diagnosis == "nmi-ignored: the NMI was ignored"
    assert [(s.name, s.start, s.end, s.ok) for s in failed.steps] == [
        ("send", 0.0, 0.5, True),
        ("panic", 0.5, 2.5, False),
    ]
    assert sources.last_drills(account, [i.id])[i.id].started_at == NOW + dt.timedelta(hours=2)
    assert sources.drills("999988887777", i.id, 10) == []
