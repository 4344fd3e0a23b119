"""End to end through a BMC: a lab guest defined in a private libvirtd, with two real BMC
emulators in front of it on loopback — sushy-tools' Redfish emulator (libvirt driver,
Basic authentication from a bcrypt htpasswd file) and VirtualBMC (IPMI over LAN, pyghmi's
BMC server inside).  kdiag sends through ``send_diagnostic_interrupt`` with named
credentials sealed in its store; the guest panics and kdump writes a vmcore, once through
each backend.  Then the domain is shut off: both backends must refuse with
IncorrectInstanceState where the peers themselves answer "success" (sushy-tools 204,
VirtualBMC completion code 00h).  A wrong password is BackendAuthFailure on both.

Two guests, booted concurrently once for the module while the peers start, one behind each
BMC; both NMIs go out together and both dumps are awaited together (a second NMI into one
guest would first wait for its reboot: measured 297 s for the module that way under load).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdiag.backends.base import BackendPool, InstanceState
from kdiag.errors import BackendAuthFailure, IncorrectState
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.lab.build import BuildInfo
from kdiag.store import Store
from tests.conftest import require_tool
from tests.peers.libvirtd import LabDomain, Libvirtd, running_libvirtd
from tests.peers.ports import free_port

pytestmark = pytest.mark.e2e

BOOT = 300.0
DUMP = 300.0
RF_NAME = "bmc-rf"
IPMI_NAME = "bmc-ipmi"
USER = "admin"
PASSWORD = "Bmc-e2e-pw-7"  # IPMI passwords are at most 20 bytes
BIN = Path(sys.executable).parent
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}
        ],
    }
)


@contextlib.contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_http(url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


@dataclass
class Peers:
    libvirtd: Libvirtd
    rf_domain: LabDomain
    ipmi_domain: LabDomain
    redfish_url: str
    ipmi_port: int
    store: Store
    caller: Caller
    redfish_id: str
    ipmi_id: str


def _sushy(root: Path, uri: str) -> tuple[contextlib.AbstractContextManager[None], str, Path]:
    import bcrypt

    htpasswd = root / "htpasswd"
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USER}:{digest}\n")
    config = root / "sushy.conf"
    config.write_text(f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n")
    port = free_port(socket.SOCK_STREAM)
    log = root / "sushy.log"
    args = [
        require_tool(str(BIN / "sushy-emulator")),
        "--config", str(config), "--libvirt-uri", uri,
        "--interface", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return _process(args, log), f"http://127.0.0.1:{port}", log


def _vbmc(root: Path, uri: str) -> tuple[contextlib.AbstractContextManager[None], int]:
    port = free_port(socket.SOCK_DGRAM)
    code = (
        "import sys\n"
        "from virtualbmc.vbmc import VirtualBMC\n"
        "VirtualBMC(sys.argv[1], sys.argv[2], int(sys.argv[3]), '127.0.0.1', sys.argv[4],"
        " sys.argv[5]).listen(timeout=3600)\n"
    )
    args = [sys.executable, "-c", code, USER, PASSWORD, str(port), IPMI_NAME, uri]
    return _process(args, root / "vbmc.log"), port


@pytest.fixture(scope="module")
def peers(lab_build: BuildInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    root = tmp_path_factory.mktemp("bmc-peers")
    with contextlib.ExitStack() as stack:
        daemon = stack.enter_context(running_libvirtd())
        domains = [
            daemon.define_lab_domain(lab_build, name, "default", memory="512M")
            for name in (RF_NAME, IPMI_NAME)
        ]
        for domain in domains:
            domain.start()  # both boot while the peers start
            stack.callback(domain.destroy)
        sushy, redfish_url, sushy_log = _sushy(root, daemon.uri)
        stack.enter_context(sushy)
        vbmc, ipmi_port = _vbmc(root, daemon.uri)
        stack.enter_context(vbmc)
        _wait_http(f"{redfish_url}/redfish/v1/", sushy_log)
        store = stack.enter_context(
            Store.open(f"sqlite:///{root}/kdiag.db", key_file=root / "kdiag.key")
        )
        store.set_credentials("bmc", username=USER, password=PASSWORD)
        store.set_credentials("bmc-wrong", username=USER, password="not-" + PASSWORD)
        user = store.create_user("oncall")
        store.put_user_policy(user, "nmi", POLICY)
        caller = Caller(user.account_id, user.name, user.id, None, "127.0.0.1")
        redfish = store.add_instance(
            backend="redfish",
            target={"url": redfish_url, "system": RF_NAME, "credentials": "name:bmc"},
        )
        ipmi = store.add_instance(
            backend="ipmi",
            target={"address": "127.0.0.1", "port": ipmi_port, "credentials": "name:bmc"},
        )
        for domain in domains:
            domain.wait_ready(BOOT)
        yield Peers(daemon, *domains, redfish_url, ipmi_port, store, caller, redfish.id, ipmi.id)


def _send(peers: Peers, instance_id: str, pool: BackendPool) -> str:
    result = send_diagnostic_interrupt(
        peers.store, InterruptRequest(peers.caller, instance_id), backends=pool
    )
    assert result.outcome == "sent"
    return result.detail


def _assert_nmi_dump(vmcore: Path) -> None:
    assert vmcore.read_bytes()[:8] == b"KDUMP   "
    dmesg = (vmcore.parent / "dmesg.txt").read_text(errors="replace")
    assert "Kernel panic - not syncing: NMI: Not continuing" in dmesg


def test_redfish_and_ipmi_each_produce_a_vmcore(peers: Peers) -> None:
    with BackendPool() as pool:
        assert "Nmi reset accepted" in _send(peers, peers.redfish_id, pool)
        assert "completion code 00h" in _send(peers, peers.ipmi_id, pool)
    _assert_nmi_dump(peers.rf_domain.wait_dump(DUMP))
    _assert_nmi_dump(peers.ipmi_domain.wait_dump(DUMP))
    rows = peers.store.audit_rows()
    assert [(r.outcome, r.backend) for r in rows] == [("sent", "redfish"), ("sent", "ipmi")]
    assert PASSWORD not in repr(rows)


def test_a_wrong_password_is_a_typed_auth_error(peers: Peers) -> None:
    with BackendPool() as pool:
        for backend in ("redfish", "ipmi"):
            target = dict(
                peers.store.get_instance(
                    peers.redfish_id if backend == "redfish" else peers.ipmi_id
                ).target
            )
            wrong = peers.store.add_instance(
                backend=backend, target={**target, "credentials": "name:bmc-wrong"}
            )
            with pytest.raises(BackendAuthFailure) as caught:
                send_diagnostic_interrupt(
                    peers.store, InterruptRequest(peers.caller, wrong.id), backends=pool
                )
            assert PASSWORD not in str(caught.value)
            rows = peers.store.audit_rows(instance_id=wrong.id)
            assert [(r.outcome, r.error_code) for r in rows] == [("failed", "BackendAuthFailure")]
            assert PASSWORD not in repr(rows)


def test_a_shut_off_domain_is_refused_where_the_peers_answer_success(peers: Peers) -> None:
    for domain in (peers.rf_domain, peers.ipmi_domain):
        domain.destroy()
        assert not domain.is_active()
    # The peers' own answers to the same request: success, for a domain that is off.
    import base64

    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    get = urllib.request.Request(f"{peers.redfish_url}/redfish/v1/Systems/{RF_NAME}", headers=auth)
    with urllib.request.urlopen(get, timeout=30) as answer:
        system = json.load(answer)
    assert system["PowerState"] == "Off"
    reset = system["Actions"]["#ComputerSystem.Reset"]
    assert "Nmi" in reset["ResetType@Redfish.AllowableValues"]
    request = urllib.request.Request(
        f"{peers.redfish_url}{reset['target']}",
        data=b'{"ResetType": "Nmi"}',
        headers={"Content-Type": "application/json", **auth},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 204  # sushy-tools: "done"
    with BackendPool() as pool:
        for instance_id in (peers.redfish_id, peers.ipmi_id):
            backend = pool[peers.store.get_instance(instance_id).backend]
            target = peers.store.target_of(peers.store.get_instance(instance_id))
            assert backend.state(target) is InstanceState.STOPPED
            with pytest.raises(IncorrectState, match="backend reports 'stopped'"):
                send_diagnostic_interrupt(
                    peers.store, InterruptRequest(peers.caller, instance_id), backends=pool
                )
            # and the backend's own check, the one that holds between state() and send
            with pytest.raises(IncorrectState, match=r"not On; NMI not sent|not on; NMI not"):
                backend.send_nmi(target)
    rows = [r for r in peers.store.audit_rows() if r.error_code == "IncorrectInstanceState"]
    assert len(rows) == 2
