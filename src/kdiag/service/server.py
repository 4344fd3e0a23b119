"""Running the app under uvicorn: in the foreground (``kdiag serve``) or in a thread (tests,
benchmarks).

:func:`run_foreground` runs it in the main thread until SIGINT or SIGTERM and returns the
signal that stopped it, so a graceful stop is an ordinary exit 0. :class:`ServerThread`
binds its own socket first (port 0 → a free port, no race), then runs uvicorn on it in a
daemon thread; ``with ServerThread(app) as server: server.url``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import threading
from types import FrameType
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = (
    "HEAD_TIMEOUT",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "BoundedHttpProtocol",
    "ServerThread",
    "bind_socket",
    "is_loopback",
    "run_foreground",
    "uvicorn_config",
)

log = logging.getLogger("kdiag.service")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


class _HeadTooLarge(Exception):
    pass


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
    #: Seconds a connection may take to send a request's line and headers, counted from its
    #: first byte (or from the connection, for the first request): a slow-loris client that
    #: trickles a header never holds a connection longer.
    head_timeout = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

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
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.send_400_response("Request header fields too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            raise _HeadTooLarge  # httptools: HttpParserCallbackError, answered 400, closed
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()


def uvicorn_config(
    app: Any,
    *,
    access_log: bool = False,
    log_level: str = "warning",
    forwarded_allow_ips: str | None = None,
) -> Any:
    """The uvicorn settings kdiag runs with (HTTP/1.1 keep-alive, no websockets, no lifespan).

    ``X-Forwarded-For``/``-Proto`` are ignored unless ``forwarded_allow_ips`` names the
    proxies allowed to set them: the peer address is ``aws:SourceIp`` in policies, and
    uvicorn's default would let any local process claim another address.
    """
    return uvicorn.Config(
        app,
        http=BoundedHttpProtocol,
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

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn_config(app))
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
