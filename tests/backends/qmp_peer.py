"""A QMP server the test controls, on a real UNIX socket: it speaks the protocol the way
QEMU does (greeting, ``qmp_capabilities``, ``query-status``) and misbehaves on purpose at
one command, so a test can count exactly what reached "the hypervisor"."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_GREETING = {
    "QMP": {
        "version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""},
        "capabilities": ["oob"],
    }
}


class QMPPeer:
    """Serves QMP on ``path`` in a thread.  ``drop_at`` names the command after which the
    connection is closed without an answer (``"inject-nmi"``: the NMI was received, the
    answer is lost; ``"query-status"``: before anything was sent).  ``received`` lists every
    command, in order, across connections."""

    def __init__(self, path: Path, *, drop_at: str | None = "inject-nmi", hang: bool = False):
        self.path = path
        self.drop_at = drop_at
        self.hang = hang  # at drop_at: keep the connection open and never answer
        self.received: list[str] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def count(self, command: str) -> int:
        with self._lock:
            return self.received.count(command)

    def __enter__(self) -> QMPPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
        for conn in self._held:
            conn.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _messages(self, conn: socket.socket) -> Iterator[dict[str, Any]]:
        """QMP clients send JSON objects back to back, not necessarily one per line."""
        decoder = json.JSONDecoder()
        buffer = ""
        while chunk := conn.recv(65536):
            buffer += chunk.decode()
            while buffer.strip():
                try:
                    message, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break
                buffer = buffer.lstrip()[end:]
                yield message

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.sendall(json.dumps(_GREETING).encode() + b"\r\n")
            for message in self._messages(conn):
                command = message.get("execute") or message.get("exec-oob")
                with self._lock:
                    self.received.append(command)
                if command == self.drop_at:
                    if self.hang:
                        self._held.append(conn)
                        return
                    break
                reply: dict[str, object] = {"return": {}}
                if command == "query-status":
                    reply = {"return": {"status": "running", "running": True, "singlestep": False}}
                if "id" in message:
                    reply["id"] = message["id"]
                conn.sendall(json.dumps(reply).encode() + b"\r\n")
        except OSError:
            pass
        finally:
            if conn not in self._held:
                conn.close()
