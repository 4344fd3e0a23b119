"""EC2 Query parsing, filters, the token bucket, and limits of the wire."""

import httpx
import pytest

from kdiag.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
)
from kdiag.filters import Filter
from kdiag.service.ec2 import indexed, parse_bool, parse_filters, parse_params
from kdiag.service.ratelimit import Throttle
from kdiag.service.sigv4 import IncomingRequest
from kdiag.service.wire import MAX_BODY
from kdiag.store import Store


def _req(body=b"", query="", content_type="application/x-www-form-urlencoded"):
    return IncomingRequest("POST", "http", "/", query, [("content-type", content_type)], body)


def test_params_from_body_and_query_without_sigv4_fields():
    params = parse_params(
        _req(b"Action=DescribeInstances&InstanceId.1=i-1", "Version=2016-11-15&X-Amz-Date=x")
    )
    assert params == {"Action": "DescribeInstances", "InstanceId.1": "i-1", "Version": "2016-11-15"}


def test_conflicting_duplicate_parameter_is_refused():
    with pytest.raises(InvalidParameterCombination):
        parse_params(_req(b"InstanceId=i-1&InstanceId=i-2"))


def test_body_must_be_a_form():
    with pytest.raises(InvalidParameterValue):
        parse_params(_req(b"{}", content_type="application/json"))


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("False", False), (None, False)])
def test_bool(value, expected):
    assert parse_bool({} if value is None else {"DryRun": value}, "DryRun") is expected


def test_bad_bool():
    with pytest.raises(InvalidParameterValue):
        parse_bool({"DryRun": "yes"}, "DryRun")


def test_indexed_and_filters_in_index_order():
    params = {
        "InstanceId.10": "c",
        "InstanceId.2": "b",
        "InstanceId.1": "a",
        "InstanceId.x": "no",
        "Filter.2.Name": "tag-key",
        "Filter.2.Value.1": "Team",
        "Filter.1.Name": "tag:Owner",
        "Filter.1.Value.2": "bob",
        "Filter.1.Value.1": "alice",
    }
    assert indexed(params, "InstanceId") == ["a", "b", "c"]
    assert parse_filters(params) == [
        Filter("tag:Owner", ("alice", "bob")),
        Filter("tag-key", ("Team",)),
    ]


def test_filter_without_values():
    with pytest.raises(InvalidParameterValue):
        parse_filters({"Filter.1.Name": "tag:Owner"})


def test_unknown_filter_is_refused_when_parsed():
    with pytest.raises(InvalidParameterValue, match="no-such-filter"):
        parse_filters({"Filter.1.Name": "no-such-filter", "Filter.1.Value.1": "x"})


@pytest.fixture
def bucket_store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path}/kdiag.db", key_file=tmp_path / "kdiag.key") as store:
        yield store


def _take(store, throttle, key, n=[0]):  # noqa: B006 - a request id counter
    n[0] += 1
    return store.take_token(throttle.bucket(key), f"req-{n[0]}")


def test_token_bucket_refills(bucket_store):
    """The bucket lives in the database; its arithmetic is one SQL statement."""
    now = [1000.0]
    throttle = Throttle(rate=2.0, burst=2, clock=lambda: now[0])
    assert _take(bucket_store, throttle, "a")
    assert _take(bucket_store, throttle, "a")
    assert not _take(bucket_store, throttle, "a")
    assert _take(bucket_store, throttle, "b")
    now[0] += 0.5
    assert _take(bucket_store, throttle, "a")
    assert not _take(bucket_store, throttle, "a")
    now[0] -= 100.0  # a replica whose clock is behind refills nothing (and takes nothing)
    assert not _take(bucket_store, throttle, "a")
    now[0] += 1000.0  # a long pause refills to the burst, not beyond
    assert [_take(bucket_store, throttle, "a") for _ in range(3)] == [True, True, False]


def test_idle_buckets_are_pruned_and_an_empty_one_is_never_forgiven(bucket_store):
    now = [1000.0]
    throttle = Throttle(rate=1.0, burst=1, clock=lambda: now[0])
    for n in range(100):
        now[0] += 1.0
        assert _take(bucket_store, throttle, "greedy")  # refilled after a second, emptied
        assert _take(bucket_store, throttle, f"p{n}")
        bucket_store.prune_ledger(now[0], idle_before=throttle.idle_before())
    assert not _take(bucket_store, throttle, "greedy")
    with bucket_store._engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT count(*) FROM throttle_buckets").scalar_one()
    assert left <= 4  # the idle ones went: the table is bounded by the active principals


def test_oversized_body_is_refused_and_audited(service):
    response = httpx.post(
        service.url + "/",
        content=b"A=" + b"x" * MAX_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    rows = service.store.audit_rows(request_id=response.headers["x-amzn-requestid"])
    assert [r.error_code for r in rows] == ["RequestEntityTooLarge"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_is_loopback(host, loopback):
    from kdiag.service.server import is_loopback

    assert is_loopback(host) is loopback


def test_serve_refuses_a_port_in_use(tmp_path, monkeypatch, capsys):
    from kdiag.cli import main as cli_main
    from kdiag.service.server import bind_socket

    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path))
    taken = bind_socket()
    try:
        port = taken.getsockname()[1]
        code = cli_main.run(["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path}/k.db"])
    finally:
        taken.close()
    assert code == 2
    assert "cannot listen" in capsys.readouterr().err
