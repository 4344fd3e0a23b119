"""Resource bounds, attacked over real sockets on loopback: half-sent bodies time out,
connections beyond the cap are refused at once (file descriptors stay bounded), and every
request leaves an audit row — parser rejections, timeouts, redirects and disconnects too.
"""

import os
import socket
import time

import pytest

from kdiag.service.server import TALLY_INTERVAL

from .conftest import run_service

BODY_TIMEOUT = 0.5
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    with run_service(
        tmp_path_factory.mktemp("bounds"),
        body_timeout=BODY_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    ) as svc:
        yield svc


def _address(svc):
    host, port = svc.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _read_all(sock):
    answer = b""
    while data := sock.recv(4096):
        answer += data
    return answer


def _row(svc, code, since_id, timeout=30.0):
    """The first audit row with ``code`` after row ``since_id`` (written off the loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in svc.store.audit_rows() if r.id > since_id and r.error_code == code]
        if rows:
            return rows[0]
        time.sleep(0.05)
    pytest.fail(f"no audit row {code}")


def _last_id(svc):
    rows = svc.store.audit_rows(limit=1)
    return rows[-1].id if rows else 0


def test_half_sent_body_is_answered_408_and_audited(bounded):
    mark = _last_id(bounded)
    started = time.monotonic()
    with socket.create_connection(_address(bounded), timeout=30) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\nAction=Send"
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    # the body timer (0.5 s) answered, not the head timer (10 s, and the head was whole) nor
    # the keep-alive (30 s); a generous bound, for a loaded machine
    assert time.monotonic() - started < 9.0
    row = _row(bounded, "RequestTimeout", mark)
    assert (row.outcome, row.source_ip) == ("rejected", "127.0.0.1")
    assert "11 bytes" in row.message
    assert bounded.backend.sent == []


def test_disconnects_mid_head_and_mid_body_are_audited(bounded):
    mark = _last_id(bounded)
    with socket.create_connection(_address(bounded), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")
        time.sleep(0.1)
    row = _row(bounded, "ClientDisconnected", mark)
    assert "head" in row.message
    mark = row.id
    with socket.create_connection(_address(bounded), timeout=5) as sock:
        sock.sendall(b"POST /v1/instances/i-0123456789abcdef0/diagnostic-interrupt HTTP/1.1\r\n")
        sock.sendall(b"Host: x\r\nContent-Length: 50\r\n\r\n{")
        time.sleep(0.1)
    row = _row(bounded, "ClientDisconnected", mark)
    assert "body" in row.message
    assert row.action == "SendDiagnosticInterrupt"


@pytest.mark.parametrize(
    ("payload", "status", "code", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "BadRequest", "malformed"),
        # TLS to plain HTTP
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 4, 400, "BadRequest", "malformed"),
        # the head bounds: 431 Request Header Fields Too Large (RFC 6585), not 400
        (
            b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n",
            431,
            "RequestHeaderFieldsTooLarge",
            "more than 100 header",
        ),
        (
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 40_000,
            431,
            "RequestHeaderFieldsTooLarge",
            "over 32768 bytes",
        ),
    ],
    ids=["bad-header", "tls-hello", "too-many-headers", "head-too-large"],
)
def test_parser_rejections_are_answered_and_audited(bounded, payload, status, code, reason):
    mark = _last_id(bounded)
    with socket.create_connection(_address(bounded), timeout=5) as sock:
        sock.sendall(payload)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 %d" % status), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(body) in head.lower()
    row = _row(bounded, code, mark)
    assert reason in row.message
    assert f"(answered {status})" in row.message
    assert (row.outcome, row.source_ip) == ("rejected", "127.0.0.1")
    assert len(row.message) < 300


def test_a_trailing_slash_is_not_redirected_but_audited(bounded):
    mark = _last_id(bounded)
    with socket.create_connection(_address(bounded), timeout=5) as sock:
        sock.sendall(b"GET /v1/instances/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b"location" not in answer.lower()
    row = _row(bounded, "NotFound", mark)
    assert row.action == "GET /v1/instances/"


def _fds():
    return len(os.listdir("/proc/self/fd"))


def test_connections_beyond_the_cap_are_refused_and_descriptors_stay_bounded(bounded):
    """200 idle connections against a cap of 20: the server holds at most 20 (plus the
    ones it is closing); each connection over the cap gets 503 and is closed at once."""
    mark = _last_id(bounded)
    before = _fds()
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(_address(bounded), timeout=5))
        # let the server accept (and refuse) them all: under load that takes more than a
        # fixed pause (CI once saw 163 still open after 0.5 s), so wait until it settles.
        # Settled means every refusal has arrived *and* the server holds no more than the
        # cap: the count of held descriptors alone is low too before the server has
        # accepted anything at all.
        answered = set()  # the connections that got their 503
        deadline = time.monotonic() + 60
        while True:
            for n, sock in enumerate(idle):
                if n not in answered and _refusal_arrived(sock):
                    answered.add(n)
            held = _fds() - before - len(idle)  # the server's side of these connections
            settled = len(answered) >= 200 - MAX_CONNECTIONS and held <= MAX_CONNECTIONS + 5
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert held <= MAX_CONNECTIONS + 5, held
        refused = len(answered)
        assert refused >= 200 - MAX_CONNECTIONS
    finally:
        for sock in idle:
            sock.close()
    # served again once the server has let go of the connections it held (a fixed pause
    # was a guess: a new connection while 20 are still held is refused, rightly)
    deadline = time.monotonic() + 60
    while _fds() - before > MAX_CONNECTIONS // 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with socket.create_connection(_address(bounded), timeout=5) as sock:  # served again
        sock.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200")
    # every connection left an audit row's worth: refused ones and the idle ones that sent
    # nothing are counted into a few aggregated rows (one per kind and interval), not 200
    assert _tallied(bounded, "ConnectionRefused", mark) == refused
    assert _tallied(bounded, "EmptyConnection", mark) == 200 - refused


def _refusal_arrived(sock):
    """Whether the server's 503 is waiting on ``sock`` (without blocking: a connection
    the server serves stays silent)."""
    sock.setblocking(False)
    try:
        return sock.recv(64, socket.MSG_PEEK).startswith(b"HTTP/1.1 503")
    except BlockingIOError:
        return False


def _tallied(svc, code, since_id, timeout=30.0):
    """The connections counted by the aggregated ``code`` rows after ``since_id``, once the
    count stops growing (the rows are written after the tally interval): steady for longer
    than one interval, so counts that straddle two intervals are both in."""
    deadline = time.monotonic() + timeout
    last, steady = -1, 0
    while time.monotonic() < deadline:
        rows = [r for r in svc.store.audit_rows() if r.id > since_id and r.error_code == code]
        total = sum(int(r.message.split()[0]) for r in rows)
        steady = steady + 1 if total == last and total else 0
        if steady * 0.3 > TALLY_INTERVAL + 1:
            assert len(rows) <= 4, [r.message for r in rows]  # aggregated, not one each
            for row in rows:
                assert row.source_ip == "127.0.0.1"
                assert "127.0.0.1" in row.message
                assert len(row.message) < 400
            return total
        last = total
        time.sleep(0.3)
    pytest.fail(f"the {code} tally never settled (last {last})")


def test_a_connection_that_sends_nothing_is_audited(bounded):
    mark = _last_id(bounded)
    for _ in range(3):
        socket.create_connection(_address(bounded), timeout=5).close()
    assert _tallied(bounded, "EmptyConnection", mark) == 3
