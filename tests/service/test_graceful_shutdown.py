"""SIGTERM while requests are in flight: ``kdiag serve`` finishes them, records their
outcomes and exits 0 — on SQLite and on PostgreSQL.

Four boto3 clients send NMIs in a loop, and one more request is held half-sent (its body
trickles in after the signal).  After the stop: every NMI the fake backend delivered has a
``sent`` row, no row is left ``pending``, every success a client saw is one of them, and
the held request was served.
"""

import collections
import json
import os
import signal
import socket
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
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir  # noqa: F401
from tests.peers.ports import free_port

from .conftest import REGION, allow

THREADS = 4
KDIAG = str(Path(sys.executable).with_name("kdiag"))


def _nonce(request, **_):
    request.headers["X-Kdiag-Nonce"] = str(uuid.uuid4())


def _deploy(url, key_file, record):
    with Store.open(url, key_file=key_file) as store:
        instances = [
            store.add_instance(backend="fake", target={"record": str(record)}).id
            for _ in range(THREADS + 1)
        ]
        user = store.create_user("stopper")
        store.put_user_policy(user, "all", json.dumps(allow()))
        key, secret = store.create_access_key(user)
    return instances, Credentials(key.id, secret)


def _serve(url, key_file, state, port):
    env = {**os.environ, "KDIAG_KEY_FILE": str(key_file), "KDIAG_STATE_DIR": str(state)}
    return subprocess.Popen(
        [
            KDIAG,
            "serve",
            "--port",
            str(port),
            "--db",
            url,
            *("--rate", "100000", "--burst", "100000"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_up(base, server, timeout=120.0):
    """Poll until ``kdiag serve`` answers; a loaded CI machine can take well over 15 s to
    start it (imports, migrations), so the bound is a deadline, not a count of tries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            if httpx.get(base + "/v1/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    if server.poll() is None:
        server.kill()
    raise AssertionError("kdiag serve did not come up: " + server.stderr.read()[-2000:])


def _loop(base, creds, instance_id, answered, stop):
    client = boto3.session.Session().client(
        "ec2",
        endpoint_url=base,
        region_name=REGION,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=30),
    )
    client.meta.events.register("before-sign.ec2.SendDiagnosticInterrupt", _nonce)
    while not stop.is_set():
        try:
            client.send_diagnostic_interrupt(InstanceId=instance_id)
            answered[instance_id] += 1
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            botocore.parsers.ResponseParserError,
        ):
            return


def _held_request(base, creds, instance_id):
    """A signed NMI request whose head and first body byte are sent now; the rest later."""
    body = f"Action=SendDiagnosticInterrupt&InstanceId={instance_id}&Version=2016-11-15"
    request = AWSRequest(
        method="POST",
        url=base + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(creds, "ec2", REGION).add_auth(request)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host")
    sock.sendall(head.encode() + b"\r\n" + body[:1].encode())
    return sock, body[1:].encode()


def _tcp_sockets():
    """(local port, remote port, state, receive queue) of every IPv4 TCP socket of this
    network namespace, from ``/proc/net/tcp`` (state ``01`` established, ``0A`` listening)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        found.append(
            (
                int(local.rsplit(":", 1)[1], 16),
                int(remote.rsplit(":", 1)[1], 16),
                state,
                int(queues.split(":")[1], 16),
            )
        )
    return found


def _server_read_all_of(port, client):
    """The server's end of ``client``'s connection exists and holds no unread byte: the
    server accepted it and read what was sent (the head of the held request is in)."""
    mine = client.getsockname()[1]
    return any(
        (local, remote, state, unread) == (port, mine, "01", 0)
        for local, remote, state, unread in _tcp_sockets()
    )


def _listening(port):
    return any(local == port and state == "0A" for local, _, state, _ in _tcp_sockets())


def _wait_for(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.01)


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path, db_url):  # noqa: F811
    key_file, record = tmp_path / "kdiag.key", tmp_path / "nmi.log"
    instances, creds = _deploy(db_url, key_file, record)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(db_url, key_file, tmp_path / "state", port)
    answered = collections.Counter()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_loop, args=(base, creds, i, answered, stop))
        for i in instances[:THREADS]
    ]
    try:
        _wait_until_up(base, server)
        for t in threads:
            t.start()
        _wait_for(
            lambda: record.exists() and len(record.read_text().splitlines()) >= 10,
            "10 NMIs delivered under the load",
        )
        held, rest = _held_request(base, creds, instances[THREADS])
        # the held request is in flight once the server has read its head (a fixed pause
        # was not enough under load: a connection not yet read when the stop begins is
        # closed unanswered, rightly)
        _wait_for(lambda: _server_read_all_of(port, held), "the server read the held head")
        server.send_signal(signal.SIGTERM)
        # the stop has begun once the server no longer listens; send the rest after that
        # (within the body timeout, 10 s, should the stop be slow to show)
        deadline = time.monotonic() + 5
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.01)
        held.sendall(rest)  # after the signal: the server still finishes it
        answer = b""
        while data := held.recv(4096):
            answer += data
        held.close()
        _, err = server.communicate(timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "stopped (SIGTERM)" in err
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"<return>true</return>" in answer

    delivered = collections.Counter(line.split()[0] for line in record.read_text().splitlines())
    with Store.open(db_url, key_file=key_file) as store:
        rows = [r for r in store.audit_rows() if r.action == "SendDiagnosticInterrupt"]
    assert not [r for r in rows if r.outcome == "pending"]
    sent = collections.Counter(r.instance_id for r in rows if r.outcome == "sent")
    assert sent == delivered  # every NMI that went out is recorded as sent, and only those
    assert sent[instances[THREADS]] == 1  # the held request
    for instance_id in instances[:THREADS]:
        assert answered[instance_id] <= sent[instance_id]
