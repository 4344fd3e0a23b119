"""QMPBackend against a real QEMU (``-S``, no guest, a QMP UNIX socket)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu.qmp import QMPClient

from kdiag.backends import BackendPool, InstanceState, Target
from kdiag.backends.qmp import QMPBackend, QMPSettings, instance_state, parse_address
from kdiag.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
)
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store
from tests.backends.qmp_peer import QMPPeer
from tests.conftest import require_tool
from tests.dbfixtures import state_dir

__all__ = ("state_dir",)


class Qemu:
    def __init__(self, proc: subprocess.Popen[bytes], sock: Path):
        self.proc = proc
        self.sock = sock

    def target(self, **settings) -> Target:
        return Target("i-0123456789abcdef0", {"address": str(self.sock), **settings})

    def hmp(self, command: str) -> object:
        """Run one QMP command on our own connection (the test's hand on the VM)."""

        async def run() -> object:
            client = QMPClient("test")
            await client.connect(str(self.sock))
            try:
                return await client.execute(command)
            finally:
                await client.disconnect()

        return asyncio.run(run())


def _accepting(sock: Path) -> bool:
    """QEMU binds its QMP socket a moment before it listens: the file alone is no proof (a
    connection then is refused)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(sock))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    return True


def _start(
    tmp_path: Path, machine: list[str], binary: str = "qemu-system-x86_64"
) -> Iterator[Qemu]:
    qemu = require_tool(binary)
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        [
            qemu,
            *machine,
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-qmp",
            f"unix:{sock},server=on,wait=off",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not _accepting(sock):
            if proc.poll() is not None:
                pytest.fail(f"qemu exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail("qemu did not accept connections on its QMP socket in 30 s")
            time.sleep(0.02)
        yield Qemu(proc, sock)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def pc(tmp_path: Path) -> Iterator[Qemu]:
    yield from _start(tmp_path, ["-M", "pc", "-m", "32", "-accel", "tcg"])


@pytest.fixture
def none_machine(tmp_path: Path) -> Iterator[Qemu]:
    yield from _start(tmp_path, ["-machine", "none"])


@pytest.fixture
def arm64_virt(tmp_path: Path) -> Iterator[Qemu]:
    """QEMU's arm64 ``virt`` machine without firmware or kernel: the vCPU runs nothing, but
    QMP answers exactly as for a booted arm64 guest."""
    yield from _start(
        tmp_path, ["-M", "virt", "-cpu", "max", "-m", "64", "-accel", "tcg"], "qemu-system-aarch64"
    )


@pytest.fixture
def backend() -> Iterator[QMPBackend]:
    with QMPBackend(timeout=10) as b:
        yield b


def test_states_and_nmi_on_a_real_vm(pc, backend):
    target = pc.target()
    # -S: created but not started; an NMI now would only be queued, so it is refused.
    assert backend.state(target) == "pending"
    with pytest.raises(IncorrectState, match="prelaunch"):
        backend.send_nmi(target)
    pc.hmp("cont")
    assert backend.state(target) == "running"
    result = backend.send_nmi(target)
    assert result.backend == "qmp"
    assert "accepted" in result.detail
    # Many sessions in a row: each call opens and closes its own.
    for _ in range(3):
        backend.send_nmi(target)
    pc.hmp("stop")
    assert backend.state(target) is InstanceState.PAUSED
    with pytest.raises(IncorrectState, match="paused"):
        backend.send_nmi(target)


def test_machine_without_nmi_is_unsupported(none_machine, backend):
    target = none_machine.target()
    none_machine.hmp("cont")
    assert backend.state(target) == "running"
    with pytest.raises(NMINotSupported) as info:
        backend.send_nmi(target)
    assert info.value.code == "UnsupportedOperation"


def test_arm64_virt_refuses_nmi_as_unsupported(arm64_virt, backend):
    """QEMU 7.2 answers ``inject-nmi`` on ``-M virt`` with GenericError "this feature or
    command is not currently supported": the backend says UnsupportedOperation, not sent."""
    target = arm64_virt.target()
    arm64_virt.hmp("cont")
    assert backend.state(target) is InstanceState.RUNNING
    with pytest.raises(NMINotSupported, match="cannot inject an NMI") as info:
        backend.send_nmi(target)
    assert info.value.code == "UnsupportedOperation"
    assert "not currently supported" in str(info.value)
    # the refusal leaves the machine running and the backend usable
    assert backend.state(target) is InstanceState.RUNNING


def test_unreachable_socket(tmp_path, backend):
    target = Target("i-0123456789abcdef0", {"address": str(tmp_path / "absent.sock")})
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        backend.state(target)
    with pytest.raises(BackendUnavailable):
        backend.send_nmi(target)
    with pytest.raises(BackendUnavailable, match='"address" is required'):
        backend.state(Target("i-0123456789abcdef0", {}))


def test_silent_peer_times_out(tmp_path, backend):
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    try:
        target = Target("i-0123456789abcdef0", {"address": str(path), "timeout": 0.3})
        with pytest.raises(BackendTimeout):
            backend.state(target)
        with pytest.raises(BackendTimeout):
            backend.send_nmi(target)
    finally:
        server.close()


def test_dead_qemu_is_unavailable(pc, backend):
    pc.proc.kill()
    pc.proc.wait()
    with pytest.raises(BackendUnavailable):
        backend.state(pc.target())


def test_supports_nmi_by_architecture(backend):
    assert backend.supports_nmi(Target("i-0123456789abcdef0", {"address": "x"}, arch="x86_64"))
    assert not backend.supports_nmi(Target("i-0123456789abcdef0", {"address": "x"}, arch="arm64"))


def test_addresses_and_states():
    assert parse_address("/run/vm.qmp") == "/run/vm.qmp"
    assert parse_address("127.0.0.1:4444") == ("127.0.0.1", 4444)
    assert parse_address("[::1]:4444") == ("::1", 4444)
    assert parse_address("./rel:1") == "./rel:1"
    assert instance_state("running") is InstanceState.RUNNING
    assert instance_state("prelaunch") is InstanceState.PENDING
    assert instance_state("shutdown") is InstanceState.STOPPED
    assert instance_state("guest-panicked") is InstanceState.PAUSED


def test_settings_are_parsed_once_with_errors_naming_the_field(backend):
    assert backend.parse_target({"address": "/run/vm.qmp"}) == QMPSettings("/run/vm.qmp")
    assert backend.parse_target({"address": "h:1", "timeout": 3}).timeout == 3.0
    bad = [
        ({}, '"address" is required'),
        ({"address": ""}, '"address"'),
        ({"address": 7}, '"address": must be a string'),
        ({"address": "x", "timeout": 0}, '"timeout": must be in '),
        ({"address": "x", "timeout": 301}, '"timeout": must be in '),
        ({"address": "x", "timeout": "3"}, '"timeout": must be a number'),
        ({"address": "x", "timeout": True}, '"timeout": must be a number'),
        ({"address": "x", "adress": "y"}, 'unknown qmp target setting "adress"'),
    ]
    for settings, message in bad:
        with pytest.raises(ConfigError, match=message):
            backend.parse_target(settings)


def test_bad_stored_timeout_is_refused_at_delivery_not_replaced(tmp_path, backend):
    # Before, a stored timeout that did not parse silently became the default at delivery.
    target = Target("i-0123456789abcdef0", {"address": str(tmp_path / "s"), "timeout": "x"})
    with pytest.raises(BackendUnavailable, match='"timeout": must be a number'):
        backend.state(target)
    with pytest.raises(BackendUnavailable, match='"timeout"'):
        backend.send_nmi(target)


def test_close_is_idempotent_and_reusable(pc):
    b = QMPBackend()
    assert b.state(pc.target()) == "pending"
    b.close()
    b.close()
    assert b.state(pc.target()) == "pending"
    b.close()


def test_interrupt_through_qmp_end_to_end(pc, state_dir):
    with Store.open(f"sqlite:///{state_dir.parent / 'qmp.db'}") as store, BackendPool() as pool:
        account = store.default_account().id
        user = store.create_user("ops")
        store.put_user_policy(
            "ops",
            "nmi",
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}
                ],
            },
        )
        inst = store.add_instance(backend="qmp", target={"address": str(pc.sock)})
        caller = Caller(account, "ops", user.id, None, "127.0.0.1")
        with pytest.raises(IncorrectState):
            send_diagnostic_interrupt(store, InterruptRequest(caller, inst.id), backends=pool)
        pc.hmp("cont")
        result = send_diagnostic_interrupt(store, InterruptRequest(caller, inst.id), backends=pool)
        assert result.outcome == "sent"
        rows = store.audit_rows()
        assert [(r.outcome, r.error_code, r.backend) for r in rows] == [
            ("rejected", "IncorrectInstanceState", "qmp"),
            ("sent", None, "qmp"),
        ]


def test_concurrent_callers_take_turns_on_one_monitor(pc, backend):
    pc.hmp("cont")
    target = pc.target()
    other = QMPBackend(timeout=10)  # a second loop: contention the per-address lock cannot see
    errors: list[BaseException] = []

    def work(b: QMPBackend) -> None:
        for _ in range(5):
            try:
                b.send_nmi(target)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in (backend, backend, other, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert errors == []


def test_kept_session_is_replaced_after_qemu_restarts(tmp_path, backend):
    machine = ["-M", "pc", "-m", "32", "-accel", "tcg"]
    first = _start(tmp_path, machine)
    qemu = next(first)
    assert backend.state(qemu.target()) == "pending"  # this session is kept for a moment
    first.close()  # kills that QEMU
    qemu.sock.unlink(missing_ok=True)
    second = _start(tmp_path, machine)
    qemu = next(second)
    try:
        assert backend.state(qemu.target()) == "pending"
        qemu.hmp("cont")  # another client gets the monitor while kdiag's session lingers
        assert "accepted" in backend.send_nmi(qemu.target()).detail
        assert backend.state(qemu.target()) == "running"
    finally:
        second.close()


def test_connection_dropped_after_inject_nmi_is_unconfirmed_not_retryable(tmp_path, backend):
    """The peer receives inject-nmi and hangs up without answering: QEMU may have raised the
    NMI, so this is DeliveryUnconfirmed (409, a code no SDK retries), never the retryable
    BackendUnavailable, and the backend itself does not send again."""
    with QMPPeer(tmp_path / "drop.sock", drop_at="inject-nmi") as peer:
        target = Target("i-0123456789abcdef0", {"address": str(peer.path), "timeout": 5})
        with pytest.raises(DeliveryUnconfirmed, match="after inject-nmi was sent") as err:
            backend.send_nmi(target)
        assert err.value.http_status == 409
        assert peer.count("inject-nmi") == 1
        assert peer.count("query-status") == 1


def test_connection_dropped_before_inject_nmi_is_retryable(tmp_path, backend):
    """Dropped at query-status: nothing could have reached the guest, so the plain
    BackendUnavailable (retryable 503) is right, and inject-nmi never went out."""
    with QMPPeer(tmp_path / "early.sock", drop_at="query-status") as peer:
        target = Target("i-0123456789abcdef0", {"address": str(peer.path), "timeout": 5})
        with pytest.raises(BackendUnavailable) as err:
            backend.send_nmi(target)
        assert not isinstance(err.value, DeliveryUnconfirmed)
        assert peer.count("inject-nmi") == 0


def test_no_answer_to_inject_nmi_is_unconfirmed(tmp_path, backend):
    """inject-nmi received, never answered: the timeout after sending is unconfirmed too."""
    with QMPPeer(tmp_path / "hang.sock", drop_at="inject-nmi", hang=True) as peer:
        target = Target("i-0123456789abcdef0", {"address": str(peer.path), "timeout": 0.5})
        with pytest.raises(DeliveryUnconfirmed, match="no answer in time"):
            backend.send_nmi(target)
        assert peer.count("inject-nmi") == 1
