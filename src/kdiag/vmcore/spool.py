"""Dumps that are not a plain file: compressed (zstd, gzip, xz, bzip2) or a stream (stdin).

The readers need random access, so such input is copied once into an anonymous temporary
file and read from there. The copy is created mode 0600 in ``$TMPDIR`` and unlinked at once
(it holds the crashed machine's memory and disappears with the process); all-zero blocks are
skipped with a seek, so it takes the disk space of the non-zero part of the dump only.
Decompression runs in bounded memory (1 MiB at a time). ``zstd`` needs the ``kdiag[zstd]``
extra (``zstandard``); gzip, xz and bzip2 come with Python.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import importlib
import lzma
import os
import tempfile
import zlib
from collections.abc import Callable
from typing import IO, Any, Protocol

from kdiag.errors import ConfigError, DumpFormatError, TruncatedDump, UnsupportedDump

__all__ = ("COMPRESSED_MAGIC", "Reader", "decompressed", "file_compression", "spool", "unpack")


class Reader(Protocol):
    """What :func:`spool` reads from: a binary file or a decompressing stream."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


#: File magic -> compression of a whole dump file (not makedumpfile's per-page codecs).
COMPRESSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)

_DECOMPRESS_HINT = {
    "zstd": "zstd -d --long=31 FILE",
    "gzip": "gunzip FILE",
    "xz": "unxz FILE",
    "bzip2": "bunzip2 FILE",
}
_CHUNK = 1 << 20
ProgressFn = Callable[[str, int, int], None]


def file_compression(head: bytes) -> str | None:
    """``"zstd"``, ``"gzip"``, ``"xz"`` or ``"bzip2"`` when ``head`` starts such a file."""
    for magic, kind in COMPRESSED_MAGIC:
        if head.startswith(magic):
            return kind
    return None


def decompressed(raw: IO[bytes], kind: str, name: str) -> Reader:
    """A stream of the decompressed bytes of ``raw`` (a ``kind`` file called ``name``)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(raw)
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    try:
        zstandard: Any = importlib.import_module("zstandard")
    except ImportError:
        raise UnsupportedDump(
            f"{name} is zstd-compressed: install kdiag[zstd] to read it directly, or "
            f"decompress it first: {_DECOMPRESS_HINT['zstd'].replace('FILE', name)}"
        ) from None
    # --long=31 archives (the usual way to pack a dump) need the 2 GiB window allowed.
    reader: Reader = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(
        raw, read_across_frames=True
    )
    return reader


def unpack(raw: IO[bytes], kind: str, *, name: str, progress: ProgressFn | None = None) -> int:
    """Decompress ``raw`` (a ``kind`` file) into a :func:`spool`; return its descriptor.

    :raises TruncatedDump: the compressed data ends early (a zstd frame is checked against
        the content size its header declares: the zstd reader itself stops quietly).
    """
    head = raw.read(18)  # the longest zstd frame header
    raw.seek(0)
    stream = decompressed(raw, kind, name)
    try:
        fd = spool(stream, what=f"decompress ({kind})", name=name, progress=progress)
    finally:
        stream.close()
    if kind == "zstd":
        zstandard: Any = importlib.import_module("zstandard")
        try:
            declared = zstandard.frame_content_size(head)
        except zstandard.ZstdError:
            declared = -1  # no size in the header: nothing to check against
        size = os.fstat(fd).st_size
        if 0 <= size < declared:  # several frames may hold more than the first declares
            os.close(fd)
            raise TruncatedDump(
                f"{name}: the compressed data ends early ({size} of the {declared} bytes"
                " its first zstd frame declares)"
            )
    return fd


def _codec_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [zlib.error, lzma.LZMAError, gzip.BadGzipFile]
    with contextlib.suppress(ImportError):
        errors.append(importlib.import_module("zstandard").ZstdError)
    return tuple(errors)


def spool(stream: Reader, *, what: str, name: str, progress: ProgressFn | None = None) -> int:
    """Copy ``stream`` into an anonymous 0600 temporary file; return its descriptor.

    :raises TruncatedDump: the compressed stream ends early.
    :raises DumpFormatError: the compressed data is corrupt.
    :raises ConfigError: the temporary directory cannot take the copy (``$TMPDIR``).
    """
    fd, tmp_name = tempfile.mkstemp(prefix="kdiag-dump-")  # mode 0600
    os.unlink(tmp_name)
    try:
        _copy(stream, fd, what=what, name=name, progress=progress)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy(stream: Reader, fd: int, *, what: str, name: str, progress: ProgressFn | None) -> None:
    offset = 0
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except EOFError as exc:
            raise TruncatedDump(f"{name}: the compressed data ends early ({exc})") from exc
        except _codec_errors() as exc:
            raise DumpFormatError(f"{name}: the compressed data is corrupt ({exc})") from exc
        except OSError as exc:
            raise DumpFormatError(f"{name}: read error: {exc.strerror or exc}") from exc
        if not chunk:
            break
        try:
            if chunk.count(0) != len(chunk):  # all-zero blocks stay holes
                os.pwrite(fd, chunk, offset)
            offset += len(chunk)
            os.ftruncate(fd, offset)
        except OSError as exc:
            raise ConfigError(
                f"cannot keep a copy of {name} in {tempfile.gettempdir()}: {exc.strerror}"
                " (point TMPDIR at a file system with room for the dump)"
            ) from exc
        if progress is not None:
            progress(what, offset, 0)
