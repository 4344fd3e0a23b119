"""``kdiag fleet drill``: drills rolled over an inventory through a real kdiag API on loopback
(SigV4, policy, audit), the fake backend standing in for four machines that write real
fixture dumps, or nothing.  The roll must stop after the first batch with a failure, with
that failure's diagnosis, and never touch the hosts after it."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdiag.backends.base import BackendPool
from kdiag.backends.fake import FakeBackend
from kdiag.cli.main import run
from kdiag.drill import DrillLimits, history, setup
from kdiag.fleet.drill import _phases, fleet_drill
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import Store
from kdiag.store.fleet import fleet_hosts
from tests.conftest import fixtures_root

ANY_TIME = DrillLimits(quiet=2, settle=1, hang=1, poll=0.05, stable=0.5, clock_skew=10.0**10)
HOSTS = ("web-1", "web-2", "web-3", "web-4", "web-5")


class Machines:
    """The fake backend's NMI handler: the machine named by the target writes a dump into
    its own directory a moment later, unless it is broken."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broken: set[str] = set()
        self.nmis: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, target: Any) -> None:
        name = target.address
        with self.lock:
            self.nmis[name] = self.nmis.get(name, 0) + 1
            n = self.nmis[name]
        if name not in self.broken:
            threading.Timer(0.3, self._write, (name, n)).start()

    def _write(self, name: str, n: int) -> None:
        out = self.root / name / f"127.0.0.1-{n}" / "vmcore"
        out.parent.mkdir(parents=True)
        shutil.copyfile(fixtures_root() / "nmi-zlib" / "vmcore", out)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    machines = Machines(tmp_path / "crash")
    store = Store.open(f"sqlite:///{tmp_path}/kdiag.db", key_file=tmp_path / "kdiag.key")
    ctx = ServiceContext(store, backends=BackendPool({"fake": FakeBackend(handler=machines)}))
    hostvars: dict[str, dict[str, Any]] = {}
    try:
        with ServerThread(create_app(ctx)) as server:
            for host in HOSTS:
                (tmp_path / "crash" / host).mkdir(parents=True)
                inst = store.add_instance(
                    backend="fake", target={"address": host}, tags={"Name": host}
                )
                setup(store, inst)
                hostvars[host] = {"kdiag_dump_dir": str(tmp_path / "crash" / host)}
            yield {"store": store, "url": server.url, "machines": machines, "hv": hostvars}
    finally:
        ctx.close()
        store.close()


def test_roll_stops_after_the_first_failing_batch(fleet: dict[str, Any]) -> None:
    machines: Machines = fleet["machines"]
    machines.broken.add("web-3")
    seen: list[str] = []
    report = fleet_drill(
        fleet["store"],
        "inventory.ini",
        endpoint=fleet["url"],
        canary=1,
        batch=2,
        timeout=30,
        limits=ANY_TIME,
        hostvars=fleet["hv"],
        progress=lambda o: seen.append(o.host),
    )
    got = {o.host: (o.phase, o.status) for o in report.hosts}
    assert got == {
        "web-1": ("canary", "pass"),
        "web-2": ("batch 1", "pass"),
        "web-3": ("batch 1", "fail"),
        "web-4": ("-", "not-drilled"),
        "web-5": ("-", "not-drilled"),
    }
    assert sorted(seen) == ["web-1", "web-2", "web-3"]
    assert report.failed
    assert report.stopped_at is not None
    assert report.stopped_at.host == "web-3"
    assert report.stopped_at.code not in (None, "ok")
    assert report.stopped_at.summary
    # the hosts after the failure were never sent an NMI
    assert set(machines.nmis) == {"web-1", "web-2", "web-3"}
    # every drill recorded; the roll is a fleet run
    store: Store = fleet["store"]
    drilled = {o.instance_id for o in report.hosts if o.status != "not-drilled"}
    assert {r.instance_id for r in history(store)} == drilled
    assert report.run_id is not None
    rows = {h.host: h.status for h in fleet_hosts(store, report.run_id)}
    assert rows == {
        "web-1": "pass",
        "web-2": "pass",
        "web-3": "fail",
        "web-4": "error",
        "web-5": "error",
    }


def test_a_healthy_fleet_passes_in_batches(fleet: dict[str, Any]) -> None:
    report = fleet_drill(
        fleet["store"],
        "inventory.ini",
        endpoint=fleet["url"],
        canary=1,
        batch=4,
        timeout=30,
        limits=ANY_TIME,
        hostvars=fleet["hv"],
    )
    assert not report.failed, report.to_json()
    assert [o.phase for o in report.hosts] == ["canary", *["batch 1"] * 4]
    assert all(o.status == "pass" and o.drill_id for o in report.hosts)


def test_phases_never_exceed_the_batch() -> None:
    hosts = [f"h{i}" for i in range(7)]
    assert _phases(hosts, 1, 3) == [
        ("canary", ["h0"]),
        ("batch 1", ["h1", "h2", "h3"]),
        ("batch 2", ["h4", "h5", "h6"]),
    ]
    assert _phases(hosts, 0, 10) == [("batch 1", hosts)]


def test_hosts_that_are_not_instances_are_refused(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = tmp_path / "inv.ini"
    inv.write_text("[all]\nstray-1\nstray-2\n")
    assert run(["fleet", "drill", "-i", str(inv), "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "kdiag instances import" in capsys.readouterr().err
    assert run(["fleet", "drill", "-i", str(inv), "--batch", "0"]) == 2
