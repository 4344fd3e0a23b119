"""Running the app under uvicorn: in the foreground (``kdiag serve``) or in a thread (tests,
benchmarks).

:func:`run_foreground` runs it in the main thread until SIGINT or SIGTERM and returns the
signal that stopped it, so a graceful stop is an ordinary exit 0. :class:`ServerThread`
binds its own socket first (port 0 → a free port, no race), then runs uvicorn on it in a
daemon thread; ``with ServerThread(app) as server: server.url``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kdiag.backends.remote import is_loopback
from kdiag.service.audit import WireEvent
from kdiag.service.wire import BODY_TIMED_OUT, peer_address

__all__ = (
    "BODY_TIMEOUT",
    "HEAD_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "TALLY_INTERVAL",
    "BoundedHttpProtocol",
    "ServerThread",
    "bind_socket",
    "is_loopback",
    "run_foreground",
    "uvicorn_config",
)

log = logging.getLogger("kdiag.service")


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: the kernel picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket says it is TCP; without it every answer waits ~40 ms for Nagle.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    return sock


#: The most bytes of request line and headers one request may send (a SigV4 request needs
#: about 1 KiB; a presigned URL 2 KiB), and the most header fields.
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
#: Seconds allowed for a request's line and headers (:class:`BoundedHttpProtocol`).
HEAD_TIMEOUT = 10.0
#: Seconds allowed for a request's body, from the end of its headers.
BODY_TIMEOUT = 10.0
#: Connections served at once by one process; more are answered 503 and closed at once,
#: so a flood of idle connections cannot use up the file descriptors.
MAX_CONNECTIONS = 1000


#: Seconds over which connections that carry no request (refused over the cap, or closed
#: or timed out before their first byte) are counted into one audit row per kind: a flood
#: costs at most one row per kind, per process, per interval.
TALLY_INTERVAL = 5.0
#: The most distinct peer addresses one tally row names.
_TALLY_PEERS = 5


class _HeadTooLarge(Exception):
    pass


class _WireTally:
    """Counts connections that carry no request and audits them in aggregate: the first
    one arms a timer; when it fires, one row per kind says how many, over how long, and
    from which peers (the first few)."""

    def __init__(self, interval: float = TALLY_INTERVAL) -> None:
        self.interval = interval
        self._counts: dict[tuple[str, int | None], int] = {}
        self._peers: dict[tuple[str, int | None], list[str]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        auditor: WireAuditor,
        kind: tuple[str, int | None],
        peer: str | None,
    ) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        peers = self._peers.setdefault(kind, [])
        if peer is not None and peer not in peers and len(peers) < _TALLY_PEERS:
            peers.append(peer)
        if self._timer is None:
            self._timer = loop.call_later(self.interval, self._flush, loop, auditor)

    def _flush(self, loop: asyncio.AbstractEventLoop, auditor: WireAuditor) -> None:
        self._timer = None
        counts, peers = self._counts, self._peers
        self._counts, self._peers = {}, {}
        for (code, status), count in counts.items():
            what = _TALLY_TEXT[code]
            shown = ", ".join(peers.get((code, status), []))
            more = ", ..." if len(peers.get((code, status), [])) >= _TALLY_PEERS else ""
            message = (
                f"{count} connection(s) {what} within {self.interval:g} s "
                f"(peers: {shown or '-'}{more})"
            )
            named = peers.get((code, status))
            first = named[0] if named else None
            event = WireEvent(code, message, status, first)
            loop.run_in_executor(None, _run_auditor, auditor, event)


_TALLY_TEXT = {
    "ConnectionRefused": "refused over the connection cap before anything was read",
    "EmptyConnection": "closed or timed out without sending a byte",
}


#: Writes a :class:`WireEvent`'s audit row (called in a worker thread, never on the loop).
WireAuditor = Callable[[WireEvent], None]


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the request head bounded.

    httptools buffers a header's value until it ends and bounds neither its size nor the
    number of headers, so one 128 MB header was held in memory.  Here the bytes received
    while a request's head is incomplete are counted after each read, and past
    :data:`MAX_HEAD_BYTES` (or :data:`MAX_HEADERS` fields) the connection is answered 400
    and closed: at most one read (256 KiB) beyond the bound is ever buffered.
    """

    _in_head = True
    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _refused = False
    #: Set when kdiag itself ends the connection (an answer, a timeout): not a disconnect.
    _ended_here = False
    _reject_reason: str | None = None
    #: Seconds a connection may take to send a request's line and headers, counted from its
    #: first byte (or from the connection, for the first request): a slow-loris client that
    #: trickles a header never holds a connection longer.
    head_timeout = HEAD_TIMEOUT
    #: Seconds a request may take to send its body once its headers are in.
    body_timeout = BODY_TIMEOUT
    #: Connections this process serves at once (more are answered 503 and closed).
    max_connections = MAX_CONNECTIONS
    #: Where requests ended here (parser rejections, timeouts, disconnects) are audited.
    auditor: WireAuditor | None = None
    #: Where connections that carry no request are counted (one per server).
    tally: _WireTally | None = None
    _last_refusal_log = 0.0
    #: The status a parser rejection is answered with (431 for the head bounds).
    _reject_status = 400

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse_connection()
            return
        self._arm_head_timer()

    def _refuse_connection(self) -> None:
        """Over :attr:`max_connections`: answer 503 before reading anything and close, so
        the descriptor is free again at once.  Logged at most once a second; counted into
        an aggregated ``ConnectionRefused`` audit row (:class:`_WireTally`)."""
        self._refused = True
        self._tally("ConnectionRefused", 503)
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()
        now = time.monotonic()
        if now - BoundedHttpProtocol._last_refusal_log > 1.0:
            BoundedHttpProtocol._last_refusal_log = now
            log.warning("more than %d connections: refusing new ones", self.max_connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        if not self._refused and not self._ended_here and self._in_head and self._head_bytes:
            self._audit(
                "ClientDisconnected",
                "the client closed the connection before its request head was complete",
                None,
            )
        elif not self._refused and not self._ended_here and self._in_head:
            self._tally("EmptyConnection", None)  # connected, sent nothing, left
        super().connection_lost(exc)

    def _tally(self, code: str, status: int | None) -> None:
        if self.auditor is None or self.tally is None:
            return
        peer = peer_address(self.client[0]) if self.client else None
        self.tally.add(self.loop, self.auditor, (code, status), peer)

    def _audit(self, code: str, message: str, status: int | None) -> None:
        if self.auditor is None:
            return
        scope = getattr(self, "scope", None) or {}
        peer = peer_address(self.client[0]) if self.client else None
        event = WireEvent(code, message, status, peer, scope.get("method"), scope.get("path"))
        self.loop.run_in_executor(None, _run_auditor, self.auditor, event)

    def send_400_response(self, msg: str) -> None:
        """A parser rejection: 400, or 431 when a head bound was crossed; audited."""
        self._ended_here = True
        reason = self._reject_reason or "malformed HTTP request"
        status, self._reject_reason, self._reject_status = self._reject_status, None, 400
        if status != 431:
            self._audit("BadRequest", reason, 400)
            super().send_400_response(msg)
            return
        self._audit("RequestHeaderFieldsTooLarge", reason, 431)
        body = f"Request header fields too large: {reason}.".encode("ascii")
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._ended_here = True
            if self._head_bytes:
                self._audit(
                    "RequestTimeout",
                    f"request head not complete within {self.head_timeout:g} s",
                    408,
                )
            else:  # a silent connection sent no request: counted, not one row each
                self._tally("EmptyConnection", 408)
            self.transport.write(_TIMEOUT_408)
            self.transport.close()

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        """The body did not arrive in time: answer 408 and close.  The app, reading the
        body, then sees a disconnect and audits the request with the flag set here."""
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or self.cycle.response_complete:
            return
        self._ended_here = True
        self.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
        self.cycle.disconnected = True  # the app's answer, if any, goes nowhere
        self.cycle.message_event.set()  # a pending receive() returns http.disconnect
        self.transport.write(_TIMEOUT_408)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._reject_reason = f"request head over {MAX_HEAD_BYTES} bytes"
                self._reject_status = 431
                self.send_400_response("Request header fields too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            self._reject_reason = f"more than {MAX_HEADERS} header fields"
            self._reject_status = 431
            raise _HeadTooLarge  # httptools: HttpParserCallbackError, answered 400, closed
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self.parser.get_method() in (b"POST", b"PUT", b"PATCH") or any(
            name in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        ):
            self._cancel_body_timer()
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._cancel_body_timer()
        super().on_response_complete()


_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def _run_auditor(auditor: WireAuditor, event: WireEvent) -> None:
    try:
        auditor(event)
    except Exception:  # the connection is gone either way; say so loudly
        log.exception("could not audit a request ended by the HTTP layer (%s)", event.code)


def uvicorn_config(
    app: Any,
    *,
    access_log: bool = False,
    log_level: str = "warning",
    forwarded_allow_ips: str | None = None,
    head_timeout: float | None = None,
    body_timeout: float | None = None,
    max_connections: int | None = None,
    auditor: WireAuditor | None = None,
) -> Any:
    """The uvicorn settings kdiag runs with (HTTP/1.1 keep-alive, no websockets, no lifespan).

    ``X-Forwarded-For``/``-Proto`` are ignored unless ``forwarded_allow_ips`` names the
    proxies allowed to set them: the peer address is ``aws:SourceIp`` in policies, and
    uvicorn's default would let any local process claim another address.  Requests the
    HTTP layer ends itself are audited through ``auditor`` (default: the kdiag app's own,
    ``app.state.ctx.audit_wire_event``).  Shutdown waits for requests in flight however
    long they take (a backend call is bounded by its own timeout).
    """
    if auditor is None:
        ctx = getattr(getattr(app, "state", None), "ctx", None)
        auditor = getattr(ctx, "audit_wire_event", None)
    settings: dict[str, Any] = {  # None: the protocol's own (HEAD_TIMEOUT, ...)
        "head_timeout": head_timeout,
        "body_timeout": body_timeout,
        "max_connections": max_connections,
        "auditor": staticmethod(auditor) if auditor is not None else None,
        "tally": _WireTally(),
    }
    protocol = type(
        "KdiagHttpProtocol",
        (BoundedHttpProtocol,),
        {k: v for k, v in settings.items() if v is not None},
    )
    return uvicorn.Config(
        app,
        http=protocol,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        lifespan="off",
        ws="none",
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        date_header=True,
        timeout_keep_alive=30,
    )


#: The signals that stop ``kdiag serve`` gracefully (Ctrl-C and ``kill``).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_foreground(server: uvicorn.Server, sock: socket.socket) -> signal.Signals | None:
    """Serve on ``sock`` in the main thread until SIGINT or SIGTERM; the signal that stopped it.

    uvicorn handles both signals itself while it runs (finish the requests in flight, then
    stop); once stopped it restores the handlers it found and raises the signal again, so
    that with Python's default handlers the process dies of it (status 143 for SIGTERM) after
    a clean shutdown. The handlers installed here only note the signal, which makes a
    graceful stop an ordinary return. A signal that arrives before uvicorn has taken over
    stops the server as soon as it has started. Returns ``None`` when the server stopped on
    its own (``should_exit`` set elsewhere).
    """
    received: list[signal.Signals] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        server.should_exit = True

    previous = {sig: signal.signal(sig, note) for sig in _STOP_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else None


class ServerThread:
    """Serve ``app`` on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        self._sock = bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn_config(app, **config))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        self._thread.start()
        started = threading.Event()

        def wait() -> None:
            while not self._server.started and self._thread.is_alive():
                started.wait(0.01)
            started.set()

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        if not started.wait(timeout) or not self._server.started:
            raise RuntimeError("the in-process server did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
