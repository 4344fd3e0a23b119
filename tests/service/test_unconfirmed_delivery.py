"""Never two NMIs for one intent: once the NMI may have left, no answer invites a retry.

Attacked the way clients really retry: a real ``kdiag serve`` process on loopback, the QMP
backend talking over a real UNIX socket to a peer that takes ``inject-nmi`` and hangs up (or
never answers), and the real boto3 (its default retry configuration) and aws CLI (its
default retries).  The peer counts what it received: exactly one ``inject-nmi``.  A store
whose outcome write fails after a delivery, and a server SIGKILLed between intent and
outcome, are attacked too.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

from kdiag.backends.base import BackendPool
from kdiag.backends.fake import FakeBackend
from kdiag.service import ServiceContext, create_app
from kdiag.service.ratelimit import Throttle
from kdiag.service.server import ServerThread
from kdiag.store import Store
from tests.backends.qmp_peer import QMPPeer
from tests.peers.ports import free_port

from .conftest import REGION, allow

KDIAG = str(Path(sys.executable).with_name("kdiag"))
AWS = str(Path(sys.executable).with_name("aws"))


class Deployment:
    """A state directory with one user allowed everything, and `kdiag serve` started on it."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.db = f"sqlite:///{state_dir}/kdiag.db"
        self.env = {
            **os.environ,
            "KDIAG_KEY_FILE": str(state_dir / "kdiag.key"),
            "KDIAG_STATE_DIR": str(state_dir),
        }
        with self.store() as store:
            user = store.create_user("operator")
            store.put_user_policy(user, "all", json.dumps(allow()))
            key, self.secret = store.create_access_key(user)
            self.key_id = key.id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None

    def store(self) -> Store:
        return Store.open(self.db, key_file=self.state_dir / "kdiag.key")

    def add_qmp_instance(self, sock: Path, timeout: float = 5) -> str:
        with self.store() as store:
            target = {"address": str(sock), "timeout": timeout}
            return store.add_instance(backend="qmp", target=target).id

    def start(self, *extra: str) -> str:
        """Start `kdiag serve`; return what it wrote on stderr before it answered."""
        self.server = subprocess.Popen(
            [KDIAG, "serve", "--port", str(self.port), "--db", self.db, *extra],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        banner = b""
        assert self.server.stderr is not None
        while b"kdiag serve: http://" not in banner:
            line = self.server.stderr.readline()
            if not line:
                pytest.fail(f"kdiag serve exited: {banner.decode()}")
            banner += line
        for _ in range(300):
            try:
                if httpx.get(self.url + "/v1/openapi.json", timeout=1).status_code == 200:
                    return banner.decode()
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail("kdiag serve did not come up")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(sig)
            self.server.wait(120)  # a graceful stop on a loaded machine
        if self.server is not None and self.server.stderr is not None:
            self.server.stderr.close()
        self.server = None

    def boto3(self, **config):
        """A real boto3 EC2 client; no retry configuration unless given: the default."""
        return boto3.session.Session().client(
            "ec2",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            config=Config(**config) if config else None,
        )


@pytest.fixture
def deployment(tmp_path):
    dep = Deployment(tmp_path)
    try:
        yield dep
    finally:
        dep.kill()


def _attempts(client) -> list[str]:
    """Every HTTP request the client sends (retries included)."""
    sent: list[str] = []
    client.meta.events.register("before-send.ec2", lambda request, **_: sent.append(request.url))
    return sent


def _unconfirmed_row(store: Store, instance_id: str):
    rows = [r for r in store.audit_rows(instance_id=instance_id) if r.action != "DescribeInstances"]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("mode", ["default", "standard", "adaptive"])
def test_boto3_is_not_invited_to_retry_after_inject_nmi(deployment, tmp_path, mode):
    with QMPPeer(tmp_path / "vm.sock", drop_at="inject-nmi") as peer:
        iid = deployment.add_qmp_instance(peer.path)
        deployment.start()
        retries = {} if mode == "default" else {"retries": {"mode": mode, "max_attempts": 5}}
        client = deployment.boto3(**retries)
        attempts = _attempts(client)
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client.send_diagnostic_interrupt(InstanceId=iid)
        assert peer.count("inject-nmi") == 1
    assert len(attempts) == 1, attempts
    error = err.value.response["Error"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert error["Code"] == "DeliveryUnconfirmed"
    with deployment.store() as store:
        row = _unconfirmed_row(store, iid)
    assert row.outcome == "unknown"
    assert row.error_code == "DeliveryUnconfirmed"
    assert f"audit row {row.id}" in error["Message"]
    assert "unconfirmed" in error["Message"]
    assert str(peer.path) not in error["Message"]  # the socket path stays inside


def test_aws_cli_is_not_invited_to_retry_after_inject_nmi(deployment, tmp_path):
    if not Path(AWS).exists():
        pytest.fail(f"the aws CLI is not installed at {AWS} (pip install awscli)")
    with QMPPeer(tmp_path / "vm.sock", drop_at="inject-nmi") as peer:
        iid = deployment.add_qmp_instance(peer.path)
        deployment.start()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "AWS_ACCESS_KEY_ID": deployment.key_id,
            "AWS_SECRET_ACCESS_KEY": deployment.secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }  # no AWS_MAX_ATTEMPTS / AWS_RETRY_MODE: the CLI's own defaults
        done = subprocess.run(
            [
                AWS,
                "ec2",
                "send-diagnostic-interrupt",
                "--instance-id",
                iid,
                "--debug",
                "--endpoint-url",
                deployment.url,
            ],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert peer.count("inject-nmi") == 1
    assert done.returncode != 0
    assert done.stderr.count("Sending http request") == 1, done.stderr[-3000:]
    with deployment.store() as store:
        row = _unconfirmed_row(store, iid)
    assert row.outcome == "unknown"
    last = done.stderr.strip().splitlines()[-1]
    assert "(DeliveryUnconfirmed)" in last
    assert f"audit row {row.id}" in last


def _restart_keeps_fresh_row(deployment, iid: str) -> None:
    """A fresh pending row survives a restart with the default bound (it could be another
    host's request in flight)."""
    assert "left pending" not in deployment.start()
    with deployment.store() as store:
        assert [r.outcome for r in store.audit_rows(instance_id=iid)] == ["pending"]
    deployment.kill(signal.SIGTERM)


def test_killed_between_intent_and_outcome_is_reconciled_to_unknown(deployment, tmp_path):
    """The peer takes inject-nmi and never answers; the server is SIGKILLed while it waits.
    The row is left pending; a restart right away leaves it so (it could be another
    replica's request in flight); once it is older than --reconcile-after a start marks it
    unknown (not sent, not failed) and says so, and `kdiag audit` shows it in every format."""
    with QMPPeer(tmp_path / "vm.sock", drop_at="inject-nmi", hang=True) as peer:
        iid = deployment.add_qmp_instance(peer.path, timeout=60)
        deployment.start()
        client = deployment.boto3(retries={"max_attempts": 1}, read_timeout=60)
        answers: list[object] = []

        def call() -> None:
            try:
                answers.append(client.send_diagnostic_interrupt(InstanceId=iid))
            except botocore.exceptions.BotoCoreError as exc:  # the server is gone
                answers.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        deadline = time.monotonic() + 30
        while peer.count("inject-nmi") == 0:
            assert time.monotonic() < deadline, "inject-nmi never reached the peer"
            time.sleep(0.02)
        with deployment.store() as store:
            assert [r.outcome for r in store.audit_rows(instance_id=iid)] == ["pending"]
        deployment.kill(signal.SIGKILL)
        caller.join(30)
    assert len(answers) == 1
    assert isinstance(answers[0], botocore.exceptions.BotoCoreError)
    with deployment.store() as store:
        (row,) = store.audit_rows(instance_id=iid)
        assert row.outcome == "pending"  # nobody reconciles until the service starts
    _restart_keeps_fresh_row(deployment, iid)
    time.sleep(1.1)
    banner = deployment.start("--reconcile-after", "1")
    assert f"audit rows {row.id}" in banner
    assert "unknown" in banner
    with deployment.store() as store:
        (after,) = store.audit_rows(instance_id=iid)
    assert (after.id, after.outcome, after.error_code) == (row.id, "unknown", "DeliveryUnconfirmed")
    deployment.kill(signal.SIGTERM)
    # a second start finds nothing left to reconcile, and changes nothing
    assert "left pending" not in deployment.start()

    def audit(*args):
        done = subprocess.run(
            [KDIAG, "audit", "--db", deployment.db, "--instance", iid, *args],
            env={**deployment.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout

    (shown,) = json.loads(audit("--json"))["AuditLog"]
    assert (shown["id"], shown["outcome"], shown["error_code"]) == (
        row.id,
        "unknown",
        "DeliveryUnconfirmed",
    )
    text = audit("-o", "text").splitlines()
    assert len(text) == 1
    assert text[0].split("\t")[0] == str(row.id)
    assert "\tunknown\t" in text[0]
    assert "DeliveryUnconfirmed" in text[0]
    table = audit("-o", "table")
    assert "unknown" in table
    assert "DeliveryUnconfirmed" in table


class _OutcomeWriteFails(Store):
    """A store whose write of a ``sent`` outcome fails (the disk filled, the database went
    read-only) after the backend accepted the NMI."""

    def finish_audit(self, audit_id, *, outcome, **kwargs):
        if outcome == "sent":
            raise OSError(30, "Read-only file system")
        return super().finish_audit(audit_id, outcome=outcome, **kwargs)


def test_outcome_write_failure_after_delivery_is_not_retryable(tmp_path):
    store = _OutcomeWriteFails.open(f"sqlite:///{tmp_path}/kdiag.db", key_file=tmp_path / "k")
    backend = FakeBackend()
    ctx = ServiceContext(
        store,
        regions=(REGION,),
        throttle=Throttle(rate=1000.0, burst=1000),
        backends=BackendPool({"fake": backend}),
    )
    try:
        user = store.create_user("operator")
        store.put_user_policy(user, "all", json.dumps(allow()))
        key, secret = store.create_access_key(user)
        iid = store.add_instance(backend="fake", target={}).id
        with ServerThread(create_app(ctx)) as server:
            client = boto3.session.Session().client(
                "ec2",
                endpoint_url=server.url,
                region_name=REGION,
                aws_access_key_id=key.id,
                aws_secret_access_key=secret,
            )  # the default retry configuration
            attempts = _attempts(client)
            with pytest.raises(botocore.exceptions.ClientError) as err:
                client.send_diagnostic_interrupt(InstanceId=iid)
        assert backend.sent == [iid]
        assert len(attempts) == 1
        (row,) = store.audit_rows(instance_id=iid)
        assert row.outcome == "pending"  # the write failed: start-up will reconcile it
        error = err.value.response["Error"]
        assert error["Code"] == "DeliveryUnconfirmed"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert f"audit row {row.id}" in error["Message"]
        assert "outcome could not be recorded" in error["Message"]
    finally:
        store.close()
