"""The gcp backend against the Compute Engine API's documented contract, at the transport
layer.

There is no local Compute Engine: the real google-cloud-compute client (and google-auth under
it) talks HTTP to a recording server on loopback that answers as the API reference documents
(``instances.get``; ``instances.sendDiagnosticInterrupt``: empty request body, empty
response, not an Operation; Google's error envelope) and as Google's OAuth token endpoint does
for a service-account JWT grant.  The JWT the SDK signs is verified with the key's public half
(an independent oracle).  Verified against the contract, not against a live project.
"""

import base64
import json
import os
import sys

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kdiag.backends import check_target
from kdiag.backends.base import InstanceState, Target
from kdiag.backends.gcp import COMPUTE_SCOPE, GCPBackend, GCPSettings, instance_state
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    TargetNotFound,
)
from tests.peers.http_recorder import HTTPRecorder, Recorded, Reply
from tests.peers.kdiag_serve import free_port

PROJECT, ZONE, NAME = "kdiag-lab-1", "europe-west1-b", "web-1"
BASE = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{NAME}"
TOKEN = "ya29.kdiag-test-token"


def _error(code, reason, message):
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason}]}}


class Compute:
    def __init__(self):
        self.status = "RUNNING"
        # An empty SendDiagnosticInterruptInstanceResponse, as Google's JSON APIs write one.
        self.interrupt = Reply(200, {})
        self.token = Reply(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        self.server = HTTPRecorder(
            {
                ("POST", "/token"): lambda r: self.token,
                ("GET", BASE): self._instance,
                ("POST", BASE + "/sendDiagnosticInterrupt"): lambda r: self.interrupt,
            }
        )

    def _instance(self, request: Recorded) -> Reply:
        body = {"kind": "compute#instance", "id": "4242", "name": NAME, "status": self.status}
        return Reply(200, body)

    def interrupts(self):
        return self.server.matching("POST", BASE + "/sendDiagnosticInterrupt")


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def compute(tmp_path, monkeypatch, key):
    fake = Compute()
    with fake.server:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        account = {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": f"kdiag@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": fake.server.url + "/token",
        }
        path = tmp_path / "sa.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(account, f)
        fake.creds = f"file:{path}"
        monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        yield fake


def _target(compute, **over):
    settings = {
        "project": PROJECT,
        "zone": ZONE,
        "instance": NAME,
        "credentials": compute.creds,
        "endpoint_url": compute.server.url,
        "timeout": 5,
        **over,
    }
    return Target("i-0000000000000beef", settings)


def _b64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_settings():
    raw = {"project": PROJECT, "zone": ZONE, "instance": NAME}
    assert check_target("gcp", raw) == GCPSettings(PROJECT, ZONE, NAME)
    for bad, message in [
        ({**raw, "project": "X"}, '"project": not a project id'),
        ({**raw, "zone": "europe"}, '"zone": not a zone'),
        ({**raw, "instance": "Web_1"}, '"instance": not an instance name'),
        ({**raw, "endpoint_url": "http://compute.example.com"}, "only to a loopback"),
        ({**raw, "timeout": 0}, '"timeout"'),
        ({**raw, "private_key": "x"}, "looks like a secret"),
    ]:
        with pytest.raises(ConfigError, match=message):
            GCPSettings.parse(bad)
    assert instance_state("TERMINATED") is InstanceState.STOPPED  # GCE's word for "off"
    assert instance_state("SUSPENDED") is InstanceState.PAUSED


def test_a_missing_extra_is_a_typed_error_naming_it(monkeypatch, compute):
    monkeypatch.setitem(sys.modules, "google.cloud.compute_v1", None)
    with GCPBackend() as backend, pytest.raises(BackendUnavailable, match=r"kdiag\[gcp\]"):
        backend.send_nmi(_target(compute))


def test_send_diagnostic_interrupt_as_documented(compute, key):
    with GCPBackend() as backend:
        assert backend.state(_target(compute)) is InstanceState.RUNNING
        result = backend.send_nmi(_target(compute))
    assert "sendDiagnosticInterrupt" in result.detail

    # google-cloud-compute has service accounts sign their own JWT (no token exchange):
    # the bearer is that JWT, checked with the key's public half (the oracle).
    assert compute.server.matching("POST", "/token") == []
    [post] = compute.interrupts()
    scheme, _, jwt = post.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    header, claims, signature = jwt.split(".")
    key.public_key().verify(
        _b64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert json.loads(_b64(header))["kid"] == "k1"
    claims = json.loads(_b64(claims))
    assert claims["iss"] == claims["sub"] == f"kdiag@{PROJECT}.iam.gserviceaccount.com"
    assert claims["scope"] == COMPUTE_SCOPE
    assert claims["exp"] - claims["iat"] <= 3600
    assert post.body == b""  # "The request body must be empty."
    assert post.query == {}
    assert post.headers["x-goog-request-params"] == (
        f"project={PROJECT}&zone={ZONE}&instance={NAME}"
    )
    [get] = compute.server.matching("GET", BASE)[-1:]
    assert get.headers["authorization"].startswith("Bearer ey")


def test_an_access_token_reference(compute, monkeypatch):
    monkeypatch.setenv("KDIAG_GCP_ACCESS_TOKEN", "ya29.from-env")
    with GCPBackend() as backend:
        backend.send_nmi(_target(compute, credentials="env:KDIAG_GCP"))
    assert compute.interrupts()[0].headers["authorization"] == "Bearer ya29.from-env"
    assert compute.server.matching("POST", "/token") == []


@pytest.mark.parametrize("status", ["TERMINATED", "STOPPING", "SUSPENDED", "STAGING"])
def test_an_instance_that_is_not_running_is_refused_before_sending(compute, status):
    compute.status = status
    with GCPBackend() as backend, pytest.raises(IncorrectState, match=f"{status}, not RUNNING"):
        backend.send_nmi(_target(compute))
    assert compute.interrupts() == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(404, _error(404, "notFound", "The resource was not found")), TargetNotFound),
        (Reply(403, _error(403, "forbidden", "Required permission")), BackendAuthFailure),
        (Reply(409, _error(409, "conflict", "live migration in progress")), IncorrectState),
        (Reply(400, _error(400, "resourceNotReady", "The resource is not ready")), IncorrectState),
        (Reply(400, _error(400, "invalid", "Invalid value for field")), BackendError),
        (Reply(429, _error(429, "rateLimitExceeded", "Quota exceeded")), BackendUnavailable),
        (Reply(500, _error(500, "backendError", "Internal error")), DeliveryUnconfirmed),
        (Reply(503, "<html>unavailable</html>"), DeliveryUnconfirmed),
        (Reply(200, "<html>a captive portal</html>"), DeliveryUnconfirmed),
        (Reply(200, b""), DeliveryUnconfirmed),  # not JSON: the SDK cannot read it
        (Reply(drop=True), DeliveryUnconfirmed),
        (Reply(200, {}, delay=3), DeliveryUnconfirmed),
    ],
)
def test_interrupt_refusals_map_onto_the_tree(compute, reply, expected):
    compute.interrupt = reply
    with GCPBackend() as backend, pytest.raises(BackendError) as err:
        backend.send_nmi(_target(compute, timeout=1))
    assert type(err.value) is expected
    assert len(compute.interrupts()) == 1  # never retried


def test_read_failures_are_never_unconfirmed(compute):
    compute.server.routes[("GET", BASE)] = Reply(500, _error(500, "backendError", "boom"))
    with GCPBackend() as backend, pytest.raises(BackendUnavailable):
        backend.state(_target(compute))
    compute.server.routes[("GET", BASE)] = Reply(200, {}, delay=3)
    with GCPBackend() as backend, pytest.raises(BackendTimeout):
        backend.send_nmi(_target(compute, timeout=1))
    assert compute.interrupts() == []


def test_a_401_is_refused_credentials_and_never_reaches_delivery(compute, monkeypatch):
    # google-auth's session refreshes the credentials and repeats a request answered 401
    # (at most twice): the server refused it unprocessed, so nothing was delivered.
    monkeypatch.setenv("KDIAG_GCP_ACCESS_TOKEN", "ya29.expired")
    compute.interrupt = Reply(401, _error(401, "authError", "Invalid Credentials"))
    with GCPBackend() as backend, pytest.raises(BackendUnavailable):
        backend.send_nmi(_target(compute, credentials="env:KDIAG_GCP"))
    assert 1 <= len(compute.interrupts()) <= 3


def test_token_and_connection_failures(compute, monkeypatch, tmp_path):
    monkeypatch.setenv("KDIAG_GCP_ACCESS_TOKEN", "ya29.from-env")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    adc = _target(compute)
    adc = Target(adc.instance_id, {k: v for k, v in adc.settings.items() if k != "credentials"})
    with GCPBackend() as backend, pytest.raises(BackendUnavailable, match="access token"):
        backend.send_nmi(adc)
    gone = f"http://127.0.0.1:{free_port()}"
    with GCPBackend() as backend, pytest.raises(BackendUnavailable, match="cannot connect"):
        backend.send_nmi(_target(compute, credentials="env:KDIAG_GCP", endpoint_url=gone))
    assert compute.interrupts() == []
