"""SIGKILL the server in the middle of a load of sends: every NMI the backend received has
its audit row (the intent is committed before delivery)."""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.parsers
import httpx
import pytest
from botocore.config import Config

from kdiag.store import Store
from tests.peers.ports import free_port

from .conftest import REGION, allow

THREADS = 4
DELIVERIES = 40  # NMIs the backend must have received before the server is killed


def _nonce(request, **_):
    request.headers["X-Kdiag-Nonce"] = str(uuid.uuid4())


@dataclass(frozen=True)
class Deployment:
    """A store with one fake instance per load thread and a user allowed to NMI them all."""

    state_dir: Path
    instances: list[str]
    key_id: str
    secret: str

    @property
    def db(self):
        return f"sqlite:///{self.state_dir}/kdiag.db"

    @property
    def key_file(self):
        return self.state_dir / "kdiag.key"

    @property
    def record(self):
        """The fake backend appends one line per NMI it receives: ``<instance id> ...``."""
        return self.state_dir / "nmi.log"


def _deploy(state_dir):
    with Store.open(f"sqlite:///{state_dir}/kdiag.db", key_file=state_dir / "kdiag.key") as store:
        instances = [
            store.add_instance(backend="fake", target={"record": str(state_dir / "nmi.log")}).id
            for _ in range(THREADS)
        ]
        user = store.create_user("loader")
        store.put_user_policy(user, "all", json.dumps(allow()))
        key, secret = store.create_access_key(user)
    return Deployment(state_dir, instances, key.id, secret)


def _serve(deployment, port):
    """``kdiag serve`` as its own process, so that it can be SIGKILLed."""
    env = {
        **os.environ,
        "KDIAG_KEY_FILE": str(deployment.key_file),
        "KDIAG_STATE_DIR": str(deployment.state_dir),
    }
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("kdiag")),
            "serve",
            "--port",
            str(port),
            "--db",
            deployment.db,
            "--rate",
            "100000",
            "--burst",
            "100000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_until_up(url, server, timeout=120.0):
    """Poll until ``kdiag serve`` answers; a loaded CI machine can take well over 15 s to
    start it (imports, migrations), so the bound is a deadline, not a count of tries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url + "/v1/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    if server.poll() is None:
        server.kill()
    pytest.fail("kdiag serve did not come up: " + server.stderr.read().decode()[-2000:])


class Load:
    """One boto3 client per instance, each sending SendDiagnosticInterrupt in a loop until
    stopped or until a call fails (the server is gone); ``answered`` counts the successes."""

    def __init__(self, url, deployment):
        self.url = url
        self.deployment = deployment
        self.answered = collections.Counter()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(i,)) for i in deployment.instances
        ]

    def _send(self, instance_id):
        client = boto3.session.Session().client(
            "ec2",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.deployment.key_id,
            aws_secret_access_key=self.deployment.secret,
            # any failed call ends the thread: generous timeouts, so that only the kill
            # ends it, not one slow answer on a loaded machine
            config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30),
        )
        client.meta.events.register("before-sign.ec2.SendDiagnosticInterrupt", _nonce)
        while not self._stop.is_set():
            try:
                client.send_diagnostic_interrupt(InstanceId=instance_id)
                self.answered[instance_id] += 1
            except (
                botocore.exceptions.ClientError,
                botocore.exceptions.BotoCoreError,
                # a SIGKILL between the status line and the body: botocore parses an empty
                # body and raises ResponseParserError, which is neither of the above
                botocore.parsers.ResponseParserError,
            ):
                return

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _wait_for_deliveries(record, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists() and len(record.read_text().splitlines()) >= count:
            return
        time.sleep(0.01)


def _audit_counts(deployment):
    """Per instance: rows committed as intents (``pending`` or ``sent``), and ``sent`` rows."""
    with Store.open(deployment.db, key_file=deployment.key_file) as store:
        rows = [r for r in store.audit_rows() if r.action == "SendDiagnosticInterrupt"]
    recorded = collections.Counter(r.instance_id for r in rows if r.outcome in ("pending", "sent"))
    sent = collections.Counter(r.instance_id for r in rows if r.outcome == "sent")
    return recorded, sent


def test_sigkill_mid_load_loses_no_audit_row(tmp_path):
    deployment = _deploy(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(deployment, port)
    try:
        _wait_until_up(url, server)
        load = Load(url, deployment)
        load.start()
        _wait_for_deliveries(deployment.record, DELIVERIES)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        load.stop()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stderr.close()

    lines = deployment.record.read_text().splitlines()
    delivered = collections.Counter(line.split()[0] for line in lines)
    assert sum(delivered.values()) >= DELIVERIES
    recorded, sent_rows = _audit_counts(deployment)
    for instance_id in deployment.instances:
        # every NMI that went out has a row committed before it went out...
        assert delivered[instance_id] <= recorded[instance_id]
        # ...and every row that says "sent" is an NMI that went out
        assert sent_rows[instance_id] <= delivered[instance_id]
        # every answer a client saw corresponds to a delivered NMI
        assert load.answered[instance_id] <= delivered[instance_id]
