"""Ports for servers the tests start as separate processes (``kdiag serve``, sushy, a BMC).

Such a server binds its port seconds after the test picked it (a Python process starting on a
loaded machine), and a port from ``bind(0)`` is one of the kernel's ephemeral ports: in that
window any ``connect()`` or ``bind(0)`` on the machine (a client of another test, a lab
guest's QEMU picking its SSH forward) may be handed the same one, and the server then fails
to start, or the test talks to someone else.  :func:`free_port` therefore picks below the
ephemeral range (``net.ipv4.ip_local_port_range``), where the kernel hands out nothing: only
another explicit bind to the same number could still take it.  Servers that can be given a
listening socket or port 0 should still get those instead.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ("free_port",)

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: How many ports below the ephemeral range to pick from.
_SPAN = 10_000
_RANDOM = random.SystemRandom()  # not the random module's state, which tests may seed


def _ephemeral_low() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # as the servers bind: SO_REUSEADDR lets a port in TIME_WAIT be reused, and
            # still refuses one that something listens on
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 now, below the ephemeral range when there is room for it
    (else one from ``bind(0)``); ``kind`` is ``SOCK_STREAM`` (TCP) or ``SOCK_DGRAM``."""
    low = _ephemeral_low()
    start = max(1024, low - _SPAN)
    if low - start >= 1000:
        for _ in range(200):
            port = _RANDOM.randrange(start, low)
            if _bindable(port, kind):
                return port
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
