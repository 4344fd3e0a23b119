"""DescribeInstances filters match in linear time: a ``*-*-...*X`` filter against a long
tag value backtracked for minutes in a ``.*`` regular expression and stalled the server
(sixty characters and eight ``*`` took 65 s).  Over real HTTP with real boto3, and at the
matcher, with answers checked as well as the time."""

from __future__ import annotations

import socket
import time

import botocore.exceptions
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kdiag.filters import MAX_FILTER_VALUES, MAX_FILTERS, Filter, match_filters
from kdiag.service.server import MAX_HEAD_BYTES, MAX_HEADERS, BoundedHttpProtocol
from kdiag.store.audit import MAX_AUDIT_TEXT
from tests.service.conftest import REGION, allow, run_service, signed_call

HOSTILE = "*-" * 40 + "*X"  # 41 runs
LONG = "-" * 256


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with run_service(tmp_path_factory.mktemp("filters")) as svc:
        yield svc


def test_backtracking_filter_answers_fast_over_http(service):
    box = service.store.add_instance(backend="fake", target={}, tags={"Env": LONG})
    hit = service.store.add_instance(backend="fake", target={}, tags={"Env": LONG + "X"})
    creds = service.user("filterer", allow(action="ec2:DescribeInstances"))
    ec2 = service.client(creds)
    ec2.describe_instances()  # boto3 loads its service model on the first call: not timed
    started = time.monotonic()
    for name in ("tag:Env", "tag-value"):
        found = ec2.describe_instances(Filters=[{"Name": name, "Values": [HOSTILE]}])
        ids = [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]
        assert ids == [hit.id], name
        assert box.id not in ids
    # backtracking takes minutes on these (65 s for 60 characters and eight '*'); a loaded
    # machine takes seconds for two ordinary calls
    assert time.monotonic() - started < 30.0


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (HOSTILE, LONG, False),
        (HOSTILE, LONG + "X", True),
        ("*a*a*a*a*a*a*a*a*b", "a" * 200, False),
        ("*a*a*a*a*a*a*a*a*b", "a" * 200 + "b", True),
        ("lab", "lab", True),
        ("l?b", "lab", True),
        ("l?b", "laab", False),
        ("l*", "lab", True),
        ("*", "", True),
        ("a.c", "abc", False),  # regex characters are literal
        ("[ab]", "a", False),
        ("${x}", "${x}", True),  # no policy variables in filters
    ],
)
def test_wildcards_are_linear_and_exact(service, pattern, value, expected):
    instance = service.store.add_instance(backend="fake", target={}, tags={"K": value})
    started = time.monotonic()
    assert match_filters(instance, [Filter("tag:K", (pattern,))]) is expected
    assert time.monotonic() - started < 10.0  # backtracking: C(200, 8) steps, never ends


def _raw(service, payload_chunks, *, timeout=10.0) -> bytes:
    """Send raw bytes to the server; return what it answered before closing."""
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            for chunk in payload_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us mid-send: what it said is still readable
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
        return answer


def test_huge_header_is_refused_without_buffering_it(service):
    head = [b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nX-Big: "]
    chunks = head + [b"a" * 65536] * 2048  # 128 MiB if the server kept reading
    started = time.monotonic()
    answer = _raw(service, chunks)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"too large" in answer
    assert time.monotonic() - started < 30.0


def test_too_many_headers_are_refused(service):
    fields = b"".join(b"X-H%d: v\r\n" % n for n in range(MAX_HEADERS + 1))
    answer = _raw(service, [b"GET /v1/instances HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"])
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_bounded_head_still_serves_ordinary_large_requests(service):
    fields = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 200) for n in range(MAX_HEADERS - 5))
    answer = _raw(
        service,
        [b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n"],
    )
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]  # reached the app: no signature
    body = b"Action=DescribeInstances&" + b"x" * (MAX_HEAD_BYTES + 1000)
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body  # head and a body past the head bound in one write: the body is not head
    answer = _raw(service, [request])
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"MissingAuthenticationToken" in answer


def test_audit_rows_are_bounded_over_http(service):
    creds = service.user("verbose", allow(action="ec2:DescribeInstances"))
    huge = "A" * 60_000  # fits the 64 KiB body; echoed by InvalidAction
    request = AWSRequest(
        method="POST",
        url=service.url + "/",
        data=f"Action={huge}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION).add_auth(request)
    response = httpx.post(request.url, content=request.data, headers=dict(request.headers))
    assert response.status_code == 400, response.text[:200]
    row = service.audit(response.headers["x-amzn-requestid"])
    assert row.error_code == "InvalidAction"
    assert row.message is not None
    assert len(row.message) <= MAX_AUDIT_TEXT
    assert row.message.endswith("\u2026")
    assert len(row.action) <= 64


def test_filter_counts_are_bounded_on_both_faces(service):
    creds = service.user("many-filters", allow(action="ec2:DescribeInstances"))
    too_many_values = ",".join(f"v{n}" for n in range(MAX_FILTER_VALUES + 1))
    response = signed_call(service, creds, "GET", f"/v1/instances?filter=tag:K={too_many_values}")
    assert response.status_code == 400, response.text
    assert response.json()["Error"]["Code"] == "InvalidParameterValue"
    query = "&".join(f"filter=tag:K{n}=v" for n in range(MAX_FILTERS + 1))
    response = signed_call(service, creds, "GET", f"/v1/instances?{query}")
    assert response.status_code == 400, response.text
    ec2 = service.client(creds)
    values = [f"v{n}" for n in range(MAX_FILTER_VALUES + 1)]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ec2.describe_instances(Filters=[{"Name": "tag:K", "Values": values}])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    filters = [{"Name": f"tag:K{n}", "Values": ["v"]} for n in range(MAX_FILTERS + 1)]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ec2.describe_instances(Filters=filters)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    at_bound = [{"Name": f"tag:K{n}", "Values": ["*"]} for n in range(MAX_FILTERS)]
    assert ec2.describe_instances(Filters=at_bound)["Reservations"] == []


def test_half_sent_heads_are_closed_after_the_head_timeout(service, monkeypatch):
    # 2 s, not less: the trickle's second write must land before the timer fires (else the
    # case proves nothing about trickling), and a loaded machine can oversleep 0.3 s by more
    # than 0.2 s
    monkeypatch.setattr(BoundedHttpProtocol, "head_timeout", 2.0)
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with (
        socket.create_connection((host, int(port)), timeout=30) as silent,
        socket.create_connection((host, int(port)), timeout=30) as trickle,
    ):
        trickle.sendall(b"GET /v1/instances HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        trickle.sendall(b"X-Slow: 1\r\n")  # still trickling: the timer runs from the first byte
        answer = b""
        while data := trickle.recv(4096):
            answer += data
        assert answer.startswith(b"HTTP/1.1 408"), answer
        silent_answer = b""
        while data := silent.recv(4096):  # a connection that never sends is closed too
            silent_answer += data
        assert silent_answer.startswith(b"HTTP/1.1 408"), silent_answer
    # closed by the head timer: well before the sockets' own timeout and uvicorn's
    # keep-alive (30 s), which would not answer 408 anyway
    assert time.monotonic() - started < 20.0
    # a whole request in time is served as before
    answer = _raw(service, [b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
