"""The libvirt backend against a real private libvirtd (tests/peers/libvirtd.py) and
libvirt's own in-process ``test:///default`` driver.

No guest boots here: the domains have no kernel and are shut off, started paused, or (the
aarch64 one, for QEMU's refusal of inject-nmi) run for about a second.  The NMI -> vmcore
path with a real lab guest is tests/e2e/test_libvirt_e2e.py.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.backends import InstanceState, Target, get_backend
from kdiag.backends.libvirt import (
    LibvirtBackend,
    LibvirtSettings,
    domain_state,
)
from kdiag.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)
from tests.peers.libvirtd import Libvirtd, minimal_domain_xml, running_libvirtd


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[Libvirtd]:
    with running_libvirtd() as daemon:
        daemon.define_xml(minimal_domain_xml("off1"))
        yield daemon


def _target(uri: str, domain: str, **extra: object) -> Target:
    return Target("i-0123456789abcdef0", {"uri": uri, "domain": domain, **extra})


# --- settings ----------------------------------------------------------------------------


def test_settings_parse_and_refuse():
    ok = LibvirtSettings.parse({"uri": "qemu:///system", "domain": "web1", "timeout": 3})
    assert (ok.uri, ok.domain, ok.timeout, ok.domain_uuid) == ("qemu:///system", "web1", 3.0, None)
    uid = LibvirtSettings.parse(
        {"uri": "qemu+ssh://ops@kvm1/system", "domain": "6695EB01-F6A4-8304-79AA-97F2502E193F"}
    )
    assert uid.domain_uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f"
    cases = [
        ({"domain": "a"}, 'libvirt target setting "uri" is required'),
        ({"uri": "qemu:///system"}, '"domain" is required'),
        ({"uri": "/run/libvirt/sock", "domain": "a"}, '"uri": must be a libvirt URI'),
        ({"uri": "qemu:///sys tem", "domain": "a"}, '"uri": must be a libvirt URI'),
        ({"uri": "q" * 2000 + "://", "domain": "a"}, '"uri": must be a libvirt URI'),
        ({"uri": "qemu:///system", "domain": ""}, '"domain": a domain name or UUID'),
        ({"uri": "qemu:///system", "domain": "a\nb"}, '"domain": a domain name or UUID'),
        ({"uri": "qemu:///system", "domain": "d" * 300}, '"domain": a domain name or UUID'),
        ({"uri": "qemu:///system", "domain": "a", "timeout": 0}, '"timeout": must be'),
        ({"uri": "qemu:///system", "domain": "a", "timeout": 1e9}, '"timeout": must be'),
        ({"uri": "qemu:///system", "domain": "a", "address": "x"}, 'setting "address"'),
        ({"uri": "qemu:///system", "domain": 7}, '"domain": must be a string'),
        ({"uri": "qemu+ext:///system?command=/tmp/x", "domain": "a"}, "run a local program"),
        ({"uri": "qemu+ssh://h/system?command=/tmp/x", "domain": "a"}, "run a local program"),
        ({"uri": "qemu+ssh://h/system?x=1&COMMAND=/tmp/x", "domain": "a"}, "local program"),
        ({"uri": "qemu+ssh://h/system?comm%61nd=/tmp/x", "domain": "a"}, "local program"),
        ({"uri": "test:///etc/shadow", "domain": "a"}, "only test:///default"),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            LibvirtSettings.parse(raw)


def test_a_password_in_the_uri_is_refused_and_never_echoed():
    with pytest.raises(ConfigError) as caught:
        LibvirtSettings.parse({"uri": "qemu+tcp://admin:hunter2@kvm1/system", "domain": "a"})
    assert "hunter2" not in str(caught.value)
    assert "looks like a secret" in str(caught.value)


def test_ssh_transports_never_prompt():
    from kdiag.backends.libvirt import non_interactive

    assert non_interactive("qemu+ssh://kvm1/system") == "qemu+ssh://kvm1/system?no_tty=1"
    assert non_interactive("qemu+libssh2://h/system?known_hosts=/k") == (
        "qemu+libssh2://h/system?known_hosts=/k&no_tty=1"
    )
    for unchanged in ("qemu+ssh://h/system?no_tty=0", "qemu:///system", "qemu+tcp://h/system"):
        assert non_interactive(unchanged) == unchanged


def test_state_mapping_covers_every_libvirt_state():
    expected = {
        (0, 0): "pending",
        (1, 1): "running",
        (2, 0): "running",
        (3, 1): "paused",
        (3, 11): "pending",  # paused while starting up
        (4, 1): "stopping",
        (5, 1): "stopped",
        (6, 1): "paused",
        (7, 1): "paused",
        (99, 0): "paused",  # an unknown future state holds the vCPUs: never "running"
    }
    assert {k: str(domain_state(*k)) for k in expected} == expected


def test_error_numbers_are_libvirts():
    import libvirt

    import kdiag.backends.libvirt as ours

    names = [n for n in dir(ours) if n.startswith("VIR_ERR_")]
    assert len(names) >= 15
    assert {n: getattr(ours, n) for n in names} == {n: getattr(libvirt, n) for n in names}


def test_error_classes_before_and_after_inject():
    """Before injectNMI, each libvirt error is its refusal or failure; after it, only a
    clear refusal stays one and everything else is DeliveryUnconfirmed."""
    import threading

    from kdiag.backends.libvirt import _classify, map_libvirt_errors
    from kdiag.errors import BackendError, DeliveryUnconfirmed

    expected = {
        (3, False): NMINotSupported,
        (84, True): NMINotSupported,
        (55, False): IncorrectState,
        (55, True): IncorrectState,
        (29, True): BackendUnavailable,  # read-only connection: refused
        (88, False): BackendUnavailable,
        (42, False): TargetNotFound,
        (42, True): DeliveryUnconfirmed,
        (38, False): BackendUnavailable,
        (38, True): DeliveryUnconfirmed,
        (39, True): DeliveryUnconfirmed,
        (68, False): BackendTimeout,
        (1, False): BackendError,
        (1, True): DeliveryUnconfirmed,
    }
    got = {k: type(_classify(k[0], "text", "w", "i-1", after_send=k[1])) for k in expected}
    assert got == expected
    unsupported = _classify(
        1, "this feature or command is not currently supported", "w", "i", after_send=True
    )
    assert isinstance(unsupported, NMINotSupported)

    settings = LibvirtSettings.parse({"uri": "test:///default", "domain": "test"})
    sent = threading.Event()
    sent.set()
    for raised in (TimeoutError(), RuntimeError("binding failed")):
        with (
            pytest.raises(DeliveryUnconfirmed, match="unconfirmed"),
            map_libvirt_errors(_target("test:///default", "test"), settings, sent=sent),
        ):
            raise raised


def test_registered_as_an_entry_point():
    with get_backend("libvirt") as backend:
        assert isinstance(backend, LibvirtBackend)
        assert backend.supports_nmi(Target("i-1", {}, arch="x86_64"))
        assert not backend.supports_nmi(Target("i-1", {}, arch="arm64"))


def test_missing_extra_is_a_typed_error_naming_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)  # import libvirt -> ImportError
    with LibvirtBackend() as backend, pytest.raises(BackendUnavailable, match=r"kdiag\[libvirt\]"):
        backend.state(_target("test:///default", "test"))
    # parsing needs no SDK: an instance can be registered before the extra is installed
    assert backend.parse_target({"uri": "qemu:///system", "domain": "a"}).domain == "a"


# --- libvirt's in-process test driver ------------------------------------------------------


def test_test_driver_running_domain_by_name_and_uuid():
    with LibvirtBackend() as backend:
        assert backend.state(_target("test:///default", "test")) is InstanceState.RUNNING
        by_uuid = _target("test:///default", "6695eb01-f6a4-8304-79aa-97f2502e193f")
        assert backend.state(by_uuid) is InstanceState.RUNNING
        result = backend.send_nmi(by_uuid)
        assert (result.backend, result.instance_id) == ("libvirt", "i-0123456789abcdef0")
        with pytest.raises(TargetNotFound, match="no such domain"):
            backend.state(_target("test:///default", "nope"))


# --- a real private libvirtd -----------------------------------------------------------------


def test_shut_off_domain_is_stopped_and_refused(libvirtd: Libvirtd):
    with LibvirtBackend() as backend:
        target = _target(libvirtd.uri, "off1")
        assert backend.state(target) is InstanceState.STOPPED
        with pytest.raises(IncorrectState, match="shut off, not running; NMI not sent") as caught:
            backend.send_nmi(target)
        assert caught.value.code == "IncorrectInstanceState"
        assert caught.value.exit_code == 4


def test_unknown_domain_is_target_not_found(libvirtd: Libvirtd):
    with LibvirtBackend() as backend:
        for name in ("ghost", "00000000-0000-0000-0000-000000000000"):
            with pytest.raises(TargetNotFound, match="no such domain") as caught:
                backend.send_nmi(_target(libvirtd.uri, name))
            assert caught.value.code == "TargetNotFound"


def test_bad_uri_is_backend_unavailable(libvirtd: Libvirtd, tmp_path: Path):
    with LibvirtBackend() as backend:
        missing = f"qemu:///session?socket={tmp_path}/nothing-here"
        with pytest.raises(BackendUnavailable, match="Failed to connect socket"):
            backend.state(_target(missing, "off1"))
        with pytest.raises(BackendUnavailable):
            backend.send_nmi(_target("nosuchdriver:///x", "off1"))


def test_paused_domain_is_paused_and_refused(libvirtd: Libvirtd):
    import libvirt

    libvirtd.define_xml(minimal_domain_xml("paused1"))
    conn = libvirt.open(libvirtd.uri)
    try:
        dom = conn.lookupByName("paused1")
        dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        try:
            with LibvirtBackend() as backend:
                target = _target(libvirtd.uri, dom.UUIDString())
                assert backend.state(target) is InstanceState.PAUSED
                with pytest.raises(IncorrectState, match="is paused, not running"):
                    backend.send_nmi(target)
            assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED  # untouched
        finally:
            dom.destroy()
    finally:
        conn.close()


def test_qemu_refusing_inject_nmi_is_unsupported(libvirtd: Libvirtd):
    """QEMU's arm64 ``virt`` machine cannot take inject-nmi; libvirt passes QEMU's
    refusal on, and that must be NMINotSupported, not success or a generic error."""
    import libvirt

    libvirtd.define_xml(minimal_domain_xml("arm1", arch="aarch64"))
    conn = libvirt.open(libvirtd.uri)
    try:
        dom = conn.lookupByName("arm1")
        dom.create()
        try:
            with LibvirtBackend() as backend:
                target = _target(libvirtd.uri, "arm1")
                assert backend.state(target) is InstanceState.RUNNING
                with pytest.raises(NMINotSupported, match="cannot inject an NMI") as caught:
                    backend.send_nmi(target)
                assert caught.value.code == "UnsupportedOperation"
        finally:
            dom.destroy()
    finally:
        conn.close()


def test_a_daemon_that_never_answers_times_out(tmp_path: Path):
    """A socket that accepts and then says nothing: BackendTimeout within the target's
    timeout (the gate keeps the abandoned worker from sending one later)."""
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with LibvirtBackend() as backend:
            target = _target(f"qemu:///session?socket={path}", "x", timeout=0.5)
            started = time.monotonic()
            with pytest.raises(BackendTimeout, match=r"no answer in 0\.5 s"):
                backend.send_nmi(target)
            # Its own 0.5 s, not the default 10 s: generous for a loaded machine.
            assert time.monotonic() - started < 8.0
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()  # the abandoned worker gets EOF and ends
        server.close()


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_the_peer_leaves_no_qemu_behind_even_when_its_daemon_died():
    """tests/peers/libvirtd.py: a daemon killed with SIGKILL leaves its QEMU running;
    stop() must still end that QEMU (from the domain's pid file) and remove the directory."""
    import os
    import signal

    daemon = Libvirtd.start()
    daemon.define_xml(minimal_domain_xml("leak1"))
    assert daemon.virsh("start", "--paused", "leak1").returncode == 0
    pid = int((daemon.root / "run/libvirt/qemu/run/leak1.pid").read_text())
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    daemon.stop()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not daemon.root.exists()
