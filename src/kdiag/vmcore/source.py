"""Positioned, counted reads from a dump file (or from a view of one).

Every reader in :mod:`kdiag.vmcore` goes through a :class:`ByteSource`: ``read`` returns
exactly the bytes asked for or raises :class:`~kdiag.errors.TruncatedDump`; ``read_upto``
returns what is there before the end of the file.  Sources count what they read from the
real file (``bytes_read``), which the benchmark reports.
"""

from __future__ import annotations

import os
import stat
from typing import Protocol

from kdiag.errors import ConfigError, DumpFormatError, TruncatedDump

__all__ = ("ByteSource", "FileSource", "check_range")


class ByteSource(Protocol):
    """Random-access bytes: a file, or a flattened stream seen as the file it describes."""

    @property
    def size(self) -> int: ...

    @property
    def bytes_read(self) -> int: ...

    def read(self, offset: int, size: int, what: str = "data") -> bytes: ...

    def read_upto(self, offset: int, size: int) -> bytes: ...

    def close(self) -> None: ...


def check_range(offset: int, size: int, limit: int, what: str) -> None:
    """Raise :class:`TruncatedDump` unless ``[offset, offset + size)`` lies in ``[0, limit)``."""
    if offset < 0 or size < 0:
        raise TruncatedDump(f"{what}: negative offset or length ({offset}, {size})", offset=offset)
    if offset + size > limit:
        raise TruncatedDump(
            f"{what}: {size} bytes at {offset:#x} run past the end of the file ({limit:#x})",
            offset=offset,
        )


class FileSource:
    """A read-only file read with ``os.pread``; never loads more than a caller asks for.

    A path that cannot be opened is the caller's mistake, not a bad dump: it raises
    :class:`~kdiag.errors.ConfigError` (missing file, no permission, a directory).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except PermissionError as exc:
            raise ConfigError(
                f"cannot read {name}: permission denied (crash dumps are readable by root only:"
                " run as root, or get read access to the file)"
            ) from exc
        except OSError as exc:
            raise ConfigError(f"cannot open {name}: {exc.strerror}") from exc
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigError(f"{name} is a directory, not a crash dump")
        self._adopt(fd)

    @classmethod
    def from_fd(cls, fd: int) -> FileSource:
        """A source over an open file descriptor, which it then owns (and closes)."""
        self = cls.__new__(cls)
        self._adopt(fd)
        return self

    def _adopt(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._read = 0
        self._closed = False

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def size(self) -> int:
        return self._size

    @property
    def bytes_read(self) -> int:
        return self._read

    def read(self, offset: int, size: int, what: str = "data") -> bytes:
        check_range(offset, size, self._size, what)
        data = self._pread(offset, size)
        if len(data) != size:
            raise TruncatedDump(f"{what}: short read at {offset:#x}", offset=offset)
        return data

    def read_upto(self, offset: int, size: int) -> bytes:
        if offset < 0 or size <= 0 or offset >= self._size:
            return b""
        return self._pread(offset, min(size, self._size - offset))

    def _pread(self, offset: int, size: int) -> bytes:
        if self._closed:
            raise DumpFormatError("the dump is closed")
        try:
            data = os.pread(self._fd, size, offset)
        except OSError as exc:
            raise DumpFormatError(f"read error: {exc.strerror}", offset=offset) from exc
        self._read += len(data)
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)
