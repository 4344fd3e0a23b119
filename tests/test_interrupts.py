"""send_diagnostic_interrupt: authorize → DryRun → checks → intent → deliver → outcome,
with an audit row for every call, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from kdiag.backends import BackendPool, Target
from kdiag.backends.fake import FakeBackend
from kdiag.errors import (
    AccessDenied,
    BackendTimeout,
    BackendUnavailable,
    DeliveryUnconfirmed,
    IncorrectState,
    InvalidInstanceIDMalformed,
    InvalidInstanceIDNotFound,
    NMINotSupported,
)
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir", "store")

ACTION = "ec2:SendDiagnosticInterrupt"


def _policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


class World:
    def __init__(self, store: Store, fake: FakeBackend):
        self.store = store
        self.fake = fake
        self.account = store.default_account().id
        self.alice = store.create_user("alice")
        self.key, _ = store.create_access_key("alice")
        # The policy AWS documents for this action, with real values, plus an owner condition.
        store.put_user_policy(
            "alice",
            "owner",
            _policy(
                {
                    "Effect": "Allow",
                    "Action": ACTION,
                    "Resource": f"arn:aws:ec2:us-east-1:{self.account}:instance/*",
                    "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
                }
            ),
        )
        mine = {"Owner": "alice"}
        self.running = store.add_instance(backend="fake", target={}, tags=mine)
        self.stopped = store.add_instance(backend="fake", target={}, tags=mine, state="stopped")
        self.paused = store.add_instance(backend="fake", target={"state": "paused"}, tags=mine)
        self.arm = store.add_instance(backend="fake", target={}, tags=mine, arch="arm64")
        self.flaky = store.add_instance(backend="fake", target={"fail": "timeout"}, tags=mine)
        self.bobs = store.add_instance(backend="fake", target={}, tags={"Owner": "bob"})
        self.caller = Caller(
            account_id=self.account,
            user_name="alice",
            user_id=self.alice.id,
            access_key_id=self.key.id,
            source_ip="127.0.0.1",
        )

    def send(self, instance_id: str, *, dry_run: bool = False, region: str = "us-east-1"):
        request = InterruptRequest(self.caller, instance_id, dry_run=dry_run, region=region)
        return request, send_diagnostic_interrupt(self.store, request, backends={"fake": self.fake})

    def raises(self, exc_type, instance_id: str, **kw):
        with pytest.raises(exc_type) as info:
            self.send(instance_id, **kw)
        return info.value

    def allow_all(self) -> None:
        self.store.put_user_policy(
            "alice", "all", _policy({"Effect": "Allow", "Action": ACTION, "Resource": "*"})
        )

    def only_row(self):
        rows = self.store.audit_rows()
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture
def world(store):
    return World(store, FakeBackend())


def test_allowed_sends_and_audits(world):
    request, result = world.send(world.running.id)
    assert result.outcome == "sent"
    assert result.request_id == request.request_id
    assert world.fake.sent == [world.running.id]
    row = world.only_row()
    assert row.id == result.audit_id
    assert (row.outcome, row.decision, row.error_code) == ("sent", "allow", None)
    assert row.principal == f"arn:aws:iam::{world.account}:user/alice"
    assert (row.access_key_id, row.source_ip, row.instance_id) == (
        world.key.id,
        "127.0.0.1",
        world.running.id,
    )
    assert row.request_id == request.request_id
    assert row.backend == "fake"
    assert row.latency_ms is not None
    assert row.latency_ms >= 0
    assert row.dry_run is False
    assert "allow" in (row.reason or "")


def test_denied_by_resource(world):
    exc = world.raises(AccessDenied, world.bobs.id)
    assert exc.code == "UnauthorizedOperation"
    assert world.bobs.arn in str(exc)
    assert world.fake.calls == []
    row = world.only_row()
    assert (row.outcome, row.decision, row.error_code) == (
        "denied",
        "deny",
        "UnauthorizedOperation",
    )
    assert row.latency_ms is not None


def test_denied_in_another_region(world):
    # The ARN carries the request's region; the policy only allows us-east-1.
    world.raises(AccessDenied, world.running.id, region="eu-west-1")
    assert world.fake.calls == []


def test_explicit_deny_beats_allow(world):
    world.store.put_user_policy(
        "alice",
        "deny-arm",
        _policy({"Effect": "Deny", "Action": "ec2:*", "Resource": world.running.arn}),
    )
    world.raises(AccessDenied, world.running.id)
    assert world.fake.calls == []
    row = world.only_row()
    assert row.decision == "deny"
    assert "deny" in (row.reason or "").lower()


def test_source_ip_condition_reaches_the_policy(world):
    world.store.put_user_policy(
        "alice",
        "lan-only",
        _policy(
            {
                "Effect": "Deny",
                "Action": ACTION,
                "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            }
        ),
    )
    world.raises(AccessDenied, world.running.id)


def test_dry_run_allowed(world):
    _, result = world.send(world.running.id, dry_run=True)
    assert result.outcome == "dry-run"
    assert world.fake.calls == []
    row = world.only_row()
    assert (row.outcome, row.decision, row.dry_run) == ("dry-run", "allow", True)


def test_dry_run_denied(world):
    world.raises(AccessDenied, world.bobs.id, dry_run=True)
    row = world.only_row()
    assert (row.outcome, row.decision, row.dry_run) == ("denied", "deny", True)


def test_dry_run_on_unknown_id_answers_dry_run(world):
    # Reference §1.5: authorization, then DryRun, then existence.
    world.allow_all()
    _, result = world.send("i-0000000000000000f", dry_run=True)
    assert result.outcome == "dry-run"


def test_not_found_after_authorization(world):
    world.allow_all()
    exc = world.raises(InvalidInstanceIDNotFound, "i-0123456789abcdef0")
    assert exc.code == "InvalidInstanceID.NotFound"
    row = world.only_row()
    assert (row.outcome, row.decision, row.error_code) == (
        "rejected",
        "allow",
        "InvalidInstanceID.NotFound",
    )


def test_not_found_is_not_revealed_to_the_unauthorized(world):
    # An unknown instance is evaluated with no tags: the Owner condition cannot match.
    world.raises(AccessDenied, "i-0123456789abcdef0")
    world.store.delete_user_policy("alice", "owner")
    world.raises(AccessDenied, world.running.id)


def test_instance_in_another_region_is_not_found(world):
    world.store.put_user_policy(
        "alice", "all", _policy({"Effect": "Allow", "Action": ACTION, "Resource": "*"})
    )
    world.raises(InvalidInstanceIDNotFound, world.running.id, region="eu-west-1")


def test_malformed_id(world):
    exc = world.raises(InvalidInstanceIDMalformed, "i-nothex")
    assert exc.code == "InvalidInstanceID.Malformed"
    row = world.only_row()
    assert (row.outcome, row.decision, row.error_code) == (
        "rejected",
        None,
        "InvalidInstanceID.Malformed",
    )
    assert row.instance_id == "i-nothex"


def test_stopped_instance(world):
    exc = world.raises(IncorrectState, world.stopped.id)
    assert exc.code == "IncorrectInstanceState"
    assert world.fake.sent == []
    assert world.only_row().error_code == "IncorrectInstanceState"


def test_backend_reports_not_running(world):
    exc = world.raises(IncorrectState, world.paused.id)
    assert "paused" in str(exc)
    assert world.fake.sent == []


def test_arm64_is_unsupported(world):
    exc = world.raises(NMINotSupported, world.arm.id)
    assert exc.code == "UnsupportedOperation"
    assert world.fake.sent == []
    row = world.only_row()
    assert (row.outcome, row.error_code) == ("rejected", "UnsupportedOperation")


def test_backend_failure_is_recorded(world):
    world.raises(BackendTimeout, world.flaky.id)
    row = world.only_row()
    assert (row.outcome, row.decision, row.error_code) == ("failed", "allow", "BackendTimeout")
    assert row.latency_ms is not None


def test_intent_is_committed_before_the_nmi(world, db_url):
    seen = []

    def inspect(target: Target) -> None:
        # A separate connection (a separate Store) must already see the intent row.
        with Store.open(db_url) as other:
            seen.extend((r.instance_id, r.outcome) for r in other.audit_rows())

    world.fake.handler = inspect
    world.send(world.running.id)
    assert seen == [(world.running.id, "pending")]
    assert world.only_row().outcome == "sent"


def test_handler_exception_is_unconfirmed_not_failed(world):
    """A backend that fails with something other than a BackendError cannot vouch that
    nothing went out: the row says unknown and the caller gets DeliveryUnconfirmed naming
    it, whose message keeps the exception's text inside."""

    def boom(target: Target) -> None:
        raise RuntimeError("hypervisor on fire at /secret/path")

    world.fake.handler = boom
    with pytest.raises(DeliveryUnconfirmed) as err:
        world.send(world.running.id)
    row = world.only_row()
    assert (row.outcome, row.error_code) == ("unknown", "InternalError")
    assert err.value.audit_id == row.id
    assert f"audit row {row.id}" in str(err.value)
    assert "/secret/path" not in str(err.value)


def test_backend_unconfirmed_is_recorded_unknown_and_names_the_row(world):
    def lost(target: Target) -> None:
        raise DeliveryUnconfirmed("link dropped after the command", target=target.instance_id)

    world.fake.handler = lost
    with pytest.raises(DeliveryUnconfirmed) as err:
        world.send(world.running.id)
    row = world.only_row()
    assert (row.outcome, row.error_code) == ("unknown", "DeliveryUnconfirmed")
    assert row.message == "link dropped after the command"
    assert err.value.audit_id == row.id
    assert err.value.http_status == 409


def test_failure_before_sending_stays_failed_and_retryable(world):
    """BackendUnavailable from a backend means nothing left: failed, the 503 kept."""

    def refused(target: Target) -> None:
        raise BackendUnavailable("cannot connect", target=target.instance_id)

    world.fake.handler = refused
    with pytest.raises(BackendUnavailable) as err:
        world.send(world.running.id)
    assert not isinstance(err.value, DeliveryUnconfirmed)
    assert world.only_row().outcome == "failed"
    assert world.fake.sent == []


class _NoOutcome(Store):
    def finish_audit(self, audit_id, **kwargs):
        raise OSError(30, "Read-only file system")


def test_outcome_write_failure_after_delivery_is_unconfirmed(world, db_url):
    """The NMI went out and the row cannot be completed: DeliveryUnconfirmed naming the
    row (left pending for start-up to reconcile), one delivery, never a retryable 500."""
    request = InterruptRequest(world.caller, world.running.id)
    with (
        _NoOutcome.open(db_url) as broken,
        pytest.raises(DeliveryUnconfirmed, match="outcome could not be recorded") as err,
    ):
        send_diagnostic_interrupt(broken, request, backends={"fake": world.fake})
    assert world.fake.sent == [world.running.id]
    row = world.only_row()
    assert row.outcome == "pending"
    assert err.value.audit_id == row.id
    assert world.store.reconcile_pending() == []  # fresh: it could still be in flight
    assert world.store.reconcile_pending(older_than=0) == [row.id]
    assert world.only_row().outcome == "unknown"


def test_default_backends_come_from_entry_points(world, tmp_path):
    record = tmp_path / "deliveries"
    inst = world.store.add_instance(
        backend="fake", target={"record": str(record)}, tags={"Owner": "alice"}
    )
    request = InterruptRequest(world.caller, inst.id)
    with BackendPool() as pool:
        send_diagnostic_interrupt(world.store, request, backends=pool)
        send_diagnostic_interrupt(
            world.store, InterruptRequest(world.caller, inst.id), backends=pool
        )
    lines = record.read_text().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(inst.id + " ") for line in lines)


_SENDER = """
import sys
from kdiag.backends.fake import FakeBackend
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store

url, instance_id, account, user_id = sys.argv[1:5]
store = Store.open(url)
caller = Caller(account, "alice", user_id, None, "127.0.0.1")
backends = {"fake": FakeBackend()}
print("ready", flush=True)
while True:
    send_diagnostic_interrupt(store, InterruptRequest(caller, instance_id), backends=backends)
"""


def test_sigkill_mid_load_loses_no_audit_row(world, db_url, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    record = tmp_path / "deliveries"
    inst = world.store.add_instance(
        backend="fake", target={"record": str(record)}, tags={"Owner": "alice"}
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _SENDER, db_url, inst.id, world.account, world.alice.id],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while (
            not record.exists() or len(record.read_text().splitlines()) < 50
        ) and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    delivered = len(record.read_text().splitlines())
    assert delivered >= 50
    rows = world.store.audit_rows(instance_id=inst.id)
    # Every NMI that went out has its row: sent, or pending if the kill fell in between.
    assert len(rows) >= delivered
    assert {r.outcome for r in rows} <= {"sent", "pending"}
    assert sum(r.outcome == "sent" for r in rows) <= delivered
    assert sum(r.outcome == "pending" for r in rows) <= 1
