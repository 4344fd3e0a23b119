"""The drill of a plain QMP instance, watched through QMP events: a real kdiag API on
loopback sends the NMI through the real qmp backend to a QMP peer that behaves like QEMU
(one client at a time, ``inject-nmi``, ``query-status``) and, to the monitor connection that
comes after the NMI (the drill's), reports what a guest with pvpanic would: the events of
the scenario, while a fixture dump appears in ``--dump-dir`` when the scenario says so.
Each scenario must end with the diagnosis its events call for."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdiag.backends.base import BackendPool
from kdiag.backends.qmp import QMPBackend
from kdiag.drill import DrillLimits, run_drill, setup
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import Store
from tests.conftest import fixtures_root

# quiet: how long the panic step waits for a first sign (every scenario gives one, so a
# generous value costs nothing; 3 s raced the events on a loaded machine)
LIMITS = DrillLimits(quiet=15, settle=1, hang=1, poll=0.05, stable=0.5, clock_skew=10.0**10)
#: The overall timeout of the scenarios that end by running out of it (no reboot, no dump).
#: The send step alone took 2.8 s on a loaded 2-core machine (load ~18): 6-8 s left the
#: events racing the deadline, and a scenario cut short ends with another diagnosis.
WAITED = 15.0
_GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}


class EventPeer:
    """QMP on a UNIX socket, one client at a time as QEMU serves it.  ``script`` is a list
    of ``(delay, what)``: ``what`` an event name (sent to the first connection after the
    NMI), ``"dump"`` (a fixture vmcore appears in ``dump_dir``) or ``"status:<s>"`` (what
    ``query-status`` answers from then on)."""

    def __init__(self, path: Path, dump_dir: Path, script: list[tuple[float, str]]) -> None:
        self.path = path
        self.dump_dir = dump_dir
        self.script = script
        self.status = "running"
        self.nmis = 0
        self.commands: list[str] = []
        self.sent_events: list[str] = []
        self._played = False
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> EventPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._serve(conn)  # one at a time, as QEMU does

    def _send(self, conn: socket.socket, lock: threading.Lock, msg: dict[str, Any]) -> None:
        with lock:
            conn.sendall(json.dumps(msg).encode() + b"\r\n")

    def _play(self, conn: socket.socket, lock: threading.Lock) -> None:
        for delay, what in self.script:
            time.sleep(delay)
            if what == "dump":
                out = self.dump_dir / "127.0.0.1-peer" / "vmcore"
                out.parent.mkdir(exist_ok=True)
                shutil.copyfile(fixtures_root() / "nmi-zlib" / "vmcore", out)
            elif what.startswith("status:"):
                self.status = what.split(":", 1)[1]
            else:
                now = time.time()
                stamp = {"seconds": int(now), "microseconds": int(now % 1 * 1e6)}
                data = {"action": "run"} if what.startswith("GUEST_") else {"guest": True}
                try:
                    self._send(conn, lock, {"event": what, "data": data, "timestamp": stamp})
                except OSError:
                    return
                self.sent_events.append(what)

    def _serve(self, conn: socket.socket) -> None:
        lock = threading.Lock()
        decoder = json.JSONDecoder()
        buffer = ""
        try:
            conn.sendall(json.dumps(_GREETING).encode() + b"\r\n")
            while chunk := conn.recv(65536):
                buffer += chunk.decode()
                while buffer.strip():
                    try:
                        message, end = decoder.raw_decode(buffer.lstrip())
                    except ValueError:
                        break
                    buffer = buffer.lstrip()[end:]
                    command = str(message.get("execute"))
                    self.commands.append(command)
                    reply: dict[str, Any] = {"return": {}}
                    if command == "query-status":
                        running = self.status == "running"
                        reply = {"return": {"status": self.status, "running": running}}
                    if command == "inject-nmi":
                        self.nmis += 1
                    if "id" in message:
                        reply["id"] = message["id"]
                    self._send(conn, lock, reply)
                    if command == "qmp_capabilities" and self.nmis and not self._played:
                        self._played = True
                        threading.Thread(target=self._play, args=(conn, lock), daemon=True).start()
        except OSError:
            pass
        finally:
            conn.close()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    store = Store.open(f"sqlite:///{tmp_path}/kdiag.db", key_file=tmp_path / "kdiag.key")
    ctx = ServiceContext(store, backends=BackendPool({"qmp": QMPBackend(timeout=30)}))
    try:
        with ServerThread(create_app(ctx)) as server:
            yield {"store": store, "url": server.url, "tmp": tmp_path}
    finally:
        ctx.close()
        store.close()


def _drill(
    api: dict[str, Any],
    script: list[tuple[float, str]],
    timeout: float,
    limits: DrillLimits = LIMITS,
) -> Any:
    tmp: Path = api["tmp"]
    dump_dir = tmp / "crash"
    dump_dir.mkdir()
    sock = tmp / "monitor.sock"
    store = api["store"]
    instance = store.add_instance(backend="qmp", target={"address": str(sock)})
    setup(store, instance)
    with EventPeer(sock, dump_dir, script) as peer:
        report = run_drill(
            store,
            instance.id,
            endpoint=api["url"],
            timeout=timeout,
            dump_dir=dump_dir,
            limits=limits,
            record=False,
        )
    assert peer.nmis == 1  # never a second NMI into a machine that may be capturing
    return report, peer


def _steps(report: Any) -> dict[str, str]:
    return {s.name: s.status for s in report.steps}


def test_crashloaded_dump_and_reset_pass(api: dict[str, Any]) -> None:
    # the reset comes 1 s after the dump is written; the reboot step waits ``settle`` after
    # it has seen the dump (stable for 0.5 s): 1 s left half a second to spare, too little
    # under load, and the reset then arrives after the step gave up on it
    report, peer = _drill(
        api,
        [(0.2, "GUEST_CRASHLOADED"), (0.5, "dump"), (1.0, "RESET")],
        timeout=30,
        limits=dataclasses.replace(LIMITS, settle=15),
    )
    ev = report.evidence
    assert report.diagnosis.code == "ok", json.dumps(report.to_json(), indent=1)[:3000]
    assert ev.observer == "qmp-events"
    assert (ev.panic_seen, ev.capture_started, ev.rebooted) == (True, True, True)
    assert ev.crash_event == "QMP event GUEST_CRASHLOADED"
    steps = _steps(report)
    assert (steps["panic"], steps["reboot"], steps["dump"]) == ("pass", "pass", "pass")
    assert peer.sent_events == ["GUEST_CRASHLOADED", "RESET"]


def test_panicked_then_reset_without_dump_is_no_capture_kernel(api: dict[str, Any]) -> None:
    report, _ = _drill(api, [(0.2, "GUEST_PANICKED"), (0.3, "RESET")], timeout=WAITED)
    ev = report.evidence
    assert report.diagnosis.code == "no-dump-no-capture-kernel", report.diagnosis
    assert (ev.panic_seen, ev.capture_started, ev.rebooted) == (True, False, True)
    assert _steps(report)["reboot"] == "pass"
    assert _steps(report)["dump"] == "fail"


def test_crashloaded_and_then_nothing_is_a_capture_hang(api: dict[str, Any]) -> None:
    report, _ = _drill(api, [(0.2, "GUEST_CRASHLOADED")], timeout=WAITED)
    assert report.diagnosis.code == "no-reboot-capture-hang", report.diagnosis
    assert "QMP event GUEST_CRASHLOADED" in report.diagnosis.evidence
    assert _steps(report)["reboot"] == "fail"


def test_query_status_is_the_fallback_when_no_event_comes(api: dict[str, Any]) -> None:
    """No pvpanic event at all, but QEMU's panic action paused the guest: query-status
    says guest-panicked; the machine stays down."""
    report, peer = _drill(api, [(0.1, "status:guest-panicked")], timeout=WAITED)
    assert report.evidence.panic_seen
    assert "query-status: guest-panicked" in dict((s.name, s.detail) for s in report.steps).get(
        "panic", ""
    )
    assert report.diagnosis.code in ("no-dump", "no-reboot-panic-0")
    assert _steps(report)["reboot"] == "fail"
    assert peer.commands.count("query-status") >= 2


def test_a_reset_alone_implies_the_panic(api: dict[str, Any]) -> None:
    """The panic event came before the drill's monitor connection (or there is no
    pvpanic): the reset that follows the NMI still tells that the kernel went down."""
    report, _ = _drill(api, [(0.3, "RESET")], timeout=WAITED)
    ev = report.evidence
    assert (ev.panic_seen, ev.rebooted, ev.capture_started) == (True, True, False)
    assert "a reset followed the NMI" in report.steps[2].detail
    assert report.diagnosis.code == "no-dump-no-capture-kernel"


def test_silence_leaves_the_steps_unobserved_and_the_dump_decides(api: dict[str, Any]) -> None:
    report, _ = _drill(api, [(0.5, "dump")], timeout=30)
    assert report.diagnosis.code == "ok", report.diagnosis
    steps = _steps(report)
    assert steps["panic"] == "pass"  # inferred from the dump
    assert steps["reboot"] == "skipped"


@pytest.mark.parametrize("address", ["/nonexistent/x.sock", "", "host:notaport", "x" * 5000])
def test_an_unreachable_monitor_ends_the_watch_with_a_bounded_reason(address: str) -> None:
    from kdiag.drill.hypervisor_events import QMPEventWatch

    watch = QMPEventWatch(address, None, connect_timeout=0.3)
    watch.start()
    watch.close()
    assert not watch.connected
    assert watch.error is not None
    assert "ConnectError" in watch.error
    assert len(watch.error) < 600
    (note,) = watch.poll()
    assert note.startswith("QMP event watch ended")
    assert not watch.panic_seen
