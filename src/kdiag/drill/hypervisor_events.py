"""Watching a QMP or libvirt instance through its hypervisor after the send.

For a machine that is not one of kdiag's lab guests the drill cannot read a console, but
the hypervisor says what happened to it:

* QMP (:class:`QMPEventWatch`): ``GUEST_PANICKED`` and ``GUEST_CRASHLOADED`` (sent when the
  guest has a ``pvpanic`` device and its driver reports the panic, the second when a
  capture kernel is loaded), ``RESET`` (a reboot: the capture kernel's, or the panic
  timeout's), ``SHUTDOWN`` (powered off), and ``query-status`` polled once a second as a
  fallback (``guest-panicked`` when QEMU's panic action is ``pause``).
* libvirt (:class:`LibvirtEventWatch`): the domain's lifecycle events (``CRASHED`` with
  detail ``PANICKED`` or ``CRASHLOADED``, ``STOPPED``/``SHUTDOWN``, ``STARTED`` after a stop)
  and its ``REBOOT`` events, delivered by libvirt-python's default event loop run in a
  daemon thread, with the domain's state polled as a fallback.

Both turn what they saw into the evidence the diagnosis already knows: ``panic_seen``,
``capture_started`` (the capture kernel was loaded at the panic: ``CRASHLOADED``),
``resets`` (each one a reboot) and ``powered_off``; the dump itself still comes from
``--dump-dir`` (:class:`~kdiag.drill.observe.DumpDirWatch`, wrapped here).

QEMU serves one client per monitor socket, so :class:`QMPEventWatch` connects only after
the send step has finished (the backend has let the monitor go) and holds the monitor until
:meth:`close`: a panic that QEMU reports before the drill's connection is up is missed (the
reboot and the dump are not).  libvirt has no such limit: its watch starts before the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, EventListener, QMPClient

from kdiag.backends.base import Target
from kdiag.backends.qmp import parse_address
from kdiag.drill.observe import DumpDirWatch

__all__ = ("HypervisorEvent", "HypervisorWatch", "LibvirtEventWatch", "QMPEventWatch")

_QMP_EVENTS = ("GUEST_PANICKED", "GUEST_CRASHLOADED", "RESET", "SHUTDOWN", "STOP", "RESUME")
_MAX_EVENTS = 1000  # a guest in a reset loop must not grow the drill without bound


@dataclass(frozen=True, slots=True)
class HypervisorEvent:
    """One thing the hypervisor reported: ``kind`` is ``panic``, ``crashloaded``,
    ``reset``, ``poweroff``, ``started`` or ``status``; ``text`` says it as the hypervisor did."""

    kind: str
    text: str


class HypervisorWatch:
    """What the QMP and libvirt watches share: the event queue their threads fill, the
    observations :meth:`poll` derives from it, and the wrapped ``--dump-dir`` watch."""

    observer = "hypervisor"

    def __init__(self, dump_dir: Path | None, *, stable: float = 3.0) -> None:
        self.dumps = DumpDirWatch(dump_dir, stable=stable) if dump_dir is not None else None
        self._lock = threading.Lock()
        self._queue: list[HypervisorEvent] = []
        self._dropped = 0
        self.crash_event: str | None = None
        self.panic_via: str | None = None
        self.capture_started = False
        self.resets = 0
        self.powered_off = False
        self.connected = False
        self.error: str | None = None
        self.excerpt: list[str] = []

    # ---------------------------------------------------------------- filled by threads
    def _push(self, kind: str, text: str) -> None:
        with self._lock:
            if len(self._queue) >= _MAX_EVENTS:
                self._dropped += 1
                return
            self._queue.append(HypervisorEvent(kind, text))

    # ---------------------------------------------------------------- read by the drill
    @property
    def panic_seen(self) -> bool:
        return self.panic_via is not None

    @property
    def new_dump(self) -> Path | None:
        return None if self.dumps is None else self.dumps.new_dump

    def poll(self) -> list[str]:
        """What is new since the last call, as notes for the display."""
        with self._lock:
            events, self._queue = self._queue, []
        notes: list[str] = []
        for event in events:
            self.excerpt.append(event.text)
            del self.excerpt[:-40]
            if event.kind in ("panic", "crashloaded"):
                if self.crash_event is None:
                    self.crash_event = event.text
                if self.panic_via is None:
                    self.panic_via = event.text
                if event.kind == "crashloaded":
                    self.capture_started = True
            elif event.kind == "status" and self.panic_via is None:
                self.panic_via = event.text
            elif event.kind == "reset":
                self.resets += 1
            elif event.kind == "poweroff":
                self.powered_off = True
            notes.append(event.text)
        if self.dumps is not None:
            notes += self.dumps.poll()
        return notes

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class QMPEventWatch(HypervisorWatch):
    """QMP events and ``query-status`` of the QEMU at ``address``, in a thread of its own."""

    observer = "qmp-events"

    def __init__(
        self,
        address: str,
        dump_dir: Path | None,
        *,
        stable: float = 3.0,
        connect_timeout: float = 10.0,
        status_every: float = 1.0,
    ) -> None:
        super().__init__(dump_dir, stable=stable)
        self.address = address
        self._connect_timeout = connect_timeout
        self._status_every = status_every
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_status: str | None = None

    def start(self) -> None:
        """Connect (retrying while another client holds the monitor) and start watching;
        returns once connected or given up (``error`` says why)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._thread_main, name="kdiag-drill-qmp-events", daemon=True
        )
        self._thread.start()
        self._ready.wait(self._connect_timeout + 2.0)

    def close(self) -> None:
        """Let the monitor go (before a host-side dump, which needs it, and at the end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._status_every + 5.0)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._watch())
        except Exception as exc:  # noqa: BLE001 - a thread's end: said in the report, never raised
            self.error = f"QMP {self.address[:200]}: {type(exc).__name__}: {str(exc)[:300]}"
            self._push("error", f"QMP event watch ended: {self.error}")
        finally:
            self._ready.set()

    async def _connect(self) -> QMPClient:
        deadline = time.monotonic() + self._connect_timeout
        while True:
            client = QMPClient("kdiag-drill-events")
            try:
                await client.connect(parse_address(self.address))
            except ConnectError:
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise
                await asyncio.sleep(0.05)
            else:
                return client

    async def _watch(self) -> None:
        client = await self._connect()
        try:
            listener = EventListener(_QMP_EVENTS)
            client.register_listener(listener)
            self.connected = True
            self._ready.set()
            while not self._stop.is_set():
                try:
                    message = await asyncio.wait_for(listener.get(), self._status_every)
                except TimeoutError:
                    await self._status(client)
                    continue
                self._event(str(message.get("event")), message.get("data") or {})
        finally:
            with contextlib.suppress(Exception):  # leaving either way
                await client.disconnect()

    async def _status(self, client: QMPClient) -> None:
        reply = await client.execute("query-status")
        status = str(reply.get("status")) if isinstance(reply, dict) else "?"
        if status != self._last_status:
            self._last_status = status
            if status == "guest-panicked":
                self._push("status", "query-status: guest-panicked")
            elif status == "shutdown":
                self._push("poweroff", "query-status: shutdown")

    def _event(self, name: str, data: Any) -> None:
        detail = data if isinstance(data, dict) else {}
        if name == "GUEST_PANICKED":
            self._push("panic", f"QMP event GUEST_PANICKED (action {detail.get('action')})")
        elif name == "GUEST_CRASHLOADED":
            self._push("crashloaded", "QMP event GUEST_CRASHLOADED")
        elif name == "RESET":
            self._push("reset", f"QMP event RESET ({detail.get('reason', 'reset')})")
        elif name == "SHUTDOWN":
            self._push("poweroff", f"QMP event SHUTDOWN ({detail.get('reason', 'shutdown')})")


# ------------------------------------------------------------------------------ libvirt
_loop_lock = threading.Lock()
_loop_started = False


def _libvirt_event_loop(libvirt: Any) -> None:
    """Register libvirt-python's default event loop once per process and run it in a
    daemon thread (a one-second timer keeps it turning)."""
    global _loop_started  # noqa: PLW0603 - one event loop per process, by libvirt's design
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        libvirt.virEventAddTimeout(1000, lambda _timer, _opaque: None, None)

        def run() -> None:
            while True:
                if libvirt.virEventRunDefaultImpl() < 0:
                    time.sleep(0.5)

        threading.Thread(target=run, name="kdiag-libvirt-events", daemon=True).start()
        _loop_started = True


class LibvirtEventWatch(HypervisorWatch):
    """A libvirt domain's lifecycle and reboot events, plus its state as a fallback."""

    observer = "libvirt-events"

    def __init__(
        self,
        settings: Any,
        target: Target,
        dump_dir: Path | None,
        *,
        stable: float = 3.0,
        loader: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(dump_dir, stable=stable)
        self.settings = settings
        self.target = target
        self._loader = loader
        self._conn: Any = None
        self._dom: Any = None
        self._callbacks: list[int] = []
        self._stopped_once = False
        self._last_state: int | None = None
        self._lv: Any = None

    def start(self) -> None:
        from kdiag.backends.libvirt import (  # noqa: PLC0415 - libvirt-python is an optional extra
            import_libvirt,
            map_libvirt_errors,
        )

        if self._conn is not None:
            return
        lv = self._loader() if self._loader is not None else import_libvirt()
        self._lv = lv
        _libvirt_event_loop(lv)
        with map_libvirt_errors(self.target, self.settings):
            conn = lv.openAuth(self.settings.uri, [[], None, None], 0)
            uid = self.settings.domain_uuid
            dom = conn.lookupByUUIDString(uid) if uid else conn.lookupByName(self.settings.domain)
            self._conn, self._dom = conn, dom
            self._callbacks.append(
                conn.domainEventRegisterAny(
                    dom, lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
                )
            )
            self._callbacks.append(
                conn.domainEventRegisterAny(dom, lv.VIR_DOMAIN_EVENT_ID_REBOOT, self._reboot, None)
            )
        self.connected = True

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for callback in self._callbacks:
            with contextlib.suppress(Exception):  # the daemon may be gone already
                conn.domainEventDeregisterAny(callback)
        with contextlib.suppress(Exception):
            conn.close()

    def poll(self) -> list[str]:
        self._poll_state()
        return super().poll()

    def _poll_state(self) -> None:
        lv, dom = self._lv, self._dom
        if dom is None:
            return
        try:
            state, _reason = dom.state()
        except Exception:  # noqa: BLE001 - a fallback only: the events are the evidence
            return
        if state == self._last_state:
            return
        self._last_state = state
        if state == lv.VIR_DOMAIN_CRASHED:
            self._push("status", "libvirt domain state: crashed")
        elif state == lv.VIR_DOMAIN_SHUTOFF and not self._stopped_once:
            self._push("poweroff", "libvirt domain state: shut off")

    # the callbacks run on the event-loop thread
    def _lifecycle(self, _conn: Any, _dom: Any, event: int, detail: int, _opaque: Any) -> None:
        lv = self._lv
        if event == lv.VIR_DOMAIN_EVENT_CRASHED:
            if detail == getattr(lv, "VIR_DOMAIN_EVENT_CRASHED_CRASHLOADED", 1):
                self._push("crashloaded", "libvirt event CRASHED (crashloaded)")
            else:
                self._push("panic", "libvirt event CRASHED (panicked)")
        elif event in (lv.VIR_DOMAIN_EVENT_STOPPED, lv.VIR_DOMAIN_EVENT_SHUTDOWN):
            self._stopped_once = True
            name = "STOPPED" if event == lv.VIR_DOMAIN_EVENT_STOPPED else "SHUTDOWN"
            self._push("poweroff", f"libvirt event {name} (detail {detail})")
        elif event == lv.VIR_DOMAIN_EVENT_STARTED and self._stopped_once:
            self._push("reset", "libvirt event STARTED after a stop (on_crash/on_poweroff)")

    def _reboot(self, _conn: Any, _dom: Any, _opaque: Any) -> None:
        self._push("reset", "libvirt event REBOOT")
