"""x86_64 virtual-to-physical translation without vmlinux.

- Kernel image (``__START_KERNEL_map`` .. ``+ KERNEL_IMAGE_SIZE``):
  ``paddr = vaddr - __START_KERNEL_map + phys_base``.
- Everything else (direct map under memory KASLR, vmalloc, ...): a 4- or 5-level walk from
  ``SYMBOL(init_top_pgt)`` (``init_level4_pgt`` before 4.13), as makedumpfile's
  ``__vtop4_x86_64`` does.  1 GiB (PUD) and 2 MiB (PMD) leaves honour the PSE bit.  Entries
  are masked to bits 12-51 and cleared of the AMD SME C-bit (``NUMBER(sme_mask)``).

Page-table pages are read with ``fill=True``: an all-zero table dropped from the dump as a
zero page simply has no present entries.
"""

from __future__ import annotations

from kdiag.errors import PageNotPresent
from kdiag.vmcore.cache import LRU
from kdiag.vmcore.memory import PhysicalMemory

__all__ = ("DEFAULT_KERNEL_IMAGE_SIZE", "START_KERNEL_MAP", "X86_64Translator")

START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
#: 512 MiB without KASLR; KASLR kernels export NUMBER(KERNEL_IMAGE_SIZE) = 1 GiB.
DEFAULT_KERNEL_IMAGE_SIZE = 512 << 20

_PRESENT = 1 << 0
_PSE = 1 << 7
_ADDR_MASK = 0x000F_FFFF_FFFF_F000
_PAGE_4K = 1 << 12
_PAGE_2M = 1 << 21
_PAGE_1G = 1 << 30
_LEVEL_NAMES = {5: "PML5", 4: "PML4", 3: "PUD", 2: "PMD", 1: "PTE"}
_SHIFTS = {5: 48, 4: 39, 3: 30, 2: 21, 1: 12}


class X86_64Translator:
    """Translate kernel virtual addresses; translations are cached per 4 KiB page."""

    name = "x86_64"

    def __init__(
        self,
        phys: PhysicalMemory,
        *,
        phys_base: int,
        pgd_vaddr: int | None,
        five_level: bool = False,
        sme_mask: int = 0,
        kernel_image_size: int | None = None,
    ) -> None:
        self.phys = phys
        self.phys_base = phys_base
        self.kernel_image_size = kernel_image_size or DEFAULT_KERNEL_IMAGE_SIZE
        self.levels = 5 if five_level else 4
        self.entry_mask = _ADDR_MASK & ~sme_mask
        self.pgd_paddr = None if pgd_vaddr is None else self.kernel_image_to_phys(pgd_vaddr)
        self._cache: LRU[int, int] = LRU(8192)

    def in_kernel_image(self, vaddr: int) -> bool:
        return START_KERNEL_MAP <= vaddr < START_KERNEL_MAP + self.kernel_image_size

    def kernel_image_to_phys(self, vaddr: int) -> int:
        return vaddr - START_KERNEL_MAP + self.phys_base

    def translate(self, vaddr: int) -> int:
        if self.in_kernel_image(vaddr):
            return self.kernel_image_to_phys(vaddr)
        key = vaddr >> 12
        base = self._cache.get(key)
        if base is None:
            paddr, _size = self.walk(vaddr)
            base = paddr & ~(_PAGE_4K - 1)
            self._cache.put(key, base)
        return base | (vaddr & (_PAGE_4K - 1))

    def walk(self, vaddr: int) -> tuple[int, int]:
        """Walk the page tables: ``(paddr, leaf page size)``, or ``PageNotPresent``."""
        if self.pgd_paddr is None:
            raise PageNotPresent(
                f"cannot translate {vaddr:#x}: VMCOREINFO has no SYMBOL(init_top_pgt)",
                address=vaddr,
            )
        table = self.pgd_paddr
        for level in range(self.levels, 0, -1):
            index = (vaddr >> _SHIFTS[level]) & 0x1FF
            entry = self.phys.read_u64(table + index * 8, fill=True)
            if not entry & _PRESENT:
                raise PageNotPresent(
                    f"virtual address {vaddr:#x} is not mapped "
                    f"({_LEVEL_NAMES[level]} entry {index} not present)",
                    address=vaddr,
                )
            frame = entry & self.entry_mask
            if level == 3 and entry & _PSE:
                return (frame & ~(_PAGE_1G - 1)) | (vaddr & (_PAGE_1G - 1)), _PAGE_1G
            if level == 2 and entry & _PSE:
                return (frame & ~(_PAGE_2M - 1)) | (vaddr & (_PAGE_2M - 1)), _PAGE_2M
            table = frame
        return table | (vaddr & (_PAGE_4K - 1)), _PAGE_4K
