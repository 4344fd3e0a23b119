"""The aws backend: its settings, the missing extra, every error mapping through botocore's
Stubber, and the reply check against a real HTTP server (a 200 without
``<return>true</return>`` is no success).  The end-to-end tests against a real
EC2-compatible endpoint (another ``kdiag serve``) are in test_aws_front.py."""

import sys

import pytest
from botocore.stub import Stubber

from kdiag.backends import check_target
from kdiag.backends.aws import AWSBackend, AWSSettings
from kdiag.backends.base import InstanceState, Target
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)
from tests.peers.http_recorder import HTTPRecorder, Reply

REMOTE = "i-0123456789abcdef0"
SETTINGS = {
    "region": "us-east-1",
    "instance_id": REMOTE,
    "endpoint_url": "http://127.0.0.1:9",
    "credentials": "env:KDIAG_TEST_AWS",
}


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch):
    for var in [v for v in list(__import__("os").environ) if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("KDIAG_TEST_AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv(
        "KDIAG_TEST_AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    )


def _target(**over):
    return Target("i-00000000000000042", {**SETTINGS, **over})


def test_settings_parse_and_refuse():
    assert check_target("aws", SETTINGS) == AWSSettings(
        "us-east-1", REMOTE, "http://127.0.0.1:9", AWSSettings.parse(SETTINGS).credentials
    )
    assert AWSSettings.parse({"region": "eu-west-1", "instance_id": "i-0123abcd"}).seconds == 10
    cases = [
        ({"instance_id": REMOTE}, '"region" is required'),
        ({"region": "us-east-1"}, '"instance_id" is required'),
        ({**SETTINGS, "region": "Mars"}, '"region": not a region name'),
        ({**SETTINGS, "instance_id": "i-XYZ"}, '"instance_id": not i- followed by'),
        ({**SETTINGS, "endpoint_url": "http://ec2.example.com"}, "plain http is allowed only"),
        ({**SETTINGS, "endpoint_url": "ftp://127.0.0.1"}, "must be an https:// URL"),
        ({**SETTINGS, "timeout": 0}, '"timeout": must be in'),
        ({**SETTINGS, "timeout": 301}, '"timeout": must be in'),
        ({**SETTINGS, "credentials": "AKIA...:secret"}, '"credentials"'),
        ({**SETTINGS, "secret_access_key": "x"}, "looks like a secret"),
        ({**SETTINGS, "endpoint_url": "https://u:p@127.0.0.1"}, "looks like a secret"),
        ({**SETTINGS, "profile": "x"}, 'unknown aws target setting "profile"'),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message):
            AWSSettings.parse(raw)


def test_a_missing_extra_is_a_typed_error_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with AWSBackend() as backend, pytest.raises(BackendUnavailable, match=r"kdiag\[aws\]"):
        backend.send_nmi(_target())


def test_credentials_are_resolved_at_delivery_and_never_shown(monkeypatch):
    monkeypatch.delenv("KDIAG_TEST_AWS_SECRET_ACCESS_KEY")
    with AWSBackend() as backend, pytest.raises(BackendUnavailable) as err:
        backend.send_nmi(_target())
    assert "secret_access_key" in str(err.value)
    monkeypatch.delenv("KDIAG_TEST_AWS_ACCESS_KEY_ID")
    with AWSBackend() as backend, pytest.raises(BackendUnavailable, match="no KDIAG_TEST_AWS_"):
        backend.state(_target())


def _stubbed(backend, target, which):
    clients = backend._get_clients(target, AWSSettings.stored(target))
    stub = Stubber(getattr(clients, which))
    stub.activate()
    return stub


SEND_ERRORS = [
    ("UnsupportedOperation", 400, NMINotSupported),
    ("IncorrectInstanceState", 400, IncorrectState),
    ("InvalidInstanceID.NotFound", 400, TargetNotFound),
    ("InvalidInstanceID.Malformed", 400, TargetNotFound),
    ("RequestLimitExceeded", 503, BackendUnavailable),
    ("Throttling", 400, BackendUnavailable),
    ("AuthFailure", 401, BackendAuthFailure),
    ("UnauthorizedOperation", 403, BackendAuthFailure),
    ("RequestExpired", 400, BackendAuthFailure),
    ("Unavailable", 503, BackendUnavailable),
    ("BackendUnavailable", 503, BackendUnavailable),
    ("DeliveryUnconfirmed", 409, DeliveryUnconfirmed),
    ("BackendTimeout", 409, DeliveryUnconfirmed),
    ("InternalError", 500, DeliveryUnconfirmed),
    ("ServiceUnavailable", 503, BackendUnavailable),
    ("SomethingNew", 400, BackendError),
]


@pytest.mark.parametrize(("code", "status", "expected"), SEND_ERRORS)
def test_send_errors_map_onto_the_tree(code, status, expected):
    target = _target()
    with AWSBackend() as backend:
        stub = _stubbed(backend, target, "send")
        stub.add_client_error(
            "send_diagnostic_interrupt",
            service_error_code=code,
            service_message="said <b>so</b> https://u:pw@host/x",
            http_status_code=status,
            expected_params={"InstanceId": REMOTE},
        )
        with pytest.raises(BackendError) as err:
            backend.send_nmi(target)
        stub.assert_no_pending_responses()
    assert type(err.value) is expected
    assert code in str(err.value)
    assert "pw@" not in str(err.value)  # the endpoint's text is masked
    assert err.value.target == target.instance_id


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("InvalidInstanceID.NotFound", 400, TargetNotFound),
        ("AuthFailure", 401, BackendAuthFailure),
        ("RequestLimitExceeded", 503, BackendUnavailable),
        # A read that failed is never "unconfirmed": nothing was being sent.
        ("InternalError", 500, BackendUnavailable),
        ("DeliveryUnconfirmed", 409, BackendError),
    ],
)
def test_state_errors_map_onto_the_tree(code, status, expected):
    target = _target()
    with AWSBackend() as backend:
        stub = _stubbed(backend, target, "read")
        stub.add_client_error("describe_instances", code, "no", status)
        with pytest.raises(BackendError) as err:
            backend.state(target)
    assert type(err.value) is expected


def _described(state, iid=REMOTE):
    instance = {"InstanceId": iid, "State": {"Code": 16, "Name": state}}
    return {"Reservations": [{"Instances": [instance]}]}


def test_state_reads_describe_instances():
    target = _target()
    with AWSBackend() as backend:
        stub = _stubbed(backend, target, "read")
        params = {"InstanceIds": [REMOTE]}
        stub.add_response("describe_instances", _described("running"), params)
        stub.add_response("describe_instances", _described("stopping"), params)
        stub.add_response("describe_instances", _described("hibernating"), params)
        stub.add_response("describe_instances", _described("running", "i-0000000000000000f"))
        stub.add_response("describe_instances", {"Reservations": []})
        assert backend.state(target) is InstanceState.RUNNING
        assert backend.state(target) is InstanceState.STOPPING
        with pytest.raises(BackendError, match="unknown instance state 'hibernating'"):
            backend.state(target)
        for _ in range(2):
            with pytest.raises(TargetNotFound, match="does not list"):
                backend.state(target)
    assert backend.supports_nmi(target)
    assert not backend.supports_nmi(Target("i-00000000", SETTINGS, arch="arm64"))


def _ec2_server(*replies):
    return HTTPRecorder({("POST", "/"): lambda request: replies[0]})


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            200,
            "<SendDiagnosticInterruptResponse><requestId>r-1</requestId>"
            "<return>false</return></SendDiagnosticInterruptResponse>",
        ),
        Reply(
            200,
            "<SendDiagnosticInterruptResponse><requestId>r-1</requestId>"
            "</SendDiagnosticInterruptResponse>",
        ),
        Reply(500, "not xml at all"),
        Reply(502, ""),
        Reply(drop=True),
    ],
    ids=["return-false", "no-return", "500-garbage", "502-empty", "dropped"],
)
def test_only_a_200_with_return_true_is_a_success_and_nothing_is_retried(reply):
    with HTTPRecorder({("POST", "/"): reply}) as server, AWSBackend() as backend:
        target = _target(endpoint_url=server.url, timeout=2)
        with pytest.raises(DeliveryUnconfirmed, match="unconfirmed"):
            backend.send_nmi(target)
        assert len(server.requests) == 1  # one attempt, never retried
        sent = server.requests[0]
    assert sent.body.startswith(b"Action=SendDiagnosticInterrupt&Version=2016-11-15")
    assert f"InstanceId={REMOTE}".encode() in sent.body
    assert sent.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
    )
    assert "/us-east-1/ec2/aws4_request" in sent.headers["authorization"]


def test_a_200_with_return_true_is_accepted_and_names_the_request():
    ok = Reply(
        200,
        '<SendDiagnosticInterruptResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        "<requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><return>true</return>"
        "</SendDiagnosticInterruptResponse>",
    )
    with HTTPRecorder({("POST", "/"): ok}) as server, AWSBackend() as backend:
        result = backend.send_nmi(_target(endpoint_url=server.url))
    assert result.backend == "aws"
    assert "59dbff89-35bd-4eac-99ed-be587EXAMPLE" in result.detail


def test_unreachable_and_slow_reads_are_not_unconfirmed():
    with AWSBackend() as backend:
        with pytest.raises(BackendUnavailable, match="cannot connect"):
            backend.send_nmi(_target(timeout=1))  # port 9: nothing listens
        slow = Reply(200, "<x/>", delay=3)
        with HTTPRecorder({("POST", "/"): slow}) as server, pytest.raises(BackendTimeout):
            backend.state(_target(endpoint_url=server.url, timeout=0.5))
