"""The one mapping from kdiag's error tree onto EC2 codes, and the envelopes."""

import pytest
from botocore.model import ServiceModel
from botocore.parsers import create_parser

import kdiag.errors as e
from kdiag.service.errors import STATUS, ApiError, error_xml, to_api_error


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
        (e.BackendUnavailable("/run/secret.sock refused"), "BackendUnavailable", 503),
        (e.TargetNotFound("no domain 'vm7'"), "TargetNotFound", 400),
        (e.RequestLimitExceeded("slow down"), "RequestLimitExceeded", 503),
        (e.DryRunOperation(), "DryRunOperation", 412),
        (e.MissingParameter("x"), "MissingParameter", 400),
        (e.RequestEntityTooLarge("x"), "RequestEntityTooLarge", 413),
        (e.UnknownEndpoint("x"), "NotFound", 404),
        (e.MethodNotAllowed("x"), "MethodNotAllowed", 405),
        # no HTTP status of their own: the service answers InternalError
        (e.ConfigError("x"), "InternalError", 500),
        (e.BackendError("x"), "InternalError", 500),
        (e.NotACrashDump("x"), "InternalError", 500),
        (ValueError("x"), "InternalError", 500),
    ],
)
def test_mapping(exc, code, status):
    error = to_api_error(exc)
    assert (error.code, error.status) == (code, status)
    assert STATUS[code] == status


def test_the_answer_keeps_a_safe_message_and_replaces_the_rest():
    assert to_api_error(e.IncorrectState("instance i-1 is stopped")).message == (
        "instance i-1 is stopped"
    )
    assert to_api_error(e.DryRunOperation()).message == (
        "Request would have succeeded, but DryRun flag is set."
    )
    # The not-found id is the caller's own text, not the backend's (whose class hides it).
    assert to_api_error(e.InvalidInstanceIDNotFound("The instance ID 'i-1'")).message == (
        "The instance ID 'i-1'"
    )


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("sqlite3.OperationalError: /home/x/.local/state/kdiag/kdiag.db locked"),
        e.BackendUnavailable("connect /run/vm/secret.sock: refused"),
        e.BackendTimeout("qmp /run/vm/secret.sock: no answer"),
        e.TargetNotFound("libvirt domain at /var/lib/secret"),
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
        ApiError("InvalidInstanceID.NotFound", "The instance ID 'i-1' <does not> exist", 400),
        "rid-1",
    )
    parsed = parser.parse(
        {"status_code": 400, "headers": {}, "body": body},
        model.operation_model("SendDiagnosticInterrupt").output_shape,
    )
    assert parsed["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert parsed["Error"]["Message"] == "The instance ID 'i-1' <does not> exist"
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-1"
