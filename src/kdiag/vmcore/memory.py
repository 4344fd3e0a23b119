"""Physical and virtual memory of a dump, page by page, through a small LRU.

Each format provides a :class:`PageStore` (``load_page(pfn)``).  :class:`PhysicalMemory`
caches pages and serves byte ranges; :class:`VirtualMemory` translates through an
architecture's :class:`~kdiag.vmcore.arch.Translator`.

A page the dump does not hold raises :class:`~kdiag.errors.PageNotPresent`.  Internal readers
(page-table walks, the kernel log) pass ``fill=True`` to read such pages as zeros: makedumpfile
drops all-zero pages (dump level bit 1), and an all-zero page table or unused log tail is
exactly that.  Corrupt pages raise :class:`~kdiag.errors.CorruptPage` either way.
"""

from __future__ import annotations

from typing import Protocol

from kdiag.errors import PageNotPresent, UnsupportedDump
from kdiag.vmcore.cache import LRU

__all__ = ("DEFAULT_CACHE_PAGES", "PageStore", "PhysicalMemory", "Translator", "VirtualMemory")

#: 512 pages = 2 MiB with 4 KiB pages.
DEFAULT_CACHE_PAGES = 512
_MAX_READ = 1 << 30


def _check_size(size: int) -> None:
    if size < 0 or size > _MAX_READ:
        raise UnsupportedDump(f"a read of {size} bytes is not sane (limit {_MAX_READ})")


class PageStore(Protocol):
    """What a format offers: whole pages by page frame number."""

    @property
    def page_size(self) -> int: ...

    def load_page(self, pfn: int) -> bytes:
        """The page's bytes, or raise ``PageNotPresent``/``CorruptPage``."""
        ...


class Translator(Protocol):
    """Virtual-to-physical translation for one architecture."""

    name: str

    def translate(self, vaddr: int) -> int:
        """The physical address of ``vaddr``, or raise ``PageNotPresent``."""
        ...


class PhysicalMemory:
    """Byte-range reads over a :class:`PageStore` with an LRU of decoded pages."""

    def __init__(self, store: PageStore, cache_pages: int = DEFAULT_CACHE_PAGES) -> None:
        self.store = store
        self.page_size = store.page_size
        self._shift = self.page_size.bit_length() - 1
        self._cache: LRU[int, bytes] = LRU(cache_pages)
        self._zero = bytes(self.page_size)

    def page(self, pfn: int, *, fill: bool = False) -> bytes:
        data = self._cache.get(pfn)
        if data is not None:
            return data
        try:
            data = self.store.load_page(pfn)
        except PageNotPresent:
            if fill:
                return self._zero
            raise
        self._cache.put(pfn, data)
        return data

    def read(self, paddr: int, size: int, *, fill: bool = False) -> bytes:
        """``size`` bytes at physical address ``paddr``."""
        _check_size(size)
        if paddr < 0:
            raise PageNotPresent(f"physical address {paddr:#x} is negative", address=paddr)
        mask = self.page_size - 1
        first = paddr >> self._shift
        start = paddr & mask
        if start + size <= self.page_size:
            return self.page(first, fill=fill)[start : start + size]
        last = (paddr + size - 1) >> self._shift
        parts = [self.page(pfn, fill=fill) for pfn in range(first, last + 1)]
        return b"".join(parts)[start : start + size]

    def read_u64(self, paddr: int, *, fill: bool = False) -> int:
        return int.from_bytes(self.read(paddr, 8, fill=fill), "little")


class VirtualMemory:
    """Reads of kernel virtual addresses, translated page by page."""

    def __init__(self, phys: PhysicalMemory, translator: Translator) -> None:
        self.phys = phys
        self.translator = translator
        self.page_size = phys.page_size

    def read(self, vaddr: int, size: int, *, fill: bool = False) -> bytes:
        _check_size(size)
        out = bytearray()
        page = self.page_size
        while size > 0:
            chunk = min(size, page - (vaddr & (page - 1)))
            paddr = self.translator.translate(vaddr)
            out += self.phys.read(paddr, chunk, fill=fill)
            vaddr = (vaddr + chunk) & 0xFFFF_FFFF_FFFF_FFFF
            size -= chunk
        return bytes(out)

    def read_u64(self, vaddr: int, *, fill: bool = False) -> int:
        return int.from_bytes(self.read(vaddr, 8, fill=fill), "little")

    def read_u32(self, vaddr: int, *, fill: bool = False) -> int:
        return int.from_bytes(self.read(vaddr, 4, fill=fill), "little")
