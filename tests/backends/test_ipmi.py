"""The ipmi backend against a real IPMI peer on loopback: pyghmi's own BMC server (the one
VirtualBMC is built on) in another process, scripted per test through a small JSON file and
counting every diagnostic interrupt it receives in a file of its own (the oracle).  Delivery
into a real guest through VirtualBMC is tests/e2e/test_redfish_ipmi.py."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdiag.backends.base import InstanceState, Target, get_backend
from kdiag.backends.ipmi import IPMIBackend, IPMISettings
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
)

IID = "i-0123456789abcdef0"
PASSWORD = "Ipmi-s3cr3t-pw"

# The scripted BMC: power state, the completion code of Chassis Control, a delay before
# answering it, and whether a diagnostic interrupt powers the machine off (a race).
BMC_CODE = r"""
import json, sys, time
import pyghmi.ipmi.bmc as bmc

script_path, count_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def script():
    with open(script_path) as f:
        return json.load(f)

class Scripted(bmc.Bmc):
    def get_power_state(self):
        return script()["power"]

    def pulse_diag(self):
        s = script()
        with open(count_path, "a") as f:
            f.write("diag\n")
        time.sleep(s.get("delay", 0))
        if s.get("off_after"):
            s["power"] = "off"
            with open(script_path, "w") as f:
                json.dump(s, f)
        return s.get("code", 0)

Scripted({"admin": sys.argv[4]}, port=port, address="127.0.0.1").listen(timeout=600)
"""


class BMC:
    def __init__(self, root: Path) -> None:
        self.script_path = root / "script.json"
        self.count_path = root / "diags"
        self.count_path.write_text("")
        self.set(power="on")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BMC_CODE, str(self.script_path), str(self.count_path),
             str(self.port), PASSWORD],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def set(self, **script: Any) -> None:
        base = {"power": "on", "code": 0, "delay": 0, "off_after": False}
        self.script_path.write_text(json.dumps({**base, **script}))

    @property
    def diags(self) -> int:
        return self.count_path.read_text().count("diag")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _udp_bound(port: int) -> bool:
    """Whether some socket is bound to UDP 127.0.0.1:``port`` (``/proc/net/udp``)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == wanted for line in list(table)[1:])


@pytest.fixture(scope="module")
def bmc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BMC]:
    server = BMC(tmp_path_factory.mktemp("ipmi-bmc"))
    # The server binds its socket at start-up: wait until the kernel lists it (a loaded
    # machine can take seconds to import pyghmi).
    deadline = time.monotonic() + 120
    while not _udp_bound(server.port):
        assert server.proc.poll() is None, "the BMC process exited at start-up"
        assert time.monotonic() < deadline, f"the BMC never bound 127.0.0.1:{server.port}"
        time.sleep(0.1)
    yield server
    server.stop()


@pytest.fixture
def bmc(bmc_server: BMC) -> BMC:
    bmc_server.set(power="on")
    bmc_server.count_path.write_text("")
    return bmc_server


@pytest.fixture
def backend() -> Iterator[IPMIBackend]:
    with IPMIBackend() as impl:
        yield impl


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KD_IPMI_USERNAME", "admin")
    monkeypatch.setenv("KD_IPMI_PASSWORD", PASSWORD)
    return "env:KD_IPMI"


def target(bmc: BMC, creds: str, **extra: Any) -> Target:
    return Target(IID, {"address": "127.0.0.1", "port": bmc.port, "credentials": creds, **extra})


def test_settings():
    parsed = IPMISettings.parse({"address": "bmc.example", "credentials": "name:bmc"})
    assert (parsed.port, str(parsed.credentials)) == (623, "name:bmc")
    assert IPMISettings.parse({"address": "::1", "port": 6230}).host == "::1"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, '"address" is required'),
        ({"address": "bmc example"}, "a host name or an IP address"),
        ({"address": "-bmc"}, "a host name or an IP address"),
        ({"address": "bmc", "port": 0}, "a UDP port"),
        ({"address": "bmc", "port": 70000}, "a UDP port"),
        ({"address": "bmc", "timeout": -1}, r"must be in \(0, 300\] seconds"),
        ({"address": "bmc", "password": PASSWORD}, "looks like a secret"),
        ({"address": "bmc", "credentials": PASSWORD}, "name:NAME"),
        ({"address": "bmc", "user": "admin"}, "unknown ipmi target setting"),
    ],
)
def test_bad_settings_are_refused_by_name(raw, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        IPMISettings.parse(raw)
    assert PASSWORD not in str(caught.value)


def test_registered_and_missing_extra_is_named(monkeypatch, bmc, creds):
    assert isinstance(get_backend("ipmi"), IPMIBackend)
    monkeypatch.setitem(sys.modules, "pyghmi", None)
    with IPMIBackend() as impl, pytest.raises(BackendUnavailable, match=r"kdiag\[ipmi\]"):
        impl.send_nmi(target(bmc, creds))
    assert bmc.diags == 0


def test_delivers_one_diagnostic_interrupt_despite_the_cipher_suite_mismatch(
    bmc, backend, creds, caplog
):
    caplog.set_level(logging.DEBUG)
    # pyghmi's BMC answers SHA-1 to pyghmi's SHA-256 request: without kdiag's handling the
    # login dies in struct.error (see test_pyghmi_alone_fails_against_its_own_bmc).
    assert backend.state(target(bmc, creds)) is InstanceState.RUNNING
    result = backend.send_nmi(target(bmc, creds))
    assert "completion code 00h" in result.detail
    backend.send_nmi(target(bmc, creds))  # a second call in the same process works too
    assert bmc.diags == 2
    assert "diagnostic interrupt acknowledged" in caplog.text  # the oracle sees the log ...
    assert PASSWORD not in caplog.text  # ... and no password in it


def test_pyghmi_alone_fails_against_its_own_bmc(bmc):
    """The mismatch, measured with pyghmi as shipped (in a fresh process)."""
    code = (
        "import sys\n"
        "from pyghmi.ipmi import command\n"
        "try:\n"
        "    command.Command(bmc='127.0.0.1', userid='admin', password=sys.argv[2],"
        " port=int(sys.argv[1]))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "else:\n"
        "    print('logged in')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bmc.port), PASSWORD],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.strip() == "error", done.stdout  # struct.error, in pyghmi 1.6


def test_powered_off_is_refused_and_nothing_is_sent(bmc, backend, creds):
    bmc.set(power="off")
    assert backend.state(target(bmc, creds)) is InstanceState.STOPPED
    with pytest.raises(IncorrectState, match="chassis power stopped, not on"):
        backend.send_nmi(target(bmc, creds))
    assert bmc.diags == 0


def test_a_wrong_password_is_a_typed_auth_error(bmc, backend, monkeypatch):
    monkeypatch.setenv("KD_BAD_USERNAME", "admin")
    monkeypatch.setenv("KD_BAD_PASSWORD", "wrong-password")
    with pytest.raises(BackendAuthFailure, match="refused the credentials") as caught:
        backend.send_nmi(target(bmc, "env:KD_BAD"))
    assert "wrong-password" not in str(caught.value)
    # (An unknown user name gets no answer at all from pyghmi's BMC: a BackendTimeout.)
    assert bmc.diags == 0


@pytest.mark.parametrize(
    ("code", "error"),
    [(0xC1, NMINotSupported), (0xCC, NMINotSupported), (0xC0, BackendError)],
)
def test_a_completion_code_other_than_00h_is_not_a_success(bmc, backend, creds, code, error):
    bmc.set(code=code)
    with pytest.raises(error, match=f"completion code {code:#04x}") as caught:
        backend.send_nmi(target(bmc, creds))
    assert not isinstance(caught.value, DeliveryUnconfirmed)
    assert bmc.diags == 1


def test_off_right_after_the_interrupt_is_unconfirmed(bmc, backend, creds):
    bmc.set(off_after=True)
    with pytest.raises(DeliveryUnconfirmed, match="chassis power is stopped right after"):
        backend.send_nmi(target(bmc, creds))
    assert bmc.diags == 1


def test_a_slow_bmc_gets_the_interrupt_once(bmc, creds):
    # pyghmi would retransmit the request after about a second, and this BMC would pulse
    # again for it; kdiag sends it once and waits.
    bmc.set(delay=2.5)
    with IPMIBackend() as impl:
        impl.send_nmi(target(bmc, creds, timeout=8))
    time.sleep(1.0)
    assert bmc.diags == 1


def test_no_answer_in_time_after_sending_is_unconfirmed(bmc, creds):
    bmc.set(delay=4.0)
    with IPMIBackend() as impl, pytest.raises(DeliveryUnconfirmed):
        impl.send_nmi(target(bmc, creds, timeout=2))
    time.sleep(3.0)
    assert bmc.diags == 1


def test_nobody_listening_is_a_timeout(backend, creds):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises((BackendTimeout, BackendUnavailable)):
        backend.send_nmi(
            Target(IID, {"address": "127.0.0.1", "port": port, "credentials": creds,
                         "timeout": 2})
        )  # fmt: skip
    # Its own 2 s, not the backend's default (10 s): generous for a loaded machine.
    assert time.monotonic() - started < 8.0


def test_credentials_are_required_and_bounded(bmc, backend, monkeypatch):
    with pytest.raises(BackendUnavailable, match='needs "credentials"'):
        backend.send_nmi(Target(IID, {"address": "127.0.0.1", "port": bmc.port}))
    monkeypatch.setenv("KD_LONG_USERNAME", "admin")
    monkeypatch.setenv("KD_LONG_PASSWORD", "x" * 21)
    with pytest.raises(BackendUnavailable, match="at most 20 bytes"):
        backend.send_nmi(target(bmc, "env:KD_LONG"))
    assert bmc.diags == 0
