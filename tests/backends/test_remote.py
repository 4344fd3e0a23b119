"""What the HTTP-API backends share: one table from HTTP status to kdiag error, the peer's
text bounded and masked, and the endpoint URLs a target may name."""

from __future__ import annotations

import pytest

from kdiag.backends.remote import (
    MAX_REMOTE_TEXT,
    Refusal,
    StatusErrors,
    endpoint_problem,
    is_loopback,
    remote_text,
)
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendUnavailable,
    DeliveryUnconfirmed,
    IncorrectState,
    TargetNotFound,
)

IID = "i-0123456789abcdef0"
TABLE = StatusErrors(
    "Cloud refused",
    "sendNmi",
    Refusal((404,), TargetNotFound, "no such VM"),
    Refusal((401, 403), BackendAuthFailure, "bad credentials"),
    Refusal((409,), IncorrectState, "not now"),
    Refusal((503,), BackendUnavailable, "down for maintenance"),
)


@pytest.mark.parametrize(
    ("status", "on_wire", "error", "message"),
    [
        (404, True, TargetNotFound, "vm1: no such VM (said)"),
        (401, False, BackendAuthFailure, "vm1: bad credentials (said)"),
        (403, True, BackendAuthFailure, "vm1: bad credentials (said)"),
        (409, True, IncorrectState, "vm1: not now (said)"),
        # the provider's own 5xx wins over the common rule, even after the send
        (503, True, BackendUnavailable, "vm1: down for maintenance (said)"),
        (500, True, DeliveryUnconfirmed, "vm1: HTTP 500 after sendNmi was sent (said); "),
        (502, False, BackendUnavailable, "vm1: HTTP 502 (said)"),
        (400, True, BackendError, "vm1: Cloud refused: HTTP 400 (said)"),
        (418, False, BackendError, "vm1: Cloud refused: HTTP 418 (said)"),
    ],
)
def test_a_status_is_the_providers_own_refusal_or_the_common_rule(status, on_wire, error, message):
    mapped = TABLE.error(status, "said", "vm1", IID, on_wire=on_wire)
    assert type(mapped) is error
    assert str(mapped).startswith(message)
    assert mapped.target == IID


def test_remote_text_is_one_line_masked_before_it_is_cut():
    assert remote_text(ValueError("a\n  b\tc")) == "a b c"
    secret = "https://admin:hunter2@bmc.example/redfish"
    cut_inside = "x" * (MAX_REMOTE_TEXT - 20) + " " + secret
    shown = remote_text(cut_inside)
    assert "hunter2" not in shown
    assert "hunt" not in shown  # not left half visible at the cut
    assert shown.endswith("...")
    assert len(shown) == MAX_REMOTE_TEXT + 3


@pytest.mark.parametrize(
    ("url", "secure", "problem"),
    [
        ("https://ec2.example.com", "https", None),
        ("http://127.0.0.1:8080", "https", None),
        ("http://[::1]:8080", "https", None),
        ("http://localhost", "https", None),
        ("http://ec2.example.com", "https", "plain http is allowed only to a loopback address"),
        ("ftp://127.0.0.1", "https", "must be an https:// URL"),
        ("https://", "https", "must be an https:// URL"),
        ("wss://console.example/client", "wss", None),
        ("ws://console.example/client", "wss", "plain ws is allowed only to a loopback address"),
        ("https://console.example/client", "wss", "must be a wss:// URL"),
        (None, "https", None),  # not set
    ],
)
def test_endpoint_urls_are_secure_or_plain_to_loopback_only(url, secure, problem):
    assert endpoint_problem(url, secure) == problem


def test_is_loopback():
    assert [is_loopback(h) for h in ("127.0.0.2", "::1", "localhost")] == [True] * 3
    assert [is_loopback(h) for h in ("10.0.0.1", "bmc.example", "")] == [False] * 3
