"""Positioned, counted reads from a dump file (or from a view of one).

Every reader in :mod:`kdiag.vmcore` goes through a :class:`ByteSource`: ``read`` returns
exactly the bytes asked for or raises :class:`~kdiag.errors.TruncatedDump`; ``read_upto``
returns what is there before the end of the file.  Sources count what they read from the
real file (``bytes_read``), which the benchmark reports.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from kdiag.errors import ConfigError, DumpFormatError, TruncatedDump

__all__ = ("ByteSource", "FileSource", "RangeSource", "check_range")


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


class _Counted:
    """What every source does with its one primitive, ``_pread(offset, size)`` (the bytes
    at ``offset``, fewer only at the end of the file): bound-checked and clipped reads, and
    the count of bytes read."""

    _size: int
    _read: int

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
        raise NotImplementedError


class FileSource(_Counted):
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


#: fetch(offset, size) -> exactly those bytes (fewer only at the end of the file)
Fetch = Callable[[int, int], bytes]


class RangeSource(_Counted):
    """Bytes fetched by range from elsewhere (an SFTP file), through a small block cache.

    Reads are rounded out to ``block``-sized blocks; the blocks missing from a read are
    fetched in one call per contiguous run (each call is a round trip to a remote file), and
    at most ``cache_blocks`` blocks are kept (least recently used go first).  ``bytes_read``
    counts what was fetched, i.e. what crossed the network.  The local path
    (:class:`FileSource`) does not go through this class.
    """

    def __init__(
        self,
        fetch: Fetch,
        size: int,
        *,
        block: int = 64 * 1024,
        cache_blocks: int = 256,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if block <= 0 or block & (block - 1) or cache_blocks < 1 or size < 0:
            raise ValueError("block must be a power of two, cache_blocks >= 1, size >= 0")
        self._fetch = fetch
        self._size = size
        self._block = block
        self._limit = cache_blocks
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._read = 0
        self._fetches = 0
        self._on_close = on_close
        self._closed = False

    @property
    def fetches(self) -> int:
        """How many fetch calls (round trips) were made."""
        return self._fetches

    def _pread(self, offset: int, size: int) -> bytes:
        if self._closed:
            raise DumpFormatError("the dump is closed")
        if size == 0:
            return b""
        first, last = offset // self._block, (offset + size - 1) // self._block
        blocks = range(first, last + 1)
        missing = [b for b in blocks if b not in self._cache]
        got: dict[int, bytes] = {b: self._cache[b] for b in blocks if b in self._cache}
        run_start = 0
        for i, b in enumerate(missing):
            if i + 1 == len(missing) or missing[i + 1] != b + 1:
                got.update(self._fetch_run(missing[run_start], b))
                run_start = i + 1
        for b in blocks:
            self._cache[b] = got[b]
            self._cache.move_to_end(b)
        joined = b"".join(got[b] for b in blocks)
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        start = offset - first * self._block
        return joined[start : start + size]

    def _fetch_run(self, first: int, last: int) -> dict[int, bytes]:
        start = first * self._block
        length = min((last + 1) * self._block, self._size) - start
        data = self._fetch(start, length)
        self._fetches += 1
        self._read += len(data)
        if len(data) != length:
            raise TruncatedDump(f"short read at {start:#x} ({len(data)} of {length})", offset=start)
        return {
            b: data[(b - first) * self._block : (b - first + 1) * self._block]
            for b in range(first, last + 1)
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cache.clear()
            if self._on_close is not None:
                self._on_close()
