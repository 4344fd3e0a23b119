"""The redfish backend against Redfish services on loopback: a scripted BMC (real HTTP, every
request recorded: the oracle for what was sent, and how often) for the failure modes, and
sushy-tools' emulator for the protocol as a real peer answers it.  Delivery into a real guest
is tests/e2e/test_redfish.py."""

from __future__ import annotations

import base64
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kdiag.backends.base import InstanceState, Target, check_target, get_backend
from kdiag.backends.credentials import Credentials
from kdiag.backends.redfish import RedfishBackend, RedfishSettings, power_state
from kdiag.errors import (
    BackendAuthFailure,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)

IID = "i-0123456789abcdef0"
PASSWORD = "Rf-s3cr3t-hunter2"
SYSTEMS = "/redfish/v1/Systems"
RESET_TYPES = ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi"]


@dataclass
class Script:
    """How the scripted BMC behaves; what it saw."""

    power: str | None = "On"
    allowed: list[str] | None = field(default_factory=lambda: list(RESET_TYPES))
    action_info: bool = False  # allowed values in an ActionInfo resource instead
    has_reset: bool = True
    raw_system: Any = None  # answer this JSON for the system instead
    reset_status: int = 204
    reset_hang: float = 0.0  # seconds the POST waits before answering
    reset_drop: bool = False  # close the connection without an answer
    get_hang: float = 0.0
    user: str = "admin"
    password: str = PASSWORD
    posts: list[tuple[str, Any]] = field(default_factory=list)
    auth_seen: list[str | None] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _BMC

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        script = self.server.script
        header = self.headers.get("Authorization")
        self.server.script.auth_seen.append(header)
        want = "Basic " + base64.b64encode(f"{script.user}:{script.password}".encode()).decode()
        if header != want:
            self._send(401, {"error": {"code": "Base.1.0.GeneralError", "message": "denied"}})
            return False
        return True

    def do_GET(self) -> None:
        script = self.server.script
        path = self.path.rstrip("/")
        if path == "/redfish/v1":
            self._send(
                200,
                {
                    "@odata.id": "/redfish/v1/",
                    "Id": "Root",
                    "RedfishVersion": "1.5.0",
                    "Systems": {"@odata.id": SYSTEMS},
                },
            )
            return
        if script.get_hang:
            time.sleep(script.get_hang)
        if not self._authorized():
            return
        if path == SYSTEMS:
            self._send(
                200,
                {
                    "@odata.id": SYSTEMS,
                    "Members": [{"@odata.id": f"{SYSTEMS}/sys1"}],
                    "Members@odata.count": 1,
                },
            )
        elif path == f"{SYSTEMS}/sys1":
            raw = script.raw_system
            self._send(200, self._system() if raw is None else raw)
        elif path == f"{SYSTEMS}/sys1/ResetActionInfo":
            self._send(
                200,
                {
                    "@odata.id": path,
                    "Id": "ResetActionInfo",
                    "Parameters": [{"Name": "ResetType", "AllowableValues": script.allowed}],
                },
            )
        else:
            self._send(
                404, {"error": {"code": "Base.1.0.ResourceMissingAtURI", "message": "not found"}}
            )

    def _system(self) -> dict[str, Any]:
        script = self.server.script
        body: dict[str, Any] = {"@odata.id": f"{SYSTEMS}/sys1", "Id": "sys1", "Name": "sys1"}
        if script.power is not None:
            body["PowerState"] = script.power
        if script.has_reset:
            reset: dict[str, Any] = {"target": f"{SYSTEMS}/sys1/Actions/ComputerSystem.Reset"}
            if script.action_info:
                reset["@Redfish.ActionInfo"] = f"{SYSTEMS}/sys1/ResetActionInfo"
            elif script.allowed is not None:
                reset["ResetType@Redfish.AllowableValues"] = script.allowed
            body["Actions"] = {"#ComputerSystem.Reset": reset}
        return body

    def do_POST(self) -> None:
        script = self.server.script
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        if not self._authorized():
            return
        script.posts.append((self.path, body))
        if script.reset_hang:
            time.sleep(script.reset_hang)
        if script.reset_drop:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self._send(
            script.reset_status,
            None
            if script.reset_status == 204
            else {"error": {"code": "Base.1.0.ActionNotSupported", "message": "refused"}},
        )


class _BMC(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = Script()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def bmc_server() -> Iterator[_BMC]:
    server = _BMC()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def bmc(bmc_server: _BMC) -> _BMC:
    bmc_server.script = Script()
    return bmc_server


@pytest.fixture
def backend() -> Iterator[RedfishBackend]:
    with RedfishBackend() as impl:
        yield impl


@pytest.fixture
def creds_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KD_RF_USERNAME", "admin")
    monkeypatch.setenv("KD_RF_PASSWORD", PASSWORD)
    return "env:KD_RF"


def target(bmc: _BMC, creds: str, **extra: Any) -> Target:
    return Target(IID, {"url": bmc.url, "system": "sys1", "credentials": creds, **extra})


# --- settings ---------------------------------------------------------------------------------


def test_settings_parse_and_defaults():
    settings = RedfishSettings.parse(
        {"url": "https://bmc.example:8443/", "system": "1", "credentials": "name:bmc"}
    )
    assert settings.verify is True
    assert settings.base_url == "https://bmc.example:8443"
    assert str(settings.credentials) == "name:bmc"
    check_target("redfish", {"url": "http://127.0.0.1:8000", "system": "/redfish/v1/Systems/x"})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"system": "1"}, '"url" is required'),
        ({"url": "https://bmc"}, '"system" is required'),
        ({"url": "ftp://bmc", "system": "1"}, "an https:// URL"),
        ({"url": "http://bmc.example", "system": "1"}, "http:// only to a loopback"),
        ({"url": "https://admin@bmc", "system": "1"}, "no user in the URL"),
        ({"url": "https://bmc?x=1", "system": "1"}, "no query"),
        ({"url": "https://bmc:99999", "system": "1"}, "port"),
        ({"url": "https://bmc", "system": "a b"}, "system Id or"),
        ({"url": "https://bmc", "system": "/etc/passwd"}, "must start with /redfish/"),
        ({"url": "https://bmc", "system": "1", "timeout": 0}, r"must be in \(0, 300\] seconds"),
        ({"url": "https://bmc", "system": "1", "verify": "no"}, "true or false"),
        ({"url": "https://bmc", "system": "1", "credentials": "hunter2"}, "name:NAME"),
        ({"url": "https://bmc", "system": "1", "password": PASSWORD}, "looks like a secret"),
        ({"url": f"https://root:{PASSWORD}@bmc", "system": "1"}, "looks like a secret"),
        ({"url": "https://bmc", "system": "1", "extra": 1}, "unknown redfish target setting"),
    ],
)
def test_bad_settings_are_refused_by_name(raw, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        RedfishSettings.parse(raw)
    assert PASSWORD not in str(caught.value)


def test_power_states():
    assert power_state("On") is InstanceState.RUNNING
    assert power_state("Off") is InstanceState.STOPPED
    assert power_state("PoweringOn") is InstanceState.PENDING
    assert power_state("Paused") is InstanceState.PAUSED
    assert power_state("Sideways") is None


def test_registered_and_missing_extra_is_named(monkeypatch, bmc, creds_env):
    assert isinstance(get_backend("redfish"), RedfishBackend)
    monkeypatch.setitem(sys.modules, "sushy", None)  # as if kdiag[redfish] were not installed
    with RedfishBackend() as impl, pytest.raises(BackendUnavailable, match=r"kdiag\[redfish\]"):
        impl.send_nmi(target(bmc, creds_env))
    assert bmc.script.posts == []


# --- against the scripted BMC -------------------------------------------------------------------


def test_delivers_one_nmi_reset_with_basic_auth(bmc, backend, creds_env, caplog):
    caplog.set_level(logging.DEBUG)
    result = backend.send_nmi(target(bmc, creds_env))
    assert result.backend == "redfish"
    assert "sys1" in result.detail
    assert bmc.script.posts == [
        (f"{SYSTEMS}/sys1/Actions/ComputerSystem.Reset", {"ResetType": "Nmi"})
    ]
    assert backend.state(target(bmc, creds_env)) is InstanceState.RUNNING
    assert PASSWORD not in caplog.text


def test_the_system_by_path_and_reset_types_from_action_info(bmc, backend, creds_env):
    bmc.script.action_info = True
    backend.send_nmi(target(bmc, creds_env, system=f"{SYSTEMS}/sys1"))
    assert len(bmc.script.posts) == 1
    bmc.script.allowed = ["On", "ForceOff"]
    with pytest.raises(NMINotSupported, match="Nmi is not among its allowed reset types"):
        backend.send_nmi(target(bmc, creds_env))
    assert len(bmc.script.posts) == 1


@pytest.mark.parametrize(
    "case",
    [
        ({"allowed": ["On", "ForceOff"]}, NMINotSupported, "On, ForceOff"),
        ({"allowed": None}, NMINotSupported, "none listed"),  # sushy would assume all
        ({"has_reset": False}, NMINotSupported, "no reset action"),
        ({"power": "Off"}, IncorrectState, "is Off, not On"),
        ({"power": "PoweringOn"}, IncorrectState, "is PoweringOn, not On"),
        ({"power": None}, Exception, "power state"),
        ({"password": "other"}, BackendAuthFailure, "refused the credentials"),
    ],
)
def test_refused_before_anything_is_sent(bmc, backend, creds_env, case):
    change, error, message = case
    for key, value in change.items():
        setattr(bmc.script, key, value)
    with pytest.raises(error, match=message) as caught:
        backend.send_nmi(target(bmc, creds_env))
    assert not isinstance(caught.value, DeliveryUnconfirmed)
    assert PASSWORD not in str(caught.value)
    assert bmc.script.posts == []


def test_an_unknown_system_is_target_not_found(bmc, backend, creds_env):
    with pytest.raises(TargetNotFound, match="no such system"):
        backend.send_nmi(target(bmc, creds_env, system="nope"))
    assert bmc.script.posts == []


def test_the_bmc_refusing_the_post_is_not_a_success(bmc, backend, creds_env):
    bmc.script.reset_status = 400
    with pytest.raises(Exception, match="refused the Nmi reset") as caught:
        backend.send_nmi(target(bmc, creds_env))
    assert not isinstance(caught.value, DeliveryUnconfirmed)
    bmc.script.reset_status = 501
    with pytest.raises(NMINotSupported):
        backend.send_nmi(target(bmc, creds_env))
    assert len(bmc.script.posts) == 2  # one each: never retried


def test_a_post_without_an_answer_is_unconfirmed_and_never_retried(bmc, creds_env):
    bmc.script.reset_hang = 3.0
    with RedfishBackend() as impl:
        started = time.monotonic()
        with pytest.raises(DeliveryUnconfirmed, match="unconfirmed"):
            impl.send_nmi(target(bmc, creds_env, timeout=1.0))
        # Raised at all proves the 1 s deadline: the BMC answers (a success) after 3 s.
        assert time.monotonic() - started >= 1.0
    time.sleep(3.0)  # sushy would have retried by now
    assert len(bmc.script.posts) == 1


def test_a_connection_dropped_after_the_post_is_unconfirmed_and_never_retried(
    bmc, backend, creds_env
):
    bmc.script.reset_drop = True
    with pytest.raises(DeliveryUnconfirmed, match="after the Nmi reset was sent"):
        backend.send_nmi(target(bmc, creds_env))
    time.sleep(2.5)  # sushy's retry delay is 2 s
    assert len(bmc.script.posts) == 1


def test_a_silent_bmc_is_a_timeout_and_nothing_is_sent_later(bmc, creds_env):
    bmc.script.get_hang = 2.0
    # The HTTP read timeout and the call's own deadline are both 1 s: either may say it.
    with RedfishBackend() as impl, pytest.raises(BackendTimeout, match=r"no answer in (1 s|time)"):
        impl.send_nmi(target(bmc, creds_env, timeout=1.0))
    time.sleep(4.5)  # the abandoned worker got its answers by now: it must not POST
    assert bmc.script.posts == []


def test_nobody_listening_is_unavailable(backend, creds_env):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        backend.send_nmi(
            Target(
                IID, {"url": f"http://127.0.0.1:{port}", "system": "1", "credentials": creds_env}
            )
        )
    # Not retried: sushy's retries sleep 2 s each (at least 4 s for the two it would make).
    assert time.monotonic() - started < 3.9


def test_credentials_are_needed_whole_and_resolved_at_delivery(bmc, backend, monkeypatch):
    monkeypatch.setenv("KD_HALF_USERNAME", "admin")
    with pytest.raises(BackendUnavailable, match="hold no username and password"):
        backend.send_nmi(target(bmc, "env:KD_HALF"))
    with pytest.raises(BackendUnavailable, match="kept in kdiag's database"):
        backend.send_nmi(target(bmc, "name:bmc1"))  # no vault on this Target

    class Vault:
        def open_credentials(self, name: str) -> Credentials:
            assert name == "bmc1"
            return Credentials("credentials bmc1", {"username": "admin", "password": PASSWORD})

    vaulted = Target(
        IID, {"url": bmc.url, "system": "sys1", "credentials": "name:bmc1"}, vault=Vault()
    )
    backend.send_nmi(vaulted)
    assert len(bmc.script.posts) == 1


@pytest.mark.parametrize(
    "raw",
    [
        {"@odata.id": f"{SYSTEMS}/sys1", "Id": "sys1", "PowerState": "On", "Actions": "oops"},
        {
            "@odata.id": f"{SYSTEMS}/sys1",
            "Id": "sys1",
            "PowerState": "On",
            "Actions": {
                "#ComputerSystem.Reset": {"target": 5, "ResetType@Redfish.AllowableValues": "Nmi"}
            },
        },
        [1, 2, 3],
        "not an object",
    ],
)
def test_a_malformed_system_is_a_typed_error_and_nothing_is_sent(bmc, backend, creds_env, raw):
    bmc.script.raw_system = raw
    with pytest.raises((BackendUnavailable, NMINotSupported)) as caught:
        backend.send_nmi(target(bmc, creds_env))
    assert not isinstance(caught.value, DeliveryUnconfirmed)
    assert bmc.script.posts == []
