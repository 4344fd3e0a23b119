"""QEMU through its QMP socket: ``query-status`` for the state, ``inject-nmi`` to interrupt.

Target settings (:class:`QMPSettings`): ``address`` (a UNIX socket path, or ``host:port``
for a TCP monitor) and, optionally, ``timeout`` in seconds (default 5).

qemu.qmp is asyncio; this backend runs it on an event loop in a thread of its own and offers
the plain synchronous :class:`~kdiag.backends.base.Backend` interface, so it works the same
from a CLI, a worker thread or a thread pool under an async server.  QEMU serves one QMP
client per socket at a time, so calls on one address take turns, and a session (greeting,
``qmp_capabilities``) is kept between calls only briefly: it is closed once idle for
``_LINGER_SECONDS`` and not reused once older than ``_MAX_HOLD_SECONDS``, so another client
waits at most about that long for the monitor.  A kept session that turns out to be dead is
replaced by a fresh one, and the call retried, only while nothing has been sent that could
have reached the guest.

``send_nmi`` asks ``query-status`` first, in the same session, and refuses a guest that is
not running (an NMI to a paused guest would sit queued until someone resumes it: that is not
a delivery).  QEMU answers ``inject-nmi`` with ``{}`` once the NMI is raised on the vCPUs;
that is reported as accepted.  A timeout or a dropped connection after the command was
written is :class:`~kdiag.errors.DeliveryUnconfirmed` (never a success, never a retryable
error); before it, ``BackendTimeout`` / ``BackendUnavailable``: nothing was sent.

Every qemu.qmp, OSError and asyncio error is mapped in :func:`map_qmp_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from qemu.qmp import (
    ConnectError,
    ExecInterruptedError,
    ExecuteError,
    QMPClient,
    QMPError,
    Runstate,
    StateError,
)
from qemu.qmp.qmp_client import GreetingError, NegotiationError

from kdiag.backends.base import (
    NMI_ARCHITECTURES,
    InstanceState,
    NMIResult,
    Target,
    TargetSettings,
)
from kdiag.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
)

__all__ = (
    "DEFAULT_TIMEOUT",
    "QMPBackend",
    "QMPSettings",
    "instance_state",
    "map_qmp_errors",
    "parse_address",
)

log = logging.getLogger("kdiag.backends.qmp")

DEFAULT_TIMEOUT = 5.0
_T = TypeVar("_T")
# A monitor socket that another client holds refuses (or, on Linux, answers EINVAL/EAGAIN).
_BUSY_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EINVAL, errno.EAGAIN})
_BUSY_RETRY_SECONDS = 1.0
# A session is kept this long after its last call, and reused for at most this long.
_LINGER_SECONDS = 0.25
_MAX_HOLD_SECONDS = 1.0
_UNSUPPORTED = re.compile(r"\bnot (?:currently )?supported\b", re.IGNORECASE)

#: QEMU run states (qapi RunState) that have an EC2 name; every other one (``paused``,
#: ``suspended``, ``guest-panicked``, ``internal-error``, ...) holds the vCPUs: ``paused``.
_QEMU_STATES = {
    "running": InstanceState.RUNNING,
    "prelaunch": InstanceState.PENDING,
    "inmigrate": InstanceState.PENDING,
    "shutdown": InstanceState.STOPPED,
}


def instance_state(qemu_status: str) -> InstanceState:
    """The :class:`InstanceState` of a QEMU run state (``query-status``'s ``status``)."""
    return _QEMU_STATES.get(qemu_status, InstanceState.PAUSED)


@dataclass(frozen=True, slots=True)
class QMPSettings(TargetSettings):
    """A qmp target: where QEMU's monitor listens, and how long to wait for it."""

    BACKEND: ClassVar[str] = "qmp"

    address: str
    """A QMP UNIX socket path, or ``host:port`` for a TCP monitor."""
    timeout: float | None = None
    """Seconds to wait for QEMU; the backend's default (5) when not set."""

    def validate(self) -> None:
        if not self.address:
            raise self.invalid("address", "a QMP socket path or host:port is required")


def parse_address(address: str) -> str | tuple[str, int]:
    """A UNIX socket path, or ``(host, port)`` for ``host:port``."""
    host, sep, port = address.rpartition(":")
    if sep and host and port.isdigit() and not address.startswith(("/", ".")):
        return host.strip("[]"), int(port)
    return address


@contextlib.contextmanager
def map_qmp_errors(target: Target, *, sent: threading.Event | None = None) -> Iterator[None]:
    """Turn qemu.qmp, OS and asyncio errors into kdiag's backend errors (the one boundary).

    :param sent: set just before ``inject-nmi`` is written.  Once it is set, a lost
        connection, a timeout or any other failure without QEMU's answer is
        :class:`~kdiag.errors.DeliveryUnconfirmed` (QEMU may have raised the NMI before the
        link broke); before it, they are the retryable ``BackendUnavailable`` /
        ``BackendTimeout``, since nothing could have reached the guest.  An error answer
        from QEMU (``ExecuteError``) means it refused: nothing was delivered either way.
    """
    where = f"QMP {target.address or '<no address>'} ({target.instance_id})"
    try:
        yield
    except BackendError:
        raise
    except ExecuteError as exc:
        text = str(exc)
        # QERR_UNSUPPORTED: "this feature or command is not currently supported".
        if exc.error_class == "CommandNotFound" or _UNSUPPORTED.search(text):
            raise NMINotSupported(
                f"{where}: QEMU cannot inject an NMI into this machine: {text}",
                target=target.instance_id,
            ) from exc
        raise BackendError(f"{where}: QEMU refused: {text}", target=target.instance_id) from exc
    except Exception as exc:
        if sent is not None and sent.is_set():
            raise DeliveryUnconfirmed(
                f"{where}: {_describe(exc)} after inject-nmi was sent; "
                "delivery of the NMI is unconfirmed",
                target=target.instance_id,
            ) from exc
        if isinstance(exc, ConnectError):
            raise BackendUnavailable(
                f"{where}: cannot connect: {exc.exc if exc.exc else exc}",
                target=target.instance_id,
            ) from exc
        if isinstance(exc, TimeoutError):  # asyncio.TimeoutError and futures' alike
            raise BackendTimeout(f"{where}: no answer in time", target=target.instance_id) from exc
        if isinstance(exc, QMPError | OSError | EOFError | asyncio.IncompleteReadError):
            raise BackendUnavailable(
                f"{where}: {_describe(exc)}", target=target.instance_id
            ) from exc
        raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ExecInterruptedError):
        return "connection lost"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


async def _disconnect(client: Any) -> None:
    with contextlib.suppress(Exception):  # the session is being abandoned either way
        await client.disconnect()


class QMPBackend:
    """Interrupt QEMU guests over QMP.  One event-loop thread per backend object."""

    name = "qmp"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Per address, used on the loop thread only: the turn lock, and the kept session
        # (client, when it was opened, the timer that closes it when idle).
        self._locks: dict[str, asyncio.Lock] = {}
        self._kept: dict[str, tuple[Any, float, asyncio.TimerHandle]] = {}
        self._expiring: set[asyncio.Future[None]] = set()

    # --- the event loop ------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="kdiag-qmp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, make: Callable[[], Awaitable[_T]], timeout: float) -> _T:
        async def bounded() -> _T:
            return await asyncio.wait_for(make(), timeout)

        future = asyncio.run_coroutine_threadsafe(bounded(), self._ensure_loop())
        try:
            # The coroutine times itself out; the extra second only guards a stuck loop.
            return future.result(timeout + 1.0)
        except TimeoutError:
            future.cancel()
            raise

    def _timeout(self, target: Target) -> float:
        timeout = QMPSettings.stored(target).timeout
        return self.timeout if timeout is None else timeout

    async def _session(
        self,
        target: Target,
        commands: Callable[[Any], Awaitable[_T]],
        sent: threading.Event | None = None,
    ) -> _T:
        address = QMPSettings.stored(target).address
        # QEMU serves one client per monitor socket: take turns within this process, and
        # retry briefly while another process holds the monitor.
        lock = self._locks.setdefault(address, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            client, opened = self._take(address)
            if client is not None and client.runstate != Runstate.RUNNING:
                await _disconnect(client)
                client = None
            kept = client is not None
            if client is None:
                client, opened = await self._connect(target), loop.time()
            try:
                try:
                    result = await commands(client)
                except (ExecInterruptedError, StateError, OSError, EOFError):
                    # A kept session QEMU has dropped: start over once, if nothing went out.
                    if not kept or (sent is not None and sent.is_set()):
                        raise
                    await _disconnect(client)
                    client, opened = await self._connect(target), loop.time()
                    result = await commands(client)
            except BaseException:
                await _disconnect(client)
                raise
            if loop.time() - opened < _MAX_HOLD_SECONDS:
                self._keep(address, client, opened)
            else:
                await _disconnect(client)
            return result

    def _take(self, address: str) -> tuple[Any, float]:
        kept = self._kept.pop(address, None)
        if kept is None:
            return None, 0.0
        client, opened, timer = kept
        timer.cancel()
        return client, opened

    def _keep(self, address: str, client: Any, opened: float) -> None:
        lock = self._locks[address]

        async def expire() -> None:
            async with lock:
                if self._kept.get(address, (None, 0.0, None))[2] is timer:
                    del self._kept[address]
                    await _disconnect(client)

        def start_expiry() -> None:
            task = asyncio.ensure_future(expire())
            self._expiring.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._expiring.discard)

        timer = asyncio.get_running_loop().call_later(_LINGER_SECONDS, start_expiry)
        self._kept[address] = (client, opened, timer)

    async def _release_all(self) -> None:
        while self._kept:
            client, _, timer = self._kept.pop(next(iter(self._kept)))
            timer.cancel()
            await _disconnect(client)

    async def _connect(self, target: Target) -> QMPClient:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(_BUSY_RETRY_SECONDS, self._timeout(target) / 2)
        while True:
            client = QMPClient(f"kdiag-{target.instance_id}")
            try:
                await client.connect(parse_address(target.address))
            except ConnectError as exc:
                cause = exc.exc
                # A handover race between two clients can garble or cut the greeting.
                busy = (isinstance(cause, OSError) and cause.errno in _BUSY_ERRNOS) or isinstance(
                    cause, GreetingError | NegotiationError | EOFError
                )
                if not busy or loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.02)
            else:
                return client

    # --- the Backend interface -------------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> QMPSettings:
        """:class:`QMPSettings` from a target mapping.

        :raises ConfigError: no ``address``, an unknown key, or a ``timeout`` that is not a
            positive number.
        """
        return QMPSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        async def query(client: Any) -> InstanceState:
            reply = await client.execute("query-status")
            return instance_state(str(reply["status"]))

        with map_qmp_errors(target):
            return self._run(lambda: self._session(target, query), self._timeout(target))

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        sent = threading.Event()

        async def inject(client: Any) -> str:
            reply = await client.execute("query-status")
            status = str(reply["status"])
            if status != "running":
                raise IncorrectState(
                    f"QMP {target.address}: the guest is {status!r}, not running; NMI not sent",
                    target=target.instance_id,
                )
            sent.set()
            await client.execute("inject-nmi")
            return status

        with map_qmp_errors(target, sent=sent):
            self._run(lambda: self._session(target, inject, sent), self._timeout(target))
        log.info("inject-nmi accepted by QEMU for %s", target.instance_id)
        return NMIResult(
            self.name, target.instance_id, f"NMI accepted by QEMU (inject-nmi on {target.address})"
        )

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._locks = {}
        if loop is not None and thread is not None:
            with contextlib.suppress(Exception):  # closing: a stuck monitor must not block it
                asyncio.run_coroutine_threadsafe(self._release_all(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
