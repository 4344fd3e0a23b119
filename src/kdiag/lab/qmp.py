"""A small synchronous QMP client over a unix socket (enough for the lab's own needs).

Events that arrive while waiting for a reply are kept in :attr:`QMPClient.events`.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from kdiag.errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = ("QMPClient",)


class QMPClient:
    """``with QMPClient(path) as qmp: qmp.execute("inject-nmi")``."""

    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._buf = b""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if time.monotonic() > deadline:
                    self._sock.close()
                    raise BackendUnavailable(f"cannot connect to QMP at {path}: {exc}") from exc
                time.sleep(0.1)
        greeting = self._read()
        if "QMP" not in greeting:
            raise BackendError(f"no QMP greeting on {path}")
        self.execute("qmp_capabilities")

    def _read(self, timeout: float | None = None) -> dict[str, Any]:
        if timeout is not None:
            self._sock.settimeout(timeout)
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise BackendTimeout(f"QMP at {self.path} did not answer") from exc
            if not chunk:
                raise BackendUnavailable(f"QMP at {self.path} closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one command and return its ``return`` value."""
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                err = reply["error"]
                raise BackendError(f"QMP {command}: {err.get('class')}: {err.get('desc')}")
            return reply.get("return")

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next asynchronous event, or None after ``timeout`` seconds."""
        if self.events:
            return self.events.pop(0)
        try:
            msg = self._read(timeout)
        except BackendTimeout:
            return None
        return msg if "event" in msg else None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> QMPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
