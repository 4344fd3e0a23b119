"""The guest's serial console: follow the file, recognise the lab's marker lines.

Lines written by the guest ``/init`` start with ``LAB: ``; the facts collector's output is a
base64 block between ``LAB: LAB-FACTS-BEGIN`` and ``LAB: LAB-FACTS-END``.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ("ConsoleFollower", "decode_facts", "follow", "parse_fields")

_FIELD = re.compile(r"(\w+)=(\S+)")


def parse_fields(line: str) -> dict[str, str]:
    """``key=value`` words of a marker line."""
    return dict(_FIELD.findall(line))


def decode_facts(lines: list[str]) -> bytes | None:
    """The collector's output from the base64 lines of a facts block (None if garbled)."""
    text = "".join(line.strip() for line in lines if re.fullmatch(r"[A-Za-z0-9+/=]+", line.strip()))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class ConsoleFollower:
    """Reads complete lines from a growing console file, remembering the byte offset."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    def lines(self) -> list[tuple[int, str]]:
        """New complete lines as ``(offset of the line, text)``."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + len(self._partial))
                data = fh.read()
        except FileNotFoundError:
            return []
        if not data:
            return []
        data = self._partial + data
        out = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            text = data[start:end].decode("utf-8", errors="replace").rstrip("\r")
            out.append((self.offset + start, text))
            start = end + 1
        self.offset += start
        self._partial = data[start:]
        return out


def follow(
    path: Path, *, from_start: bool = True, stop: Callable[[], bool] | None = None
) -> Iterator[str]:
    """Yield console lines as they arrive (``lab console``) until ``stop()`` is true."""
    offset = 0 if from_start or not path.exists() else path.stat().st_size
    follower = ConsoleFollower(path, offset)
    while True:
        got = follower.lines()
        for _, text in got:
            yield text
        if not got:
            if stop is not None and stop():
                return
            time.sleep(0.1)
