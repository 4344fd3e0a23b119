"""The openstack backend against Nova's documented contract, at the transport layer.

There is no local Nova: the real openstacksdk (and keystoneauth under it) talks HTTP to a
recording server on loopback that answers as Keystone v3 and Nova do in their API
references (token with a catalog, version discovery, ``GET /servers/{id}``, 202 to
``trigger_crash_dump``, ``os-instance-actions``).  The tests assert the exact requests
(URL, method, microversion header, body, token header) and the mapping of every refusal.
This is verified against the contract, not against a live cloud.
"""

import sys

import pytest

from kdiag.backends import check_target
from kdiag.backends.base import InstanceState, Target
from kdiag.backends.openstack import OpenStackBackend, OpenStackSettings, server_state
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
from tests.peers.http_recorder import HTTPRecorder, Recorded, Reply
from tests.peers.kdiag_serve import free_port

SERVER_ID = "9168b536-cd40-4630-b43f-b259807c6e87"
TOKEN = "gAAAAABkdiagTESTtoken0000"
COMPUTE = "/compute/v2.1"


class Nova:
    """Keystone + Nova as documented; tests change ``status``, ``max_version``, ``action``."""

    def __init__(self):
        self.status = "ACTIVE"
        self.max_version = "2.96"
        self.action = Reply(202, b"", {"x-openstack-request-id": "req-0f1e2d3c"})
        self.event = {"event": "compute_trigger_crash_dump", "result": "Success"}
        self.token_status = 201
        self.server = HTTPRecorder(
            {
                ("POST", "/identity/v3/auth/tokens"): self._token,
                ("GET", COMPUTE + "/?"): self._version,
                ("GET", "/compute/?"): self._version,
                ("GET", COMPUTE + f"/servers/{SERVER_ID}"): self._server,
                ("GET", COMPUTE + "/servers/web-1"): Reply(404, {"itemNotFound": {}}),
                ("GET", COMPUTE + "/servers/detail"): self._by_name,
                ("POST", COMPUTE + f"/servers/{SERVER_ID}/action"): lambda r: self.action,
                ("GET", COMPUTE + f"/servers/{SERVER_ID}/os-instance-actions/[^/]+"): (
                    self._instance_action
                ),
            }
        )

    def _token(self, request: Recorded) -> Reply:
        if self.token_status != 201:
            return Reply(self.token_status, {"error": {"code": self.token_status}})
        base = self.server.url
        catalog = [
            {
                "type": "compute",
                "name": "nova",
                "id": "c1",
                "endpoints": [
                    {
                        "id": "e1",
                        "interface": "public",
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": base + COMPUTE,
                    }
                ],
            }
        ]
        token = {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "user": {"id": "u1", "name": "kdiag", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "ops", "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": "r1", "name": "member"}],
            "catalog": catalog,
        }
        return Reply(201, {"token": token}, {"X-Subject-Token": TOKEN})

    def _version(self, request: Recorded) -> Reply:
        version = {
            "id": "v2.1",
            "status": "CURRENT",
            "version": self.max_version,
            "min_version": "2.1",
            "links": [{"rel": "self", "href": self.server.url + COMPUTE + "/"}],
        }
        return Reply(200, {"version": version})

    def _body(self):
        return {"id": SERVER_ID, "name": "web-1", "status": self.status, "links": []}

    def _server(self, request: Recorded) -> Reply:
        return Reply(200, {"server": self._body()})

    def _by_name(self, request: Recorded) -> Reply:
        found = [self._body()] if request.query.get("name") == ["web-1"] else []
        return Reply(200, {"servers": found})

    def _instance_action(self, request: Recorded) -> Reply:
        event = {**self.event, "start_time": "2026-01-01T00:00:00", "finish_time": "x"}
        action = {"action": "trigger_crash_dump", "request_id": "req-0f1e2d3c", "events": [event]}
        return Reply(200, {"instanceAction": action})

    def actions(self):
        return self.server.matching("POST", COMPUTE + f"/servers/{SERVER_ID}/action")


@pytest.fixture
def nova(tmp_path, monkeypatch):
    fake = Nova()
    with fake.server:
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(
            "clouds:\n"
            "  lab:\n"
            "    auth_type: v3password\n"
            "    auth:\n"
            f"      auth_url: {fake.server.url}/identity/v3\n"
            "      username: kdiag\n"
            "      password: not-a-real-password\n"
            "      project_name: ops\n"
            "      user_domain_name: Default\n"
            "      project_domain_name: Default\n"
            "    region_name: RegionOne\n"
            "    identity_api_version: 3\n"
            "  gone:\n"
            "    auth_type: v3password\n"
            "    auth:\n"
            f"      auth_url: http://127.0.0.1:{free_port()}/identity/v3\n"
            "      username: kdiag\n"
            "      password: not-a-real-password\n"
            "      project_name: ops\n"
            "      user_domain_name: Default\n"
            "      project_domain_name: Default\n"
        )
        clouds.chmod(0o600)
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        monkeypatch.setenv("HOME", str(tmp_path))  # no user-level clouds.yaml leaks in
        for var in [v for v in list(__import__("os").environ) if v.startswith("OS_")]:
            if var != "OS_CLIENT_CONFIG_FILE":
                monkeypatch.delenv(var)
        yield fake


def _target(**over):
    return Target("i-0000000000000abcd", {"cloud": "lab", "server": SERVER_ID, **over})


def test_settings():
    assert check_target("openstack", {"cloud": "lab", "server": "web-1"}) == OpenStackSettings(
        "lab", "web-1"
    )
    for raw, message in [
        ({"server": "x"}, '"cloud" is required'),
        ({"cloud": "lab"}, '"server" is required'),
        ({"cloud": "lab", "server": "../x"}, '"server": a server id or name'),
        ({"cloud": "lab", "server": "x", "timeout": -1}, '"timeout"'),
        ({"cloud": "lab", "server": "x", "password": "p"}, "looks like a secret"),
    ]:
        with pytest.raises(ConfigError, match=message):
            OpenStackSettings.parse(raw)
    assert server_state("ACTIVE") is InstanceState.RUNNING
    assert server_state("SHUTOFF") is InstanceState.STOPPED
    assert server_state("PAUSED") is InstanceState.PAUSED
    assert server_state("MIGRATING") is InstanceState.PAUSED


def test_a_missing_extra_is_a_typed_error_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "openstack", None)
    with (
        OpenStackBackend() as backend,
        pytest.raises(BackendUnavailable, match=r"kdiag\[openstack\]"),
    ):
        backend.send_nmi(_target())


def test_trigger_crash_dump_is_sent_as_documented_and_confirmed(nova):
    with OpenStackBackend() as backend:
        assert backend.state(_target()) is InstanceState.RUNNING
        result = backend.send_nmi(_target())
    assert "req-0f1e2d3c" in result.detail
    assert "delivered by the compute host" in result.detail

    token = nova.server.matching("POST", "/identity/v3/auth/tokens")[0].json()
    assert token["auth"]["identity"]["methods"] == ["password"]
    assert token["auth"]["identity"]["password"]["user"]["name"] == "kdiag"

    [action] = nova.actions()
    assert action.json() == {"trigger_crash_dump": None}
    assert action.headers["openstack-api-version"] == "compute 2.17"
    assert action.headers["x-openstack-nova-api-version"] == "2.17"
    assert action.headers["x-auth-token"] == TOKEN
    assert action.headers["content-type"] == "application/json"
    [follow] = nova.server.matching("GET", COMPUTE + f"/servers/{SERVER_ID}/os-instance-actions/.*")
    assert follow.path.endswith("/os-instance-actions/req-0f1e2d3c")
    assert follow.headers["openstack-api-version"] == "compute 2.51"
    # the password went only to Keystone, never into a compute request
    assert not any(b"not-a-real-password" in r.body for r in nova.server.requests[1:])


def test_a_server_found_by_name(nova):
    with OpenStackBackend() as backend:
        backend.send_nmi(_target(server="web-1"))
    assert len(nova.actions()) == 1


@pytest.mark.parametrize("status", ["SHUTOFF", "PAUSED", "BUILD", "ERROR"])
def test_a_server_that_is_not_active_is_refused_before_sending(nova, status):
    nova.status = status
    with (
        OpenStackBackend() as backend,
        pytest.raises(IncorrectState, match=f"{status}, not ACTIVE"),
    ):
        backend.send_nmi(_target())
    assert nova.actions() == []


def test_a_compute_api_older_than_2_17_is_unsupported(nova):
    nova.max_version = "2.16"
    with OpenStackBackend() as backend, pytest.raises(NMINotSupported, match=r"2\.16.*needs 2\.17"):
        backend.send_nmi(_target())
    assert nova.actions() == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(404, {"itemNotFound": {"message": "Instance could not be found"}}), TargetNotFound),
        (Reply(409, {"conflictingRequest": {"message": "Instance is locked"}}), IncorrectState),
        (Reply(400, {"badRequest": {"message": "not support crash dump"}}), NMINotSupported),
        (Reply(403, {"forbidden": {"message": "Policy doesn't allow"}}), BackendAuthFailure),
        (Reply(429, {"overLimit": {"message": "slow down"}}), BackendUnavailable),
        (Reply(500, {"computeFault": {"message": "boom"}}), DeliveryUnconfirmed),
        (Reply(503, "<html>down</html>"), DeliveryUnconfirmed),
        (Reply(200, {}), BackendError),  # the contract says 202: a 200 is no confirmation
        (Reply(drop=True), DeliveryUnconfirmed),
    ],
)
def test_action_refusals_map_onto_the_tree(nova, reply, expected):
    nova.action = reply
    with OpenStackBackend() as backend, pytest.raises(BackendError) as err:
        backend.send_nmi(_target(timeout=2))
    assert type(err.value) is expected
    assert len(nova.actions()) == 1  # never retried


def test_the_compute_hosts_error_verdict_is_a_failure(nova):
    nova.event = {"event": "compute_trigger_crash_dump", "result": "Error"}
    with OpenStackBackend() as backend, pytest.raises(BackendError, match="result Error") as err:
        backend.send_nmi(_target())
    assert type(err.value) is BackendError


def test_no_verdict_in_time_is_unconfirmed(nova):
    nova.event = {"event": "compute_trigger_crash_dump", "result": None, "finish_time": None}
    nova._instance_action = lambda request: Reply(404, {"itemNotFound": {}})
    nova.server.routes[("GET", COMPUTE + f"/servers/{SERVER_ID}/os-instance-actions/[^/]+")] = (
        nova._instance_action
    )
    with OpenStackBackend() as backend, pytest.raises(DeliveryUnconfirmed, match="no verdict"):
        backend.send_nmi(_target(timeout=1))
    assert len(nova.actions()) == 1


def test_a_slow_action_is_unconfirmed_and_a_slow_read_is_a_timeout(nova):
    nova.action = Reply(202, b"", {"x-openstack-request-id": "req-1"}, delay=3)
    with OpenStackBackend() as backend, pytest.raises(DeliveryUnconfirmed):
        backend.send_nmi(_target(timeout=1))
    assert len(nova.actions()) == 1
    slow = Reply(200, {"server": nova._body()}, delay=3)
    nova.server.routes[("GET", COMPUTE + f"/servers/{SERVER_ID}")] = slow
    with OpenStackBackend() as backend, pytest.raises(BackendTimeout):
        backend.state(_target(timeout=1))


@pytest.mark.parametrize(
    ("status", "expected"), [(401, BackendAuthFailure), (503, BackendUnavailable)]
)
def test_keystone_refusals(nova, status, expected):
    nova.token_status = status
    with OpenStackBackend() as backend, pytest.raises(BackendError) as err:
        backend.send_nmi(_target())
    assert type(err.value) is expected
    assert "not-a-real-password" not in str(err.value)
    assert nova.actions() == []


def test_an_unknown_cloud_and_an_unreachable_one(nova, tmp_path):
    with OpenStackBackend() as backend, pytest.raises(BackendUnavailable, match="nowhere"):
        backend.state(_target(cloud="nowhere"))
    with OpenStackBackend() as backend, pytest.raises(BackendUnavailable, match="cannot connect"):
        backend.send_nmi(_target(cloud="gone", timeout=2))
