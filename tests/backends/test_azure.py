"""The azure backend against the Serial Console's contract, at the transport layer.

There is no local Azure: the real azure-mgmt-serialconsole client (azure-core under it) and
websocket-client talk to a recording server on loopback that answers as Resource Manager and
the serial console do for ``az serial-console send nmi``: the subscription's console status,
the VM with its instance view, ``serialPorts/0/connect`` giving the console's WebSocket
address, the console session (a real RFC 6455 handshake and first frame), then
``adminCommand/nmi``.  The tests assert the exact requests and the typed errors for every
precondition.  Verified against the contract (the CLI extension's calls and the API
reference), not against a live subscription.
"""

import sys

import pytest

from kdiag.backends import check_target
from kdiag.backends.azure import COMPUTE_API_VERSION, AzureBackend, AzureSettings, power_state
from kdiag.backends.base import InstanceState, Target
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)
from tests.peers.http_recorder import HTTPRecorder, Recorded, Reply
from tests.peers.kdiag_serve import free_port

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
GROUP, VM = "ops-rg", "web-1"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.e30.kdiag-test"
VM_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Compute/virtualMachines/{VM}"
)
STATUS_PATH = f"/subscriptions/{SUB}/providers/Microsoft.SerialConsole/consoleServices/default"
CONNECT_PATH = (
    f"/subscriptions/{SUB}/resourcegroups/{GROUP}/providers/Microsoft.Compute/virtualMachines/"
    f"{VM}/providers/Microsoft.SerialConsole/serialPorts/0/connect"
)
CONSOLE = "/console/7f3a/client"
ADMIN = "/console/7f3a/adminCommand/nmi"


class Azure:
    def __init__(self):
        self.disabled = False
        self.power = "PowerState/running"
        self.boot = True
        self.socket_scheme = "ws"
        self.nmi = Reply(200, {"result": "ok"})
        self.server = HTTPRecorder(
            {
                ("GET", STATUS_PATH): lambda r: Reply(
                    200, {"properties": {"disabled": self.disabled}}
                ),
                ("GET", VM_PATH): self._vm,
                ("POST", CONNECT_PATH): self._connect,
                ("GET", CONSOLE): Reply(upgrade=True),
                ("POST", ADMIN): lambda r: self.nmi,
            }
        )

    def _vm(self, request: Recorded) -> Reply:
        statuses = [{"code": "ProvisioningState/succeeded"}, {"code": self.power}]
        properties = {
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": self.boot}},
            "instanceView": {"statuses": statuses},
        }
        return Reply(200, {"name": VM, "properties": properties})

    def _connect(self, request: Recorded) -> Reply:
        host = self.server.url.removeprefix("http://")
        return Reply(200, {"connectionString": f"{self.socket_scheme}://{host}{CONSOLE}"})

    def nmis(self):
        return self.server.matching("POST", ADMIN)


@pytest.fixture
def azure(monkeypatch):
    fake = Azure()
    monkeypatch.setenv("KDIAG_AZ_ACCESS_TOKEN", TOKEN)
    with fake.server:
        yield fake


def _target(azure, **over):
    settings = {
        "subscription": SUB,
        "resource_group": GROUP,
        "vm": VM,
        "credentials": "env:KDIAG_AZ",
        "arm_endpoint": azure.server.url,
        "timeout": 5,
        **over,
    }
    return Target("i-00000000000000a2e", settings)


def test_settings():
    raw = {"subscription": SUB, "resource_group": GROUP, "vm": VM}
    assert check_target("azure", raw) == AzureSettings(SUB, GROUP, VM)
    for bad, message in [
        ({**raw, "subscription": "prod"}, '"subscription": not a subscription id'),
        ({**raw, "resource_group": "a/b"}, '"resource_group"'),
        ({**raw, "vm": "-x"}, '"vm": not a VM name'),
        ({**raw, "arm_endpoint": "http://management.example.com"}, "only to a loopback"),
        ({**raw, "client_secret": "s"}, "looks like a secret"),
    ]:
        with pytest.raises(ConfigError, match=message):
            AzureSettings.parse(bad)
    assert power_state({"statuses": [{"code": "PowerState/deallocated"}]}) is InstanceState.STOPPED
    assert power_state({}) is InstanceState.PAUSED


def test_a_missing_extra_is_a_typed_error_naming_it(monkeypatch, azure):
    monkeypatch.setitem(sys.modules, "websocket", None)
    with AzureBackend() as backend, pytest.raises(BackendUnavailable, match=r"kdiag\[azure\]"):
        backend.send_nmi(_target(azure))


def test_the_nmi_goes_through_the_serial_console_as_the_cli_sends_it(azure):
    with AzureBackend() as backend:
        assert backend.state(_target(azure)) is InstanceState.RUNNING
        result = backend.send_nmi(_target(azure))
    assert "Serial Console" in result.detail

    [status] = azure.server.matching("GET", STATUS_PATH)
    assert status.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-version" in status.query
    vm = azure.server.matching("GET", VM_PATH)[-1]
    assert vm.query == {"$expand": ["instanceView"], "api-version": [COMPUTE_API_VERSION]}
    [connect] = azure.server.matching("POST", CONNECT_PATH)
    assert connect.headers["authorization"] == f"Bearer {TOKEN}"
    [console] = azure.server.matching("GET", CONSOLE)
    assert console.headers["upgrade"].lower() == "websocket"
    assert console.query == {"authorization": [TOKEN]}
    [nmi] = azure.nmis()
    body = nmi.json()
    assert body["command"] == "nmi"
    assert body["commandParameters"] == {}
    assert len(body["requestId"]) == 36
    assert body["requestId"] in result.detail
    assert nmi.headers["authorization"] == f"Bearer {TOKEN}"
    assert nmi.headers["content-type"] == "application/json"
    # the order the serial console requires: session open before the command
    order = [r.path for r in azure.server.requests]
    assert order.index(CONSOLE) < order.index(ADMIN)
    assert order.index(STATUS_PATH) < order.index(CONNECT_PATH)


@pytest.mark.parametrize(
    ("change", "expected", "message"),
    [
        ({"disabled": True}, NMINotSupported, "az serial-console enable"),
        ({"boot": False}, NMINotSupported, "az vm boot-diagnostics enable"),
        ({"power": "PowerState/deallocated"}, IncorrectState, "stopped, not running"),
        ({"power": "PowerState/starting"}, IncorrectState, "pending, not running"),
        ({"socket_scheme": "http"}, BackendError, "unexpected address"),
    ],
)
def test_preconditions_are_typed_errors_and_nothing_is_sent(azure, change, expected, message):
    for name, value in change.items():
        setattr(azure, name, value)
    with AzureBackend() as backend, pytest.raises(expected, match=message) as err:
        backend.send_nmi(_target(azure))
    assert type(err.value) is expected
    assert azure.nmis() == []
    assert azure.server.matching("GET", CONSOLE) == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(404, {"error": {"code": "NotFound", "message": "no session"}}), TargetNotFound),
        (
            Reply(403, {"error": {"code": "AuthorizationFailed", "message": "no"}}),
            BackendAuthFailure,
        ),
        (Reply(409, {"error": {"code": "Conflict", "message": "busy"}}), IncorrectState),
        (Reply(429, {"error": {"code": "TooManyRequests", "message": "slow"}}), BackendUnavailable),
        (
            Reply(500, {"error": {"code": "InternalServerError", "message": "x"}}),
            DeliveryUnconfirmed,
        ),
        (Reply(503, "<html/>"), DeliveryUnconfirmed),
        (Reply(drop=True), DeliveryUnconfirmed),
        (Reply(200, {}, delay=3), DeliveryUnconfirmed),
        (Reply(202, {}), DeliveryUnconfirmed),  # the contract's success is 200
    ],
)
def test_nmi_command_refusals_map_onto_the_tree(azure, reply, expected):
    azure.nmi = reply
    with AzureBackend() as backend, pytest.raises(BackendError) as err:
        backend.send_nmi(_target(azure, timeout=1))
    assert type(err.value) is expected
    assert len(azure.nmis()) == 1  # never retried (the CLI retries once)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, TargetNotFound), (403, BackendAuthFailure), (500, BackendUnavailable)],
)
def test_vm_read_refusals(azure, status, expected):
    azure.server.routes[("GET", VM_PATH)] = Reply(status, {"error": {"code": "X", "message": "m"}})
    with AzureBackend() as backend, pytest.raises(BackendError) as err:
        backend.send_nmi(_target(azure))
    assert type(err.value) is expected
    assert azure.nmis() == []


def test_credentials_and_an_unreachable_cloud(azure, monkeypatch):
    monkeypatch.delenv("KDIAG_AZ_ACCESS_TOKEN")
    monkeypatch.setenv("KDIAG_AZ_TENANT_ID", "t")
    with AzureBackend() as backend, pytest.raises(BackendUnavailable, match="client_secret"):
        backend.send_nmi(_target(azure))
    monkeypatch.setenv("KDIAG_AZ_ACCESS_TOKEN", TOKEN)
    gone = f"http://127.0.0.1:{free_port()}"
    with AzureBackend() as backend, pytest.raises(BackendUnavailable, match="cannot connect"):
        backend.send_nmi(_target(azure, arm_endpoint=gone))
