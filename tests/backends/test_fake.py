"""FakeBackend and the backend registry (entry points, allow/deny lists, broken plugins)."""

from __future__ import annotations

import logging
import threading
from importlib.metadata import EntryPoint

import pytest

from kdiag.backends import Backend, BackendPool, NMIResult, Target, available_backends, get_backend
from kdiag.backends import base as backends_base
from kdiag.backends.fake import FakeBackend
from kdiag.backends.qmp import QMPBackend
from kdiag.errors import BackendTimeout, BackendUnavailable, NMINotSupported


def test_fake_records_calls_and_answers_per_target():
    fake = FakeBackend()
    assert isinstance(fake, Backend)
    running = Target("i-0123456789abcdef0")
    paused = Target("i-0123456789abcdef1", {"state": "paused"})
    assert fake.state(running) == "running"
    assert fake.state(paused) == "paused"
    assert fake.supports_nmi(running)
    assert not fake.supports_nmi(Target("i-0123456789abcdef2", arch="arm64"))
    assert not fake.supports_nmi(Target("i-0123456789abcdef2", {"supports_nmi": False}))
    result = fake.send_nmi(running)
    assert isinstance(result, NMIResult)
    assert result.instance_id == running.instance_id
    assert fake.sent == [running.instance_id]
    assert [c.verb for c in fake.calls] == [
        "state",
        "state",
        "supports_nmi",
        "supports_nmi",
        "supports_nmi",
        "send_nmi",
    ]


@pytest.mark.parametrize(
    ("fail", "exc"),
    [
        ("timeout", BackendTimeout),
        ("unavailable", BackendUnavailable),
        ("unsupported", NMINotSupported),
    ],
)
def test_fake_failures(fail, exc):
    fake = FakeBackend()
    with pytest.raises(exc):
        fake.send_nmi(Target("i-0123456789abcdef0", {"fail": fail}))
    assert fake.sent == []
    with pytest.raises(exc):
        FakeBackend(fail=fail).send_nmi(Target("i-0123456789abcdef0"))


def test_fake_record_file_counts_deliveries_across_threads(tmp_path):
    record = tmp_path / "nmis"
    target = Target("i-0123456789abcdef0", {"record": str(record)})
    with FakeBackend() as fake:
        threads = [
            threading.Thread(target=lambda: [fake.send_nmi(target) for _ in range(50)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert fake.closed
    assert len(fake.sent) == 200
    assert len(record.read_text().splitlines()) == 200
    assert (record.stat().st_mode & 0o777) == 0o600


def test_registry_loads_builtins_from_entry_points():
    assert {"fake", "qmp"} <= set(available_backends())
    assert isinstance(get_backend("fake"), FakeBackend)
    qmp = get_backend("qmp")
    assert isinstance(qmp, QMPBackend)
    qmp.close()
    with pytest.raises(BackendUnavailable, match="no backend named 'nope'"):
        get_backend("nope")


def test_allow_and_deny_lists(monkeypatch):
    monkeypatch.setenv("KDIAG_BACKENDS", "fake")
    assert available_backends() == ["fake"]
    with pytest.raises(BackendUnavailable, match="disabled"):
        get_backend("qmp")
    monkeypatch.delenv("KDIAG_BACKENDS")
    monkeypatch.setenv("KDIAG_DISABLE_BACKENDS", "fake, other")
    assert "fake" not in available_backends()
    with pytest.raises(BackendUnavailable, match="disabled"):
        get_backend("fake")


def test_broken_plugin_is_logged_and_skipped(monkeypatch, caplog):
    real = backends_base._entry_points

    def with_broken():
        found = real()
        found["broken"] = EntryPoint(
            "broken", "kdiag.no_such_module:Backend", backends_base.ENTRY_POINT_GROUP
        )
        return found

    monkeypatch.setattr(backends_base, "_entry_points", with_broken)
    with caplog.at_level(logging.ERROR, logger="kdiag.backends"):
        with pytest.raises(BackendUnavailable, match="failed to load"):
            get_backend("broken")
        assert isinstance(get_backend("fake"), FakeBackend)
    assert "broken" in caplog.text


def test_pool_shares_and_closes():
    pinned = FakeBackend()
    pool = BackendPool({"fake": pinned})
    assert pool["fake"] is pinned
    qmp = pool["qmp"]
    assert pool["qmp"] is qmp
    assert sorted(pool) == ["fake", "qmp"]
    pool.close()
    assert pinned.closed
