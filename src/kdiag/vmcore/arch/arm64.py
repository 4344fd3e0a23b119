"""arm64 (AArch64) virtual-to-physical translation without vmlinux.

Everything comes from VMCOREINFO (Linux 4.12+ exports what is needed):

- ``NUMBER(VA_BITS)``: the configured kernel VA size; ``NUMBER(TCR_EL1_T1SZ)`` (5.9+) gives
  the size in use, ``64 - T1SZ`` (smaller when a 52-bit kernel runs on 48-bit hardware).
- The linear map. Since 5.4 (the "flipped" layout, commit 14c127c957c1) it is the bottom of
  the kernel half, ``[-(1 << va_in_use), -(1 << (min(VA_BITS, 48) - 1)))``; before, the top
  half ``[~0 << (VA_BITS - 1), 2**64)``.  Either way ``paddr = vaddr - PAGE_OFFSET +
  PHYS_OFFSET`` with ``PAGE_OFFSET`` for the configured ``VA_BITS`` (the kernel moves
  ``memstart_addr`` when it falls back to 48 bits) and ``NUMBER(PHYS_OFFSET)``.
- The kernel image: ``paddr = vaddr - NUMBER(kimage_voffset)`` from ``_stext`` up to the
  highest ``SYMBOL()`` of the image that VMCOREINFO names (the image is contiguous, so every
  address between two of its symbols is in it; its exact end, ``_end``, is not exported).
- Everything else (vmalloc, modules, vmemmap, fixmap, the rest of the image): a walk of
  ``SYMBOL(swapper_pg_dir)``, itself in the image.

The walk handles the 4 KiB, 16 KiB and 64 KiB granules, 2 to 5 levels (``levels =
ceil((va_bits - page_shift) / (page_shift - 3))``), table, block and page descriptors (bits
[1:0] = 3 table/page, 1 block; 0 and 2 invalid), and output addresses up to 52 bits: bits
[47:page_shift] always; with 64 KiB pages bits [15:12] are PA[51:48] (FEAT_LPA); with 4/16
KiB pages and a 52-bit VA, bits [49:48] are PA[49:48] and bits [9:8] PA[51:50] (FEAT_LPA2,
Linux 6.9+).  Which tables the walk starts from follows drgn's reading of the kernel: with
64 KiB pages ``swapper_pg_dir`` is laid out for ``VA_BITS`` whatever the hardware; with
4/16 KiB pages for the size in use.

Page-table pages are read with ``fill=True``: a table dropped from the dump as a zero page
simply has no valid entries.  A descriptor the MMU would fault on (invalid, reserved, a block
where the granule allows none) raises :class:`~kdiag.errors.PageNotPresent` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kdiag.errors import PageNotPresent, UnsupportedDump
from kdiag.vmcore.cache import LRU
from kdiag.vmcore.memory import PhysicalMemory
from kdiag.vmcore.vmcoreinfo import VmcoreInfo

__all__ = ("Arm64Layout", "Arm64Translator", "walk_levels")

_MASK64 = (1 << 64) - 1
_GRANULES = {12: "4 KiB", 14: "16 KiB", 16: "64 KiB"}
#: Largest kernel image span the image fast path believes (an image is tens of MiB).
_MAX_IMAGE = 1 << 30
_RELEASE = re.compile(r"(\d+)\.(\d+)")


def _page_offset(va_bits: int) -> int:
    """``_PAGE_OFFSET(va)`` of Linux 5.4+: ``-(1 << va)`` as an unsigned 64-bit value."""
    return (-(1 << va_bits)) & _MASK64


def walk_levels(page_shift: int, va_bits: int) -> int:
    """How many translation levels a granule needs for ``va_bits`` of address."""
    per_level = page_shift - 3
    return -(-(va_bits - page_shift) // per_level)


@dataclass(frozen=True)
class Arm64Layout:
    """The arm64 memory-layout facts a translation needs, read off VMCOREINFO."""

    page_shift: int
    va_bits: int  #: NUMBER(VA_BITS), the configured size
    va_in_use: int  #: 64 - TCR_EL1_T1SZ, else VA_BITS
    flipped: bool  #: Linux 5.4+ layout: linear map at the bottom of the kernel half
    phys_offset: int | None  #: NUMBER(PHYS_OFFSET) (memstart_addr)
    kimage_voffset: int
    pgd_vaddr: int  #: SYMBOL(swapper_pg_dir)
    image_start: int | None  #: SYMBOL(_stext)
    image_end: int | None  #: one page past the highest image symbol VMCOREINFO names

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def walk_va_bits(self) -> int:
        """The VA size ``swapper_pg_dir`` is laid out for (see the module docstring)."""
        return self.va_bits if self.page_shift == 16 else self.va_in_use

    @property
    def page_offset(self) -> int:
        """``PAGE_OFFSET``: what a linear-map address is taken relative to."""
        if self.flipped:
            return _page_offset(self.va_bits)
        return (_MASK64 << (self.va_bits - 1)) & _MASK64

    @property
    def linear_range(self) -> tuple[int, int]:
        """``[start, end)`` of the linear map (``end`` is 2**64 on the pre-5.4 layout)."""
        if self.flipped:
            return _page_offset(self.va_in_use), _page_offset(min(self.va_bits, 48) - 1)
        return self.page_offset, 1 << 64

    @classmethod
    def from_vmcoreinfo(cls, info: VmcoreInfo, *, phys_base: int | None = None) -> Arm64Layout:
        """Read the layout; :class:`UnsupportedDump` names what is missing or unsupported.

        ``phys_base`` (the kdump sub-header's) stands in for a missing ``PHYS_OFFSET``.
        """
        page_size = info.pagesize or 4096
        page_shift = page_size.bit_length() - 1
        if page_shift not in _GRANULES or page_size != 1 << page_shift:
            raise UnsupportedDump(
                f"arm64 with PAGESIZE={page_size} is not supported (4, 16 or 64 KiB granules)"
            )
        va_bits = info.number("VA_BITS")
        if va_bits is None:
            raise UnsupportedDump(
                "arm64 address translation needs NUMBER(VA_BITS) in VMCOREINFO (Linux 4.12+)"
            )
        t1sz = info.number("TCR_EL1_T1SZ")
        va_in_use = 64 - t1sz if t1sz else va_bits
        if va_in_use > va_bits:
            raise UnsupportedDump(
                f"arm64 TCR_EL1.T1SZ={t1sz} gives {va_in_use} VA bits, more than VA_BITS={va_bits}"
            )
        for bits in {va_bits, va_in_use}:
            if not 36 <= bits <= 52:
                raise UnsupportedDump(f"arm64 with a {bits}-bit kernel VA is not supported")
        voffset = info.number("kimage_voffset")
        pgd = info.symbol("swapper_pg_dir")
        if voffset is None or pgd is None:
            missing = "NUMBER(kimage_voffset)" if voffset is None else "SYMBOL(swapper_pg_dir)"
            raise UnsupportedDump(f"arm64 address translation needs {missing} in VMCOREINFO")
        phys_offset = info.number("PHYS_OFFSET")
        if phys_offset is None:
            phys_offset = phys_base
        stext = info.symbol("_stext")
        flipped = _flipped(info.osrelease, stext, va_bits)
        image_end = None
        if stext is not None:
            inside = [
                addr
                for key in info.raw
                if key.startswith("SYMBOL(")
                and (addr := info.symbol(key[7:-1])) is not None
                and stext <= addr < stext + _MAX_IMAGE
            ]
            image_end = (max(inside) | (page_size - 1)) + 1
        return cls(
            page_shift=page_shift,
            va_bits=va_bits,
            va_in_use=va_in_use,
            flipped=flipped,
            phys_offset=phys_offset,
            kimage_voffset=voffset & _MASK64,
            pgd_vaddr=pgd,
            image_start=stext,
            image_end=image_end,
        )


def _flipped(release: str | None, stext: int | None, va_bits: int) -> bool:
    """Whether the kernel uses the 5.4+ layout: from the release, else from where _stext is."""
    match = _RELEASE.match(release or "")
    if match is not None:
        return (int(match[1]), int(match[2])) >= (5, 4)
    if stext is not None:
        # 5.4+: the image is in the top half of the kernel VA; before, in the bottom half.
        return stext >= (_MASK64 << (va_bits - 1)) & _MASK64
    return True


class Arm64Translator:
    """Translate arm64 kernel virtual addresses; walks are cached per page."""

    name = "arm64"

    def __init__(self, phys: PhysicalMemory, layout: Arm64Layout) -> None:
        if phys.page_size != layout.page_size:
            raise UnsupportedDump(
                f"the dump's page size {phys.page_size} differs from VMCOREINFO's "
                f"PAGESIZE {layout.page_size}"
            )
        self.phys = phys
        self.layout = layout
        shift = layout.page_shift
        self._shift = shift
        self._bits_per_level = shift - 3
        self._va_bits = layout.walk_va_bits
        self.levels = walk_levels(shift, self._va_bits)
        self._start_level = 4 - self.levels  # ARM numbering: the last level is 3
        self._kernel_base = _page_offset(self._va_bits)
        self._linear = layout.linear_range if layout.phys_offset is not None else (0, 0)
        self._image = (
            (layout.image_start, layout.image_end)
            if layout.image_start is not None and layout.image_end is not None
            else (0, 0)
        )
        # Output-address bits of a descriptor, and where PA[51:48] or PA[51:50] hide.
        self._pa_low = 0x0000_FFFF_FFFF_FFFF & ~((1 << shift) - 1)
        self._pa_high_mask = 0
        self._pa_high_shift = 0
        if shift == 16:
            self._pa_high_mask, self._pa_high_shift = 0xF000, 36
        elif self._va_bits == 52:
            self._pa_low |= 0x0003_0000_0000_0000
            self._pa_high_mask, self._pa_high_shift = 0x300, 42
        # Levels at which a block descriptor is architecturally valid.
        if shift == 12:
            self._block_levels = {1, 2} | ({0} if self._va_bits == 52 else set())
        else:
            self._block_levels = {2} | ({1} if self._va_bits == 52 else set())
        self.pgd_paddr = self.image_to_phys(layout.pgd_vaddr)
        self._cache: LRU[int, int] = LRU(8192)

    @classmethod
    def from_vmcoreinfo(
        cls, phys: PhysicalMemory, info: VmcoreInfo, *, phys_base: int | None = None
    ) -> Arm64Translator:
        return cls(phys, Arm64Layout.from_vmcoreinfo(info, phys_base=phys_base))

    def image_to_phys(self, vaddr: int) -> int:
        """``__kimg_to_phys``: a kernel-image address minus ``kimage_voffset``."""
        return (vaddr - self.layout.kimage_voffset) & _MASK64

    def in_linear_map(self, vaddr: int) -> bool:
        return self._linear[0] <= vaddr < self._linear[1]

    def in_kernel_image(self, vaddr: int) -> bool:
        return self._image[0] <= vaddr < self._image[1]

    def translate(self, vaddr: int) -> int:
        if self.in_linear_map(vaddr):
            assert self.layout.phys_offset is not None  # _linear is empty otherwise
            return (vaddr - self.layout.page_offset + self.layout.phys_offset) & _MASK64
        if self.in_kernel_image(vaddr):
            return self.image_to_phys(vaddr)
        mask = (1 << self._shift) - 1
        key = vaddr >> self._shift
        base = self._cache.get(key)
        if base is None:
            paddr, _size = self.walk(vaddr)
            base = paddr & ~mask
            self._cache.put(key, base)
        return base | (vaddr & mask)

    def _output_address(self, entry: int) -> int:
        high = (entry & self._pa_high_mask) << self._pa_high_shift
        return (entry & self._pa_low) | high

    def walk(self, vaddr: int) -> tuple[int, int]:
        """Walk ``swapper_pg_dir``: ``(paddr, leaf size)``, or :class:`PageNotPresent`."""
        if not self._kernel_base <= vaddr <= _MASK64:
            raise PageNotPresent(
                f"{vaddr:#x} is not an arm64 kernel address "
                f"(the {self._va_bits}-bit kernel half starts at {self._kernel_base:#x})",
                address=vaddr,
            )
        per_level = self._bits_per_level
        table = self.pgd_paddr
        for level in range(self._start_level, 4):
            shift = self._shift + (3 - level) * per_level
            bits = per_level if level > self._start_level else self._va_bits - shift
            index = (vaddr >> shift) & ((1 << bits) - 1)
            entry = self.phys.read_u64(table + index * 8, fill=True)
            kind = entry & 3
            if kind == 3 and level < 3:
                table = self._output_address(entry) & ~((1 << self._shift) - 1)
                continue
            if kind == 3 or (kind == 1 and level in self._block_levels):
                size = 1 << shift
                base = self._output_address(entry) & ~(size - 1)
                return base | (vaddr & (size - 1)), size
            what = "invalid" if kind in (0, 2) else "a block where the granule allows none"
            if level == 3 and kind == 1:
                what = "reserved"
            raise PageNotPresent(
                f"virtual address {vaddr:#x} is not mapped "
                f"(level {level} descriptor {index} is {what}: {entry:#x})",
                address=vaddr,
            )
        raise AssertionError("unreachable: level 3 always returns or raises")
