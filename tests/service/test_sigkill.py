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
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

from kdiag.service.server import bind_socket
from kdiag.store import Store

from .conftest import REGION, allow

THREADS = 4


def _free_port():
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


def _nonce(request, **_):
    request.headers["X-Kdiag-Nonce"] = str(uuid.uuid4())


def test_sigkill_mid_load_loses_no_audit_row(tmp_path):
    db = f"sqlite:///{tmp_path}/kdiag.db"
    record = tmp_path / "nmi.log"
    env = {
        **os.environ,
        "KDIAG_KEY_FILE": str(tmp_path / "kdiag.key"),
        "KDIAG_STATE_DIR": str(tmp_path),
    }
    with Store.open(db, key_file=tmp_path / "kdiag.key") as store:
        instances = [
            store.add_instance(backend="fake", target={"record": str(record)}).id
            for _ in range(THREADS)
        ]
        user = store.create_user("loader")
        store.put_user_policy(user, "all", json.dumps(allow()))
        key, secret = store.create_access_key(user)

    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("kdiag")),
            "serve",
            "--port",
            str(port),
            "--db",
            db,
            "--rate",
            "100000",
            "--burst",
            "100000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("kdiag serve did not come up: " + server.stderr.read().decode()[-2000:])

        stop = threading.Event()
        answered = collections.Counter()

        def load(instance_id):
            client = boto3.session.Session().client(
                "ec2",
                endpoint_url=url,
                region_name=REGION,
                aws_access_key_id=key.id,
                aws_secret_access_key=secret,
                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
            )
            client.meta.events.register("before-sign.ec2.SendDiagnosticInterrupt", _nonce)
            while not stop.is_set():
                try:
                    client.send_diagnostic_interrupt(InstanceId=instance_id)
                    answered[instance_id] += 1
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                    return

        threads = [threading.Thread(target=load, args=(i,)) for i in instances]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if record.exists() and len(record.read_text().splitlines()) >= 40:
                break
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stderr.close()

    delivered = collections.Counter(line.split()[0] for line in record.read_text().splitlines())
    assert sum(delivered.values()) >= 40
    with Store.open(db, key_file=tmp_path / "kdiag.key") as store:
        rows = [r for r in store.audit_rows() if r.action == "SendDiagnosticInterrupt"]
    recorded = collections.Counter(r.instance_id for r in rows if r.outcome in ("pending", "sent"))
    sent_rows = collections.Counter(r.instance_id for r in rows if r.outcome == "sent")
    for instance_id in instances:
        # every NMI that went out has a row committed before it went out...
        assert delivered[instance_id] <= recorded[instance_id]
        # ...and every row that says "sent" is an NMI that went out
        assert sent_rows[instance_id] <= delivered[instance_id]
        # every answer a client saw corresponds to a delivered NMI
        assert answered[instance_id] <= delivered[instance_id]
