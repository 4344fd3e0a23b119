"""The flattened stream of ``makedumpfile -F`` and QEMU's ``kdump-*`` formats, read in place.

A 4096-byte start header (``makedumpfile`` NUL-padded to 16 bytes, then big-endian ``type`` 1
and ``version`` 1) is followed by records: big-endian ``offset`` and ``buf_size`` (i64 each)
and ``buf_size`` bytes that belong at ``offset`` of the reassembled file.  ``-1, -1`` ends the
stream.  Records may come in any order; a later record wins where two overlap.

:class:`FlattenedSource` scans the record headers once (16 bytes each, never the payloads),
keeps a sorted index, and serves positioned reads of the reassembled file from it, so the
kdump or ELF reader above never knows the difference.  Holes between records read as zeros,
as in a file rebuilt with ``makedumpfile -R``.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from array import array

from kdiag.errors import NotACrashDump, UnsupportedDump
from kdiag.vmcore.formats import ProgressFn
from kdiag.vmcore.source import ByteSource, check_range

__all__ = ("FLAT_HEADER_SIZE", "FLAT_SIGNATURE", "FlattenedSource", "is_flattened")

FLAT_SIGNATURE = b"makedumpfile\0\0\0\0"
FLAT_HEADER_SIZE = 4096
_START = struct.Struct(">16sqq")
_RECORD = struct.Struct(">qq")
_TYPE_FLAT_HEADER = 1
_MAX_TARGET = 1 << 50


def is_flattened(head: bytes) -> bool:
    return head[:16] == FLAT_SIGNATURE


class FlattenedSource:
    """A :class:`~kdiag.vmcore.source.ByteSource` view of the file a flattened stream describes."""

    def __init__(self, file: ByteSource, *, progress: ProgressFn | None = None) -> None:
        self.file = file
        head = file.read(0, _START.size, "flattened header")
        signature, ftype, version = _START.unpack(head)
        if signature != FLAT_SIGNATURE:
            raise NotACrashDump("no makedumpfile flattened signature")
        if ftype != _TYPE_FLAT_HEADER:
            raise UnsupportedDump(f"flattened header type {ftype} is not 1 (TYPE_FLAT_HEADER)")
        self.version = version
        self.complete = True
        self.incomplete_reason: str | None = None
        self.records = 0
        self._starts = array("q")
        self._ends = array("q")
        self._where = array("q")
        self._index(progress)

    # --- indexing -------------------------------------------------------------------------

    def _index(self, progress: ProgressFn | None) -> None:
        file = self.file
        pos = FLAT_HEADER_SIZE
        raw: list[tuple[int, int, int]] = []  # (target offset, length, stream position)
        step = max(1, file.size // 100)
        next_report = step
        while True:
            if pos + _RECORD.size > file.size:
                self._cut(f"the stream ends at {file.size:#x} without its end marker")
                break
            offset, length = _RECORD.unpack(file.read(pos, _RECORD.size, "flattened record"))
            if offset == -1 and length == -1:
                break
            if offset < 0 or length <= 0 or offset > _MAX_TARGET:
                raise NotACrashDump(
                    f"flattened record at {pos:#x} has a bad header ({offset}, {length})"
                )
            data_at = pos + _RECORD.size
            available = min(length, file.size - data_at)
            if available < length:
                self._cut(f"the stream is cut inside the record at {pos:#x}")
            if available > 0:
                raw.append((offset, available, data_at))
            if available < length:
                break
            pos = data_at + length
            if progress is not None and pos >= next_report:
                progress("index flattened records", pos, file.size)
                next_report = pos + step
        self.records = len(raw)
        for start, end, where in _resolve(raw):
            self._starts.append(start)
            self._ends.append(end)
            self._where.append(where)

    def _cut(self, reason: str) -> None:
        self.complete = False
        self.incomplete_reason = reason

    # --- ByteSource -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def bytes_read(self) -> int:
        return self.file.bytes_read

    def read(self, offset: int, size: int, what: str = "data") -> bytes:
        check_range(offset, size, self.size, what)
        return self._gather(offset, size)

    def read_upto(self, offset: int, size: int) -> bytes:
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        return self._gather(offset, min(size, self.size - offset))

    def _gather(self, offset: int, size: int) -> bytes:
        out = bytearray()
        end = offset + size
        i = bisect.bisect_right(self._starts, offset) - 1
        i = max(i, 0)
        cursor = offset
        n = len(self._starts)
        while cursor < end and i < n:
            start, stop = self._starts[i], self._ends[i]
            if stop <= cursor:
                i += 1
                continue
            if start >= end:
                break
            if start > cursor:
                out += bytes(start - cursor)
                cursor = start
            take = min(stop, end) - cursor
            out += self.file.read(self._where[i] + (cursor - start), take, "flattened payload")
            cursor += take
            i += 1
        if cursor < end:
            out += bytes(end - cursor)
        return bytes(out)

    def close(self) -> None:
        self.file.close()


def _resolve(raw: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Sorted, non-overlapping ``(start, end, stream position)`` pieces; later records win."""
    ordered = sorted(raw, key=lambda r: r[0])
    if all(a[0] + a[1] <= b[0] for a, b in itertools.pairwise(ordered)):
        return [(s, s + n, w) for s, n, w in ordered]
    # Overlaps: paint records in stream order over a sorted list of pieces.
    starts: list[int] = []
    pieces: list[tuple[int, int, int]] = []
    for s, n, w in raw:
        e = s + n
        i = bisect.bisect_left(starts, s)
        if i > 0 and pieces[i - 1][1] > s:
            i -= 1
        keep_left: list[tuple[int, int, int]] = []
        keep_right: list[tuple[int, int, int]] = []
        j = i
        while j < len(pieces) and pieces[j][0] < e:
            ps, pe, pw = pieces[j]
            if ps < s:
                keep_left.append((ps, s, pw))
            if pe > e:
                keep_right.append((e, pe, pw + (e - ps)))
            j += 1
        new = [*keep_left, (s, e, w), *keep_right]
        pieces[i:j] = new
        starts[i:j] = [p[0] for p in new]
    return pieces
