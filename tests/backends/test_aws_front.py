"""The aws backend against a real EC2-compatible endpoint: one ``kdiag serve`` fronting
another.

Two real ``kdiag serve`` processes on loopback.  The *back* one owns QEMU-like guests (the
QMP backend over real UNIX sockets to :class:`QMPPeer`, which counts every command that
reaches "the hypervisor") and fake ones; the *front* one owns ``aws`` instances whose
``endpoint_url`` is the back one.  A real boto3 client calls the front.  An NMI sent to the
front arrives at the back one's backend, and both audit it; the back's refusals come back
as the front's typed errors; the back's ``DeliveryUnconfirmed`` (409) never becomes a success
or a retry at the front.
"""

import json
import os
import socket
import threading
import time

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from kdiag.backends.aws import AWSBackend
from kdiag.backends.base import Target
from kdiag.errors import DeliveryUnconfirmed
from tests.backends.qmp_peer import QMPPeer
from tests.peers.kdiag_serve import KdiagServe, free_port

REGION = "us-east-1"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ec2:SendDiagnosticInterrupt", "ec2:DescribeInstances"],
            "Resource": "*",
        }
    ],
}
DESCRIBE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}],
}


def _creds_file(path, key_id, secret):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key_id": key_id, "secret_access_key": secret}, f)
    return f"file:{path}"


class Pair:
    """The back kdiag, the front kdiag, and the instances on both."""

    def __init__(self, tmp):
        self.back = KdiagServe(tmp / "back")
        self.front = KdiagServe(tmp / "front")
        self.peer_ok = QMPPeer(tmp / "ok.sock", drop_at=None)
        self.peer_drop = QMPPeer(tmp / "drop.sock", drop_at="inject-nmi")
        self.back_ids = {
            "ok": self.back.add_instance("qmp", {"address": str(self.peer_ok.path)}),
            "drop": self.back.add_instance("qmp", {"address": str(self.peer_drop.path)}),
            "stopped": self.back.add_instance("fake", {}, state="stopped"),
            "arm": self.back.add_instance("fake", {}, arch="arm64"),
        }
        allowed = _creds_file(tmp / "front.creds", *self.back.user("front", ALLOW_ALL))
        no_send = _creds_file(tmp / "nosend.creds", *self.back.user("nosend", DESCRIBE_ONLY))
        key_id, _ = self.back.user("wrong", ALLOW_ALL)
        wrong = _creds_file(tmp / "wrong.creds", key_id, "x" * 40)
        self.front_key = self.front.user("operator", ALLOW_ALL)

        def aws(back_id, creds=allowed, url=self.back.url):
            target = {
                "region": REGION,
                "instance_id": back_id,
                "endpoint_url": url,
                "credentials": creds,
                "timeout": 10,
            }
            return self.front.add_instance("aws", target)

        self.ids = {name: aws(back_id) for name, back_id in self.back_ids.items()}
        self.ids["nosend"] = aws(self.back_ids["ok"], creds=no_send)
        self.ids["wrong"] = aws(self.back_ids["ok"], creds=wrong)
        self.ids["missing"] = aws("i-0123456789abcdef0")
        self.ids["down"] = aws(self.back_ids["ok"], url=f"http://127.0.0.1:{free_port()}")

    def client(self, **config):
        key_id, secret = self.front_key
        return boto3.session.Session().client(
            "ec2",
            endpoint_url=self.front.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(**config) if config else None,
        )


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for var in list(os.environ):
        if var.startswith("AWS_"):
            mp.delenv(var)
    mp.setenv("AWS_CONFIG_FILE", "/dev/null")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    pair = Pair(tmp_path_factory.mktemp("aws-pair"))
    with pair.peer_ok, pair.peer_drop, pair.back, pair.front:
        starters = [threading.Thread(target=s.start) for s in (pair.back, pair.front)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        assert pair.back.process is not None
        assert pair.front.process is not None
        yield pair
        for server in (pair.front, pair.back):  # both at once: a graceful stop waits
            server.terminate()
    mp.undo()


def _attempts(client):
    sent = []
    client.meta.events.register("before-send.ec2", lambda request, **_: sent.append(request.url))
    return sent


def _error(call):
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call()
    return err.value.response


def test_nmi_through_the_front_reaches_the_back_backend_and_both_audit(pair):
    client = pair.client(retries={"mode": "standard", "total_max_attempts": 1})
    reply = client.send_diagnostic_interrupt(InstanceId=pair.ids["ok"])
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert pair.peer_ok.count("inject-nmi") == 1

    [front] = pair.front.audit(pair.ids["ok"])
    [back] = pair.back.audit(pair.back_ids["ok"])
    assert (front.outcome, front.backend) == ("sent", "aws")
    assert (back.outcome, back.backend) == ("sent", "qmp")
    assert back.principal.endswith(":user/front")
    # The front's row names the back's request id: the two rows are tied.
    assert back.request_id
    assert back.request_id in front.message
    assert front.request_id == reply["ResponseMetadata"]["RequestId"]
    # The state was asked first (DescribeInstances at the back), as the front's own check.
    assert pair.back.audit(pair.back_ids["ok"], "DescribeInstances")


def test_back_delivery_unconfirmed_is_never_a_success_nor_a_retry_at_the_front(pair):
    client = pair.client()  # boto3's default retry configuration
    attempts = _attempts(client)
    response = _error(lambda: client.send_diagnostic_interrupt(InstanceId=pair.ids["drop"]))
    assert len(attempts) == 1, attempts
    assert pair.peer_drop.count("inject-nmi") == 1
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert response["Error"]["Code"] == "DeliveryUnconfirmed"
    [front] = pair.front.audit(pair.ids["drop"])
    [back] = pair.back.audit(pair.back_ids["drop"])
    assert (back.outcome, back.error_code) == ("unknown", "DeliveryUnconfirmed")
    assert (front.outcome, front.error_code) == ("unknown", "DeliveryUnconfirmed")
    assert f"audit row {front.id}" in response["Error"]["Message"]
    assert pair.back.url not in response["Error"]["Message"]  # the back stays inside


@pytest.mark.parametrize(
    ("name", "status", "code", "back_rows"),
    [
        # The back's DescribeInstances says stopped: refused at the front, never sent.
        ("stopped", 400, "IncorrectInstanceState", 0),
        # The back refuses the send: arm64 takes no NMI there.
        ("arm", 400, "UnsupportedOperation", 1),
        # A well-formed id the back does not know.
        ("missing", 400, "TargetNotFound", 0),
        # The back refuses the front's credentials or its authorization.
        ("wrong", 503, "BackendAuthFailure", 0),
        ("nosend", 503, "BackendAuthFailure", 1),
        # Nothing listens there.
        ("down", 503, "BackendUnavailable", None),
    ],
)
def test_back_refusals_become_typed_errors_at_the_front(pair, name, status, code, back_rows):
    client = pair.client(retries={"mode": "standard", "total_max_attempts": 1})
    response = _error(lambda: client.send_diagnostic_interrupt(InstanceId=pair.ids[name]))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Code"] == code
    rows = pair.front.audit(pair.ids[name])
    assert len(rows) == 1, [(r.request_id, r.outcome, r.error_code, r.message) for r in rows]
    [front] = rows
    assert front.outcome in ("failed", "rejected")
    assert front.error_code == code
    # What the back recorded for this front instance's credentials and back instance.
    back_id = pair.back_ids.get(name, "i-0123456789abcdef0" if name == "missing" else None)
    back_id = back_id or pair.back_ids["ok"]
    who = name if name in ("wrong", "nosend") else "front"
    sends = [r for r in pair.back.audit(back_id) if (r.principal or "").endswith(f":user/{who}")]
    assert back_rows is None or len(sends) == back_rows, sends
    if name == "nosend":
        assert sends[0].outcome == "denied"
    if name == "arm":
        assert (sends[0].outcome, sends[0].error_code) == ("rejected", "UnsupportedOperation")
    assert pair.peer_ok.count("inject-nmi") <= 1  # only the happy test's NMI, if it ran


class _Silent:
    """A loopback TCP server that reads requests and never answers."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.held = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
                    data.lower().partition(b"content-length:")[2].split(b"\r\n")[0] or 0
                ):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            self.requests.append(data)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_silent_endpoint_after_the_send_is_unconfirmed_and_sent_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KDIAG_AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("KDIAG_AWS_SECRET_ACCESS_KEY", "s" * 40)
    silent = _Silent()
    target = Target(
        "i-00000000000000001",
        {
            "region": REGION,
            "instance_id": "i-0123456789abcdef0",
            "endpoint_url": f"http://127.0.0.1:{silent.port}",
            "credentials": "env:KDIAG_AWS",
            "timeout": 0.5,
        },
    )
    started = time.monotonic()
    try:
        with AWSBackend() as backend, pytest.raises(DeliveryUnconfirmed, match="unconfirmed"):
            backend.send_nmi(target)
    finally:
        silent.close()
    assert time.monotonic() - started < 10
    assert len(silent.requests) == 1
    assert b"Action=SendDiagnosticInterrupt" in silent.requests[0]
    assert (
        b"Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE00/" in (silent.requests[0])
    )
