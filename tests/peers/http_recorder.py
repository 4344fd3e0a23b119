"""A real HTTP server on loopback that records every request and answers from a script.

The cloud backends (openstack, gcp, azure) have no local peer: their tests point the real
SDK at this server and assert the exact requests (method, path, query, headers, body)
against each API's documented contract, answering with documented responses.  Nothing of
kdiag's own code is replaced: the SDK serialises, authenticates and parses for real.

``routes`` maps ``(method, path-regex)`` to a :class:`Reply` or to a function of the
:class:`Recorded` request returning one; the first match wins, unmatched requests get 404.
A reply with ``delay`` sleeps before answering (a slow server, for timeouts); ``drop``
closes the connection without an answer.  ``upgrade`` answers a WebSocket handshake (RFC
6455) and sends one text frame, then waits for the client to close.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = b""  # bytes, str, or a JSON value
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    upgrade: bool = False

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


Route = Reply | Callable[[Recorded], Reply]


class HTTPRecorder:
    """Serves on 127.0.0.1:<free port> in threads; ``url`` is its base URL."""

    def __init__(self, routes: dict[tuple[str, str], Route] | None = None) -> None:
        self.routes: dict[tuple[str, str], Route] = dict(routes or {})
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                try:
                    self._answer()
                except OSError:  # the client gave up (a timeout test): nothing to answer
                    self.close_connection = True

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                request = Recorded(
                    self.command,
                    urllib.parse.unquote(url.path),
                    urllib.parse.parse_qs(url.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with recorder._lock:
                    recorder.requests.append(request)
                reply = recorder._reply(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.upgrade:
                    self._websocket(request)
                    return
                data, headers = reply.encoded()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _websocket(self, request: Recorded) -> None:
                key = request.headers.get("sec-websocket-key", "").encode()
                accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                text = b"\r\nconsole ready\r\n"
                self.wfile.write(struct.pack("!BB", 0x81, len(text)) + text)
                self.wfile.flush()
                self.connection.settimeout(10)
                try:
                    while chunk := self.connection.recv(4096):
                        if chunk[0] & 0x0F == 0x8:  # the client's close frame: answer it
                            self.wfile.write(b"\x88\x00")
                            self.wfile.flush()
                            break
                except OSError:
                    pass
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a kept-alive client must not hold up close
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._closed = False

    def _reply(self, request: Recorded) -> Reply:
        for (method, pattern), route in list(self.routes.items()):
            if method == request.method and re.fullmatch(pattern, request.path):
                return route(request) if callable(route) else route
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})

    def matching(self, method: str, pattern: str) -> list[Recorded]:
        with self._lock:
            return [
                r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)
            ]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> HTTPRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
