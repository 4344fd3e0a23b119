"""kdump bitmaps (LSB-first, one bit per pfn) with a lazy rank index.

The 2nd bitmap turns a pfn into a page-descriptor index: the number of set bits below it.
Blocks of 4096 bytes (32768 pfns) are counted in bulk (``int.from_bytes(...).bit_count()``)
the first time a pfn at or above them is looked up, so the file is read at most once and only
as far as needed.  Small bitmaps stay in memory; large ones keep only the per-block prefix
sums and re-read single blocks through an LRU.
"""

from __future__ import annotations

from collections.abc import Callable

from kdiag.vmcore.cache import LRU
from kdiag.vmcore.source import ByteSource

__all__ = ("BLOCK_BYTES", "KEEP_BYTES", "Bitmap")

BLOCK_BYTES = 4096
_BLOCK_BITS = BLOCK_BYTES * 8
_CHUNK_BLOCKS = 64  # count 256 KiB per read
#: Keep bitmaps up to this size in memory (covers 64 GiB of RAM with 4 KiB pages).
KEEP_BYTES = 2 << 20


class Bitmap:
    """A bitmap of ``nbits`` bits at ``offset`` in ``source`` (``length`` bytes stored).

    Bytes past the end of a truncated file read as zero (those pfns are absent).
    """

    def __init__(
        self,
        source: ByteSource,
        offset: int,
        length: int,
        nbits: int,
        *,
        progress: Callable[[str, int, int], None] | None = None,
        label: str = "bitmap",
    ) -> None:
        self.source = source
        self.offset = offset
        self.length = min(length, (nbits + 7) // 8)
        self.nbits = nbits
        self.nblocks = (self.length + BLOCK_BYTES - 1) // BLOCK_BYTES
        self._prefix: list[int] = [0]  # _prefix[i] = set bits in blocks < i
        self._keep = self.length <= KEEP_BYTES
        self._kept: dict[int, bytes] = {}
        self._lru: LRU[int, bytes] = LRU(64)
        self._progress = progress
        self._label = label

    def _read_blocks(self, first: int, count: int) -> bytes:
        start = first * BLOCK_BYTES
        size = min(count * BLOCK_BYTES, self.length - start)
        data = self.source.read_upto(self.offset + start, size)
        if len(data) < size:
            data += bytes(size - len(data))
        return data

    def block(self, index: int) -> bytes:
        data = self._kept.get(index) if self._keep else self._lru.get(index)
        if data is None:
            data = self._read_blocks(index, 1)
            if self._keep:
                self._kept[index] = data
            else:
                self._lru.put(index, data)
        return data

    def _count_through(self, index: int) -> None:
        """Make ``_prefix`` cover blocks ``0 .. index`` (inclusive)."""
        while len(self._prefix) <= index + 1 and len(self._prefix) <= self.nblocks:
            first = len(self._prefix) - 1
            count = min(_CHUNK_BLOCKS, self.nblocks - first)
            data = self._read_blocks(first, count)
            total = self._prefix[-1]
            for i in range(count):
                piece = data[i * BLOCK_BYTES : (i + 1) * BLOCK_BYTES]
                if self._keep:
                    self._kept[first + i] = piece
                total += int.from_bytes(piece, "little").bit_count()
                self._prefix.append(total)
            if self._progress is not None and self.nblocks > _CHUNK_BLOCKS:
                self._progress(self._label, len(self._prefix) - 1, self.nblocks)

    def test(self, bit: int) -> bool:
        if bit < 0 or bit >= self.nbits or (bit >> 3) >= self.length:
            return False
        data = self.block(bit // _BLOCK_BITS)
        byte = (bit % _BLOCK_BITS) >> 3
        return bool(data[byte] >> (bit & 7) & 1)

    def rank(self, bit: int) -> int:
        """The number of set bits strictly below ``bit``."""
        if bit <= 0:
            return 0
        bit = min(bit, self.length * 8)
        index = bit // _BLOCK_BITS
        if index >= self.nblocks:
            return self.count()
        self._count_through(index)
        data = self.block(index)
        within = bit % _BLOCK_BITS
        nbytes = within >> 3
        ones = int.from_bytes(data[:nbytes], "little").bit_count()
        if within & 7:
            ones += (data[nbytes] & ((1 << (within & 7)) - 1)).bit_count()
        return self._prefix[index] + ones

    def count(self) -> int:
        """All set bits (one pass over the bitmap, done once)."""
        self._count_through(self.nblocks - 1)
        return self._prefix[self.nblocks] if self.nblocks else 0
