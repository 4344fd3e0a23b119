"""``kdiag serve --workers 2``: two processes on one port, one database (SQLite and
PostgreSQL), answering as one.

* the same signed request sent on several connections at once delivers once, and every
  connection gets the first request's answer;
* the throttle holds across the replicas: a burst of 30 is 30 in all, not 30 each;
* SIGKILL of one replica under load (PostgreSQL) loses no audit row; the supervisor
  replaces it, and a SIGTERM then stops everything with exit 0.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.parsers
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir  # noqa: F401
from tests.peers.ports import free_port

from .conftest import REGION, allow

KDIAG = str(Path(sys.executable).with_name("kdiag"))
BURST = 30


class Replicas:
    """``kdiag serve --workers 2`` on a fresh database, with users and fake instances."""

    def __init__(self, tmp_path, url, *, rate, burst):
        self.url, self.key_file, self.record = url, tmp_path / "kdiag.key", tmp_path / "nmi.log"
        with Store.open(url, key_file=self.key_file) as store:
            self.instances = [
                store.add_instance(backend="fake", target={"record": str(self.record)}).id
                for _ in range(4)
            ]
            self.creds = {}
            for name in ("dup", "flood", "load"):
                user = store.create_user(name)
                store.put_user_policy(user, "all", json.dumps(allow()))
                key, secret = store.create_access_key(user)
                self.creds[name] = Credentials(key.id, secret)
        port = free_port()  # below the ephemeral range: see tests.peers.ports
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "KDIAG_KEY_FILE": str(self.key_file),
            "KDIAG_STATE_DIR": str(tmp_path / "state"),
        }
        self.proc = subprocess.Popen(
            [KDIAG, "serve", "--port", str(port), "--db", url, *self.options(rate, burst)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # a deadline, not a count of tries: start-up takes far longer on a loaded machine
        deadline = time.monotonic() + 120
        while not self._answers() or len(self.workers()) < 2:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code, err = self.stop()
                pytest.fail(f"kdiag serve --workers 2 did not come up (status {code}):\n{err}")
            time.sleep(0.05)

    def _answers(self):
        try:
            return httpx.get(self.base + "/v1/openapi.json", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    @staticmethod
    def options(rate, burst):
        return ["--workers", "2", "--rate", str(rate), "--burst", str(burst)]

    def workers(self):
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(p) for p in path.read_text().split()} if path.exists() else set()

    def delivered(self):
        """(instance id, pid) of every NMI the fake backend recorded."""
        if not self.record.exists():
            return []
        return [(ln.split()[0], int(ln.split()[2])) for ln in self.record.read_text().splitlines()]

    def rows(self, user=None):
        with Store.open(self.url, key_file=self.key_file) as store:
            rows = store.audit_rows()
        if user is not None:
            rows = [r for r in rows if (r.principal or "").endswith(f":user/{user}")]
        return rows

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def _signed(base, creds, instance_id):
    body = f"Action=SendDiagnosticInterrupt&InstanceId={instance_id}&Version=2016-11-15"
    request = AWSRequest(
        method="POST",
        url=base + "/",
        data=body.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Kdiag-Nonce": str(uuid.uuid4()),
        },
    )
    SigV4Auth(creds, "ec2", REGION).add_auth(request)
    return request


def _at_once(base, requests):
    """Send each request on its own new connection, all released together."""
    answers = [None] * len(requests)
    gate = threading.Barrier(len(requests))

    def send(i):
        gate.wait()
        r = requests[i]
        # httpx's default timeout (5 s) is not an answer the test waits for on a loaded machine
        answers[i] = httpx.post(
            base + "/", content=r.body, headers=dict(r.headers.items()), timeout=60
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


@pytest.fixture
def replicas(tmp_path, db_url):  # noqa: F811
    running = Replicas(tmp_path, db_url, rate=0.001, burst=BURST)
    yield running
    running.stop()


def test_one_signature_delivers_once_and_the_throttle_holds_across_replicas(replicas):
    dup, target = replicas.creds["dup"], replicas.instances[0]
    for _ in range(8):
        signed = _signed(replicas.base, dup, target)
        answers = _at_once(replicas.base, [signed] * 6)
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert len({a.content for a in answers}) == 1  # the first request's answer, to all
    outcomes = collections.Counter(r.outcome for r in replicas.rows("dup"))
    assert outcomes == {"sent": 8, "replayed": 40}
    assert [i for i, _ in replicas.delivered()].count(target) == 8

    flood = replicas.creds["flood"]
    requests = [_signed(replicas.base, flood, replicas.instances[1]) for _ in range(BURST + 10)]
    answers = []
    for start in range(0, len(requests), 10):
        answers += _at_once(replicas.base, requests[start : start + 10])
    codes = collections.Counter(a.status_code for a in answers)
    assert codes == {200: BURST, 503: 10}, codes  # one bucket for both replicas
    assert all("RequestLimitExceeded" in a.text for a in answers if a.status_code == 503)
    # both replicas served: the fake backend records the pid of the process that delivered
    assert len({pid for _, pid in replicas.delivered()}) == 2
    code, err = replicas.stop()
    assert code == 0, err
    assert "stopped (SIGTERM)" in err


def _load(base, creds, instance_id, answered, stop):
    """SendDiagnosticInterrupt in a loop until stopped; errors (a killed replica's
    connections) are counted and the loop goes on with a new connection."""

    def client():
        c = boto3.session.Session().client(
            "ec2",
            endpoint_url=base,
            region_name=REGION,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=30),
        )
        c.meta.events.register(
            "before-sign.ec2.SendDiagnosticInterrupt",
            lambda request, **_: request.headers.__setitem__("X-Kdiag-Nonce", str(uuid.uuid4())),
        )
        return c

    ec2 = client()
    while not stop.is_set():
        try:
            ec2.send_diagnostic_interrupt(InstanceId=instance_id)
            answered[instance_id] += 1
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            botocore.parsers.ResponseParserError,
        ):
            ec2 = client()


# PostgreSQL, the database replicas scale on (SQLite's single-writer path is the one
# test_sigkill.py kills, with one process).
@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_sigkill_of_one_replica_under_load_loses_no_audit_row(tmp_path, db_url):  # noqa: F811
    replicas = Replicas(tmp_path, db_url, rate=100000, burst=100000)
    answered = collections.Counter()
    stop = threading.Event()
    load = replicas.creds["load"]
    threads = [
        threading.Thread(target=_load, args=(replicas.base, load, i, answered, stop))
        for i in replicas.instances
    ]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(replicas.delivered()) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(replicas.delivered()) >= 40, "the load did not get going"
        first = replicas.workers()
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(replicas.workers() - first) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        replaced = replicas.workers() - first
        count = len(replicas.delivered())
        deadline = time.monotonic() + 60  # its own deadline: the replacement may be slow
        while len(replicas.delivered()) < count + 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # the survivor and the replacement keep serving
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        code, err = replicas.stop()
    assert replaced, "the supervisor did not replace the killed worker"
    assert code == 0, err
    delivered = collections.Counter(i for i, _ in replicas.delivered())
    rows = [r for r in replicas.rows("load") if r.action == "SendDiagnosticInterrupt"]
    recorded = collections.Counter(r.instance_id for r in rows if r.outcome in ("pending", "sent"))
    sent = collections.Counter(r.instance_id for r in rows if r.outcome == "sent")
    for instance_id in replicas.instances:
        assert delivered[instance_id] <= recorded[instance_id]  # a row before every NMI
        assert sent[instance_id] <= delivered[instance_id]
        assert answered[instance_id] <= delivered[instance_id]
    # only the killed worker's requests in flight can be left pending (one per load thread)
    assert sum(1 for r in rows if r.outcome == "pending") <= len(threads)
    assert len(replicas.delivered()) >= count + 20
