"""The condition keys as AWS builds them, over real HTTP: ``aws:SecureTransport`` is always
present (false on plain HTTP), an IPv4 client seen by a dual-stack listener as
``::ffff:a.b.c.d`` is the IPv4 address for ``aws:SourceIp``, and an instance cannot carry two
tag keys that differ only in case (IAM compares condition keys without case)."""

from __future__ import annotations

import httpx
import pytest

from kdiag.authz import Caller, condition_context
from kdiag.errors import ConfigError
from kdiag.service import create_app
from kdiag.service.server import ServerThread
from kdiag.service.wire import peer_address
from tests.service.conftest import REGION, allow, run_service, signed_call


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with run_service(tmp_path_factory.mktemp("policy-context")) as svc:
        yield svc


def interrupt(service, creds, box, *, dry_run: bool) -> httpx.Response:
    path = f"/v1/instances/{box.id}/diagnostic-interrupt"
    return signed_call(service, creds, "POST", path, {"DryRun": dry_run}, nonce=str(dry_run))


def test_deny_unless_secure_transport_refuses_plain_http(service):
    box = service.store.add_instance(backend="fake", target={})
    guarded = allow()
    guarded["Statement"].append(
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    creds = service.user("tls-guardrail", guarded)
    before = list(service.backend.sent)
    response = interrupt(service, creds, box, dry_run=False)
    assert response.status_code == 403, response.text
    assert response.json()["Error"]["Code"] == "UnauthorizedOperation"
    assert service.backend.sent == before
    assert service.audit(response.json()["RequestId"]).outcome == "denied"


def test_secure_transport_is_never_absent_on_the_service(service):
    """A ``Null`` test on the key proves it is present (false), not missing."""
    box = service.store.add_instance(backend="fake", target={})
    guarded = allow()
    guarded["Statement"].append(
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"Null": {"aws:SecureTransport": "true"}},
        }
    )
    creds = service.user("tls-present", guarded)
    response = interrupt(service, creds, box, dry_run=True)
    assert response.status_code == 412, response.text


def test_secure_transport_follows_the_caller():
    caller = Caller("123456789012", "u", "AIDA", secure_transport=True)
    assert condition_context(caller, region=REGION)["aws:SecureTransport"] == "true"
    plain = Caller("123456789012", "u", "AIDA", secure_transport=False)
    assert condition_context(plain, region=REGION)["aws:SecureTransport"] == "false"
    local = Caller("123456789012", "u", "AIDA")  # the CLI acting locally: no transport
    assert "aws:SecureTransport" not in condition_context(local, region=REGION)


@pytest.mark.parametrize(
    ("seen", "policy_sees"),
    [
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("::FFFF:127.0.0.1", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("::1", "::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("192.0.2.7", "192.0.2.7"),
    ],
)
def test_peer_address_unmaps_ipv4(seen, policy_sees):
    assert peer_address(seen) == policy_sees


def test_ipv4_client_of_a_dual_stack_listener_is_ipv4_for_source_ip(service):
    box = service.store.add_instance(backend="fake", target={})
    creds = service.user(
        "from-loopback-v4",
        allow(Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}),
    )
    with ServerThread(create_app(service.ctx), host="::") as dual:
        # Linux dual-stack: an IPv4 client of an AF_INET6 socket is ::ffff:127.0.0.1
        on_v4 = type(service)(
            service.store, service.backend, service.ctx, f"http://127.0.0.1:{dual.port}"
        )
        response = interrupt(on_v4, creds, box, dry_run=True)
        assert response.status_code == 412, response.text
        row = service.audit(response.json()["RequestId"])
        assert row.source_ip == "127.0.0.1"
        # the same listener over IPv6 loopback: ::1 is not in 127.0.0.0/8
        on_v6 = type(service)(
            service.store, service.backend, service.ctx, f"http://[::1]:{dual.port}"
        )
        denied = interrupt(on_v6, creds, box, dry_run=False)
        assert denied.status_code == 403, denied.text
        assert service.audit(denied.json()["RequestId"]).source_ip == "::1"


def test_tag_keys_differing_only_in_case_are_refused(service):
    with pytest.raises(ConfigError, match="differ only in case"):
        service.store.add_instance(backend="fake", target={}, tags={"Env": "lab", "env": "prod"})
    with pytest.raises(ConfigError, match="differ only in case"):
        service.store.add_instance(backend="fake", target={}, tags={"OWNER": "a", "Owner": "b"})
    kept = service.store.add_instance(backend="fake", target={}, tags={"Env": "lab", "Env2": "x"})
    assert dict(kept.tags) == {"Env": "lab", "Env2": "x"}
