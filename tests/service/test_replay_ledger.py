"""The replay ledger: a repeated signature gets its first request's answer and does nothing
again, across restarts and replicas, and no caller can fill it for others.

Real boto3 (standard retries) and the real aws CLI retry a retryable 503 from the backend;
the ledger is in the database, so a new service process on the same file, or a second
replica beside the first, answers a captured request from it.
"""

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import botocore.auth
import botocore.exceptions
import httpx
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kdiag.backends.base import BackendPool
from kdiag.backends.fake import FakeBackend
from kdiag.errors import BackendUnavailable
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import ledger as ledger_module
from kdiag.store.ledger import Claim
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir  # noqa: F401

from .conftest import REGION, allow, run_service

AWS = str(Path(sys.executable).with_name("aws"))
BODY = "Action=SendDiagnosticInterrupt&InstanceId={}&Version=2016-11-15"


class FailFirst:
    """A fake backend handler: the first NMI fails with BackendUnavailable (nothing sent,
    503, retryable), later ones go through; counts every attempt."""

    def __init__(self):
        self.attempts = 0
        self._lock = threading.Lock()

    def __call__(self, target):
        with self._lock:
            self.attempts += 1
            first = self.attempts == 1
        if first:
            raise BackendUnavailable("hypervisor busy", target=target.instance_id)


@pytest.fixture
def svc(tmp_path):
    with run_service(tmp_path) as service:
        yield service


def _rows(store, user):
    """The audit rows of ``user``'s requests (a repeat is audited before its parameters are
    read, so without an instance id)."""
    return [r for r in store.audit_rows() if (r.principal or "").endswith(f":user/{user}")]


def _frozen_signing_clock(monkeypatch):
    """Every botocore signature made from now on carries one X-Amz-Date: each retry of a
    request is then byte-identical, as botocore's retries within one second are."""
    frozen = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: frozen)


def test_boto3_retry_of_a_503_sees_the_real_error_not_a_replay_refusal(svc, monkeypatch):
    """All attempts share one signature: the first got 503 BackendUnavailable and the
    repeats get that same answer (botocore retries it, then raises it), not AuthFailure;
    the backend was asked once."""
    instance = svc.store.add_instance(backend="fake", target={})
    handler = FailFirst()
    svc.backend.handler = handler
    ec2 = svc.client(svc.user("rita", allow()), retries=3)  # retries, after the first
    _frozen_signing_clock(monkeypatch)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2.send_diagnostic_interrupt(InstanceId=instance.id)
    error = info.value.response
    assert error["Error"]["Code"] == "BackendUnavailable"
    assert error["ResponseMetadata"]["RetryAttempts"] == 3
    assert (handler.attempts, svc.backend.sent) == (1, [])
    outcomes = sorted(r.outcome for r in _rows(svc.store, "rita"))
    assert outcomes == ["failed", "replayed", "replayed", "replayed"]


def test_boto3_standard_retries_end_in_one_delivery(svc):
    """Real time: a retry in the same second is answered from the ledger, one in a later
    second is a new request; the client ends with success, and one NMI went out."""
    instance = svc.store.add_instance(backend="fake", target={})
    handler = FailFirst()
    svc.backend.handler = handler
    ec2 = svc.client(svc.user("sam", allow()), retries=10)
    answer = ec2.send_diagnostic_interrupt(InstanceId=instance.id)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert svc.backend.sent == [instance.id]
    rows = _rows(svc.store, "sam")
    assert [r.outcome for r in rows].count("sent") == 1
    assert not [r for r in svc.store.audit_rows() if r.error_code == "AuthFailure"]


def _aws(svc, creds, instance_id, *, attempts, extra_env=None):
    if not Path(AWS).exists():
        pytest.fail(f"the aws CLI is not installed at {AWS} (pip install awscli)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": creds.key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": str(attempts),
        "AWS_RETRY_MODE": "standard",
        **(extra_env or {}),
    }
    return subprocess.run(
        [
            AWS,
            "--endpoint-url",
            svc.url,
            "ec2",
            "send-diagnostic-interrupt",
            "--instance-id",
            instance_id,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_aws_cli_retry_sees_the_real_error(svc, tmp_path):
    """The aws CLI with its signing clock frozen (a sitecustomize in its PYTHONPATH):
    every retry repeats the signature, and the user sees BackendUnavailable."""
    instance = svc.store.add_instance(backend="fake", target={})
    handler = FailFirst()
    svc.backend.handler = handler
    (tmp_path / "sitecustomize.py").write_text(
        "import datetime, botocore.auth\n"
        "_FROZEN = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)\n"
        "botocore.auth.get_current_datetime = lambda *a, **k: _FROZEN\n"
    )
    done = _aws(
        svc,
        svc.user("tess", allow()),
        instance.id,
        attempts=3,
        extra_env={"PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "BackendUnavailable" in done.stderr, done.stderr
    assert "AuthFailure" not in done.stderr
    assert (handler.attempts, svc.backend.sent) == (1, [])
    assert sorted(r.outcome for r in _rows(svc.store, "tess")) == [
        "failed",
        "replayed",
        "replayed",
    ]


def test_aws_cli_retries_to_one_delivery(svc):
    instance = svc.store.add_instance(backend="fake", target={})
    handler = FailFirst()
    svc.backend.handler = handler
    done = _aws(svc, svc.user("uma", allow()), instance.id, attempts=10)
    assert done.returncode == 0, done.stderr
    assert svc.backend.sent == [instance.id]
    assert not [r for r in svc.store.audit_rows() if r.error_code == "AuthFailure"]


def _signed(url, creds, body):
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION).add_auth(request)
    return request


def _send(url, request):
    """``request`` sent to ``url`` byte for byte, with the Host it was signed for."""
    headers = {"Host": httpx.URL(request.url).netloc.decode(), **dict(request.headers.items())}
    # not httpx's default 5 s: a repeat waits for the first request's answer, under load
    return httpx.post(url + "/", content=request.body, headers=headers, timeout=60)


def _second_replica(store):
    """Another service process on the same database (its own context, backends, port)."""
    backend = FakeBackend()
    ctx = ServiceContext(
        store, regions=(REGION, "eu-west-1"), backends=BackendPool({"fake": backend})
    )
    return backend, ServerThread(create_app(ctx))


def test_the_ledger_outlives_the_process(tmp_path):
    """A captured request (and a presigned URL) replayed against a restarted service: the
    recorded answer, no second NMI."""
    with run_service(tmp_path) as first:
        instance = first.store.add_instance(backend="fake", target={})
        victor = first.user("victor", allow(), allow(action="ec2:DescribeInstances"))
        captured = _signed(first.url, victor, BODY.format(instance.id))
        answered = _send(first.url, captured)
        assert answered.status_code == 200, answered.text
        presigned = AWSRequest(
            method="GET",
            url=f"{first.url}/?Action=DescribeInstances&Version=2016-11-15",
        )
        SigV4QueryAuth(Credentials(victor.key_id, victor.secret), "ec2", REGION, 600).add_auth(
            presigned
        )
        listed = httpx.get(presigned.url)
        assert listed.status_code == 200
        assert first.backend.sent == [instance.id]
    with run_service(tmp_path) as second:  # the same database file, a new process state
        again = _send(second.url, captured)
        assert (again.status_code, again.content) == (200, answered.content)
        later = presigned.url.replace(first.url, second.url)
        # the Host header is signed: send it as the URL was signed
        relisted = httpx.get(later, headers={"Host": first.url.removeprefix("http://")})
        assert (relisted.status_code, relisted.content) == (200, listed.content)
        assert second.backend.sent == []
        rows = [r for r in second.store.audit_rows() if r.principal and "victor" in r.principal]
        assert [r.outcome for r in rows] == ["sent", "ok", "replayed", "replayed"]


def test_one_signature_sent_to_two_replicas_at_once_acts_once(tmp_path, db_url):  # noqa: F811
    """Two service replicas on one database (SQLite, PostgreSQL) get the same signed
    request at the same moment: one NMI, and both answers are the first request's."""
    with run_service(tmp_path, db_url=db_url) as one:
        backend_two, server_two = _second_replica(one.store)
        with server_two:
            instance = one.store.add_instance(backend="fake", target={})
            wendy = one.user("wendy", allow())

            def slow(target):
                time.sleep(0.3)  # both requests are in flight together

            one.backend.handler = slow
            backend_two.handler = slow
            for _ in range(5):
                signed = _signed(one.url, wendy, BODY.format(instance.id))
                answers = [None, None]
                start = threading.Barrier(2)

                def send(index, url, signed=signed, answers=answers, start=start):
                    start.wait()
                    answers[index] = _send(url, signed)

                threads = [
                    threading.Thread(target=send, args=(0, one.url)),
                    threading.Thread(target=send, args=(1, server_two.url)),
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
                assert [a.status_code for a in answers] == [200, 200]
                assert answers[0].content == answers[1].content
                time.sleep(1.0)  # the next round signs with a new X-Amz-Date
            assert len(one.backend.sent) + len(backend_two.sent) == 5
            rows = _rows(one.store, "wendy")
            assert sorted(r.outcome for r in rows) == ["replayed"] * 5 + ["sent"] * 5


def test_a_repeat_of_a_request_that_never_answered_is_unconfirmed(svc):
    """A ledger row with no answer (its server died mid-request) and older than the wait:
    the repeat is DeliveryUnconfirmed (409, not retried), and nothing is sent."""
    instance = svc.store.add_instance(backend="fake", target={})
    xena = svc.user("xena", allow())
    signed = _signed(svc.url, xena, BODY.format(instance.id))
    signature = signed.headers["Authorization"].rsplit("Signature=", 1)[1]
    principal = svc.store.get_user("xena").arn
    now = time.time()
    claimed = svc.store.claim_signature(
        Claim(signature, xena.key_id, principal, False, now + 300, "died-mid-request"),
        now=now - svc.ctx.pending_wait - 1,
    )
    assert claimed is None
    answer = _send(svc.url, signed)
    assert answer.status_code == 409
    assert "<Code>DeliveryUnconfirmed</Code>" in answer.text
    assert "died-mid-request" in answer.text
    assert svc.backend.sent == []


def test_presigned_quota_is_per_key_and_locks_out_only_its_owner(svc, monkeypatch):
    """A caller with no permissions fills its own key's share of the ledger with presigned
    URLs (days-long): its next one is refused, everybody else's still work."""
    monkeypatch.setattr(ledger_module, "MAX_PRESIGNED_PER_KEY", 5)
    nobody = svc.user("nobody")  # no policy at all
    yves = svc.user("yves", allow(action="ec2:DescribeInstances"))

    def presigned(creds, n):
        req = AWSRequest(
            method="GET",
            url=f"{svc.url}/?Action=DescribeInstances&Version=2016-11-15&MaxResults={n}",
        )
        SigV4QueryAuth(Credentials(creds.key_id, creds.secret), "ec2", REGION, 604800).add_auth(req)
        return httpx.get(req.url)

    codes = [presigned(nobody, 5 + n).status_code for n in range(5)]
    assert codes == [403] * 5  # denied, and each holds a slot of its own key for 7 days
    refused = presigned(nobody, 11)
    assert refused.status_code == 503
    assert "<Code>RequestLimitExceeded</Code>" in refused.text
    assert "presigned" in refused.text
    assert [presigned(yves, 5 + n).status_code for n in range(5)] == [200] * 5  # its own 5
