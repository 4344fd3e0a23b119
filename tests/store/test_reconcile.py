"""Reconciliation: rows left ``pending`` by a crash become ``unknown`` once they are older
than any request can stay in flight; younger ones (another replica's request in flight)
are left alone."""

import datetime as dt
import inspect
import typing

import pytest

from kdiag.backends import TargetSettings, available_backends, get_backend
from kdiag.cli.serve import serve
from kdiag.store import AuditEntry
from kdiag.store.audit import MAX_BACKEND_TIMEOUT, PENDING_STALE_AFTER
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir", "store")

_OLD = dt.timedelta(seconds=PENDING_STALE_AFTER + 60)


def _entry(outcome: str, age: dt.timedelta = _OLD) -> AuditEntry:
    return AuditEntry(
        action="SendDiagnosticInterrupt",
        outcome=outcome,
        time=dt.datetime.now(dt.UTC) - age,
        instance_id="i-0123456789abcdef0",
    )


def test_only_old_pending_rows_become_unknown(store):
    sent = store.start_audit(_entry(""))
    store.finish_audit(sent, outcome="sent", message="NMI recorded")
    failed = store.record_audit(_entry("failed"))
    crashed = [store.start_audit(_entry("")), store.start_audit(_entry(""))]
    # another replica's request, in flight right now, and one near the bound
    in_flight = store.start_audit(_entry("", dt.timedelta(0)))
    near = store.start_audit(_entry("", dt.timedelta(seconds=PENDING_STALE_AFTER - 60)))
    assert store.reconcile_pending() == crashed
    by_id = {r.id: r for r in store.audit_rows()}
    assert by_id[sent].outcome == "sent"
    assert by_id[sent].message == "NMI recorded"
    assert by_id[failed].outcome == "failed"
    assert by_id[in_flight].outcome == "pending"
    assert by_id[near].outcome == "pending"
    for row_id in crashed:
        row = by_id[row_id]
        assert (row.outcome, row.error_code) == ("unknown", "DeliveryUnconfirmed")
        assert "may or may not have been delivered" in (row.message or "")
    assert store.reconcile_pending() == []  # idempotent
    # the replica finishes its request: its row is its own, not reconciled
    store.finish_audit(in_flight, outcome="sent")
    # a later sweep (time has passed) takes the one that really was left behind
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    assert store.reconcile_pending(now=later) == [near]
    assert {r.id: r.outcome for r in store.audit_rows()}[in_flight] == "sent"


def test_older_than_zero_takes_every_pending_row(store):
    rows = [store.start_audit(_entry("", dt.timedelta(seconds=1))) for _ in range(3)]
    assert store.reconcile_pending(older_than=0) == rows
    with pytest.raises(ValueError, match="negative"):
        store.reconcile_pending(older_than=-1)


def test_stale_bound_covers_every_backend_timeout():
    """Oracle: the bound is read from every registered backend's own settings class (its
    ``MAX_TIMEOUT``, which ``TargetSettings`` enforces), not from the constant."""
    limits = {}
    for name in available_backends():
        with get_backend(name) as backend:
            settings = typing.get_type_hints(backend.parse_target)["return"]
        assert issubclass(settings, TargetSettings), name
        assert settings.__post_init__ is TargetSettings.__post_init__, f"{name} skips the bound"
        limits[name] = settings.MAX_TIMEOUT
    assert {"qmp", "libvirt", "redfish", "ipmi", "aws", "openstack"} <= set(limits), limits
    assert max(limits.values()) == MAX_BACKEND_TIMEOUT, limits
    assert PENDING_STALE_AFTER >= 2 * MAX_BACKEND_TIMEOUT + 60
    # kdiag serve's --reconcile-after default is the same bound
    default = inspect.signature(serve).parameters["reconcile_after"].default
    assert default == PENDING_STALE_AFTER
