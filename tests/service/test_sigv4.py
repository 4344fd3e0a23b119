"""SigV4 verification against requests signed by real botocore, and tampered copies."""

import time
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kdiag.errors import (
    AuthFailure,
    IncompleteSignature,
    MissingAuthenticationToken,
    RequestExpired,
)
from kdiag.service.sigv4 import IncomingRequest, ReplayCache, Verifier

KEY = "AKIAKDIAGTEST0000001"
SECRET = "s3cr3t/kdiag+test/0123456789abcdefghijklmn"
BODY = b"Action=SendDiagnosticInterrupt&Version=2016-11-15&InstanceId=i-0123456789abcdef0"
URL = "http://127.0.0.1:8787/"


def _lookup(key_id):
    return (SECRET, "alice") if key_id == KEY else None


def _verifier(**kw):
    kw.setdefault("regions", {"us-east-1"})
    return Verifier(_lookup, **kw)


def _incoming(aws_request, *, body=None, extra_headers=()):
    parts = urlsplit(aws_request.url)
    headers = [(k.lower(), v) for k, v in aws_request.headers.items()]
    if not any(k == "host" for k, _ in headers):
        headers.append(("host", parts.netloc))
    headers.extend(extra_headers)
    raw = aws_request.body if body is None else body
    return IncomingRequest(
        method=aws_request.method,
        scheme=parts.scheme,
        raw_path=parts.path or "/",
        raw_query=parts.query,
        headers=headers,
        body=raw or b"",
    )


def _signed(body=BODY, *, region="us-east-1", service="ec2", secret=SECRET, url=URL, headers=None):
    req = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            **(headers or {}),
        },
    )
    SigV4Auth(Credentials(KEY, secret), service, region).add_auth(req)
    return req


def _presigned(expires=60, params="Action=DescribeInstances&Version=2016-11-15"):
    req = AWSRequest(method="GET", url=f"{URL}?{params}")
    SigV4QueryAuth(Credentials(KEY, SECRET), "ec2", "us-east-1", expires=expires).add_auth(req)
    return req


def test_round_trip_header_form():
    verified = _verifier().verify(_incoming(_signed()))
    assert verified.principal == "alice"
    assert verified.access_key_id == KEY
    assert verified.region == "us-east-1"
    assert "host" in verified.signed_headers
    assert not verified.presigned


def test_tampered_body_fails():
    with pytest.raises(AuthFailure) as info:
        _verifier().verify(_incoming(_signed(), body=BODY.replace(b"abcdef0", b"abcdef1")))
    assert info.value.code == "AuthFailure"


def test_wrong_secret_fails():
    with pytest.raises(AuthFailure):
        _verifier().verify(_incoming(_signed(secret="not-the-secret")))


def test_unknown_key_fails():
    req = _signed()
    req.headers.replace_header(
        "Authorization", req.headers["Authorization"].replace(KEY, "AKIAUNKNOWN000000000")
    )
    with pytest.raises(AuthFailure) as info:
        _verifier().verify(_incoming(req))
    assert type(info.value) is AuthFailure


def test_tampered_signed_header_fails():
    req = _signed()
    incoming = _incoming(req)
    headers = [(k, "20260101T000000Z" if k == "x-amz-date" else v) for k, v in incoming.headers]
    with pytest.raises(AuthFailure):
        _verifier(clock=lambda: time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, 0))).verify(
            IncomingRequest("POST", "http", "/", "", headers, BODY)
        )


def test_host_with_port_is_part_of_the_signature():
    req = _signed()
    incoming = _incoming(req)
    headers = [(k, "127.0.0.1:9999" if k == "host" else v) for k, v in incoming.headers]
    with pytest.raises(AuthFailure):
        _verifier().verify(IncomingRequest("POST", "http", "/", "", headers, BODY))


def test_unsigned_headers_may_be_added():
    # A proxy adding headers the client did not sign does not break the signature.
    _verifier().verify(_incoming(_signed(), extra_headers=[("x-forwarded-for", "10.0.0.1")]))


def test_missing_signature():
    incoming = IncomingRequest("POST", "http", "/", "", [("host", "127.0.0.1:8787")], BODY)
    with pytest.raises(MissingAuthenticationToken):
        _verifier().verify(incoming)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA1 Credential=x",
        "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/ec2/aws4_request",
        "AWS4-HMAC-SHA256 garbage",
    ],
)
def test_malformed_authorization(authorization):
    incoming = IncomingRequest(
        "POST",
        "http",
        "/",
        "",
        [("host", "h"), ("x-amz-date", "20260101T000000Z"), ("authorization", authorization)],
        BODY,
    )
    with pytest.raises(IncompleteSignature):
        _verifier().verify(incoming)


def test_host_and_date_must_be_signed():
    req = _signed()
    auth = req.headers["Authorization"]
    incoming = _incoming(req)
    for signed in ("content-type;x-amz-date", "content-type;host"):
        forged = auth.split("SignedHeaders=")[0] + f"SignedHeaders={signed}, Signature=" + "0" * 64
        headers = [(k, forged if k == "authorization" else v) for k, v in incoming.headers]
        with pytest.raises(IncompleteSignature, match="must be signed"):
            _verifier().verify(IncomingRequest("POST", "http", "/", "", headers, BODY))


def test_region_not_served():
    with pytest.raises(AuthFailure, match="region"):
        _verifier().verify(_incoming(_signed(region="eu-west-1")))


def test_service_must_be_ec2():
    with pytest.raises(AuthFailure, match="service"):
        _verifier().verify(_incoming(_signed(service="iam")))


@pytest.mark.parametrize("offset", [-330, 330, -3600])
def test_clock_skew(offset):
    req = _signed()
    with pytest.raises(RequestExpired):
        _verifier(clock=lambda: time.time() + offset).verify(_incoming(req))


def test_skew_within_window_passes():
    _verifier(clock=lambda: time.time() + 200).verify(_incoming(_signed()))


def test_replay_is_rejected():
    verifier = _verifier()
    incoming = _incoming(_signed())
    verifier.verify(incoming)
    with pytest.raises(AuthFailure, match="already been used"):
        verifier.verify(incoming)


def test_failed_signature_does_not_poison_replay_cache():
    verifier = _verifier()
    req = _signed()
    with pytest.raises(AuthFailure):
        verifier.verify(_incoming(req, body=BODY + b"&x=1"))
    verifier.verify(_incoming(req))


def test_replay_cache_is_bounded_in_time_and_size():
    cache = ReplayCache(max_entries=2)
    cache.check_and_add("a", expires=10, now=0)
    cache.check_and_add("b", expires=20, now=0)
    with pytest.raises(AuthFailure):
        cache.check_and_add("c", expires=20, now=5)
    cache.check_and_add("c", expires=30, now=11)  # "a" expired and was dropped
    assert len(cache) == 2
    with pytest.raises(AuthFailure):
        cache.check_and_add("b", expires=20, now=12)


def test_content_sha256_must_match_body():
    import hashlib

    req = _signed(headers={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()})
    with pytest.raises(AuthFailure, match="SHA-256"):
        _verifier().verify(_incoming(req))
    good = _signed(headers={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    _verifier().verify(_incoming(good))


def test_unsigned_payload_is_rejected():
    req = _signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(AuthFailure):
        _verifier().verify(_incoming(req))


def test_presigned_round_trip():
    verified = _verifier().verify(_incoming(_presigned()))
    assert verified.presigned
    assert verified.principal == "alice"


def test_presigned_tampered_query_fails():
    incoming = _incoming(_presigned())
    tampered = IncomingRequest(
        incoming.method,
        incoming.scheme,
        incoming.raw_path,
        incoming.raw_query.replace("DescribeInstances", "RebootInstances"),
        incoming.headers,
        incoming.body,
    )
    with pytest.raises(AuthFailure):
        _verifier().verify(tampered)


def test_presigned_expiry():
    req = _presigned(expires=30)
    with pytest.raises(RequestExpired):
        _verifier(clock=lambda: time.time() + 31).verify(_incoming(req))
    _verifier(clock=lambda: time.time() + 15).verify(_incoming(req))


def test_presigned_replay_is_rejected():
    verifier = _verifier()
    incoming = _incoming(_presigned())
    verifier.verify(incoming)
    with pytest.raises(AuthFailure, match="already been used"):
        verifier.verify(incoming)


def test_header_and_query_together_are_rejected():
    signed = _incoming(_signed())
    presigned = _incoming(_presigned())
    mixed = IncomingRequest("POST", "http", "/", presigned.raw_query, signed.headers, BODY)
    with pytest.raises(IncompleteSignature):
        _verifier().verify(mixed)


def test_security_token_is_refused():
    req = AWSRequest(method="POST", url=URL, data=BODY)
    SigV4Auth(Credentials(KEY, SECRET, "token"), "ec2", "us-east-1").add_auth(req)
    with pytest.raises(AuthFailure, match="temporary"):
        _verifier().verify(_incoming(req))
