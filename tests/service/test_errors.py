"""The one mapping from kdiag's error tree onto EC2 codes, and the envelopes."""

import pytest
from botocore.model import ServiceModel
from botocore.parsers import create_parser

import kdiag.errors as e
from kdiag.service.errors import ApiError, error_xml, to_api_error


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (e.AuthFailure("bad"), "AuthFailure", 401),
        (e.RequestExpired("old"), "RequestExpired", 400),
        (e.IncompleteSignature("x"), "IncompleteSignature", 400),
        (e.MissingAuthenticationToken("x"), "MissingAuthenticationToken", 403),
        (e.AccessDenied("no"), "UnauthorizedOperation", 403),
        (e.InvalidInstanceIDMalformed("x"), "InvalidInstanceID.Malformed", 400),
        (e.InvalidInstanceIDNotFound("x"), "InvalidInstanceID.NotFound", 400),
        (e.IncorrectState("x"), "IncorrectInstanceState", 400),
        (e.NMINotSupported("x"), "UnsupportedOperation", 400),
        (e.BackendTimeout("x"), "BackendTimeout", 409),
        (e.BackendUnavailable("/run/secret.sock refused"), "Unavailable", 503),
        (ApiError("RequestLimitExceeded", "slow down"), "RequestLimitExceeded", 503),
        (ApiError.dry_run(), "DryRunOperation", 412),
    ],
)
def test_mapping(exc, code, status):
    error = to_api_error(exc)
    assert (error.code, error.status) == (code, status)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("sqlite3.OperationalError: /home/x/.local/state/kdiag/kdiag.db locked"),
        e.BackendUnavailable("connect /run/vm/secret.sock: refused"),
        e.ConfigError("key file /etc/kdiag.key unreadable"),
    ],
)
def test_internals_never_leak(exc):
    error = to_api_error(exc)
    assert "/" not in error.message
    assert "sqlite" not in error.message


def test_error_envelope_parses_with_botocore():
    from botocore.loaders import Loader

    model = ServiceModel(Loader().load_service_model("ec2", "service-2"), "ec2")
    parser = create_parser(model.metadata["protocol"])
    body = error_xml(
        ApiError("InvalidInstanceID.NotFound", "The instance ID 'i-1' <does not> exist"), "rid-1"
    )
    parsed = parser.parse(
        {"status_code": 400, "headers": {}, "body": body},
        model.operation_model("SendDiagnosticInterrupt").output_shape,
    )
    assert parsed["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert parsed["Error"]["Message"] == "The instance ID 'i-1' <does not> exist"
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-1"
