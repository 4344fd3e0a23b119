"""Physical reads through the page cache and x86_64 translation over synthetic page tables."""

import struct

import pytest

from kdiag.errors import CorruptPage, PageNotPresent
from kdiag.vmcore.arch.x86_64 import START_KERNEL_MAP, X86_64Translator
from kdiag.vmcore.memory import PhysicalMemory, VirtualMemory

PAGE = 4096
PRESENT_RW = 0x3
PSE = 0x80
NX = 1 << 63


class DictPages:
    """A page store over a dict; counts loads, can hold corrupt pages."""

    page_size = PAGE

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.corrupt: set[int] = set()
        self.loads = 0

    def load_page(self, pfn: int) -> bytes:
        self.loads += 1
        if pfn in self.corrupt:
            raise CorruptPage("bad", address=pfn * PAGE)
        if pfn not in self.pages:
            raise PageNotPresent("absent", address=pfn * PAGE)
        return bytes(self.pages[pfn])

    def page(self, pfn: int) -> bytearray:
        return self.pages.setdefault(pfn, bytearray(PAGE))

    def set_entry(self, table_pfn: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.page(table_pfn), index * 8, value)


def _index(vaddr: int, shift: int) -> int:
    return (vaddr >> shift) & 0x1FF


def _map(store, root_pfn: int, vaddr: int, levels: int, leaf: tuple[int, int], *, alloc):
    """Map ``vaddr`` to ``leaf = (level, target)``: a leaf at level 3 (1G), 2 (2M) or 1 (4K)."""
    leaf_level, target = leaf
    table = root_pfn
    shifts = {5: 48, 4: 39, 3: 30, 2: 21, 1: 12}
    for level in range(levels, leaf_level, -1):
        index = _index(vaddr, shifts[level])
        entry = struct.unpack_from("<Q", store.page(table), index * 8)[0]
        if entry & 1:
            table = (entry & 0x000FFFFFFFFFF000) >> 12
            continue
        child = alloc()
        store.page(child)
        store.set_entry(table, index, (child << 12) | PRESENT_RW)
        table = child
    flags = PRESENT_RW | (PSE if leaf_level > 1 else 0) | NX
    store.set_entry(table, _index(vaddr, shifts[leaf_level]), target | flags)


@pytest.fixture
def world():
    store = DictPages()
    counter = iter(range(0x100, 0x1000))
    return store, (lambda: next(counter))


@pytest.mark.parametrize("five_level", [False, True])
def test_walks_4k_2m_and_1g_leaves(world, five_level):
    store, next_pfn = world
    levels = 5 if five_level else 4
    root = 0x50
    store.page(root)
    direct = 0xFF11000000000000 if five_level else 0xFFFF888000000000
    _map(store, root, direct, levels, (3, 0x40000000), alloc=next_pfn)  # 1 GiB page
    _map(store, root, 0xFFFFC90000200000, levels, (2, 0x00600000), alloc=next_pfn)  # 2 MiB page
    _map(store, root, 0xFFFFC90000000000 + 7 * PAGE, levels, (1, 0x9000), alloc=next_pfn)  # 4 KiB
    phys = PhysicalMemory(store)
    tr = X86_64Translator(
        phys, phys_base=0, pgd_vaddr=START_KERNEL_MAP + root * PAGE, five_level=five_level
    )
    assert tr.walk(direct + 0x12345678) == (0x40000000 + 0x12345678, 1 << 30)
    assert tr.walk(0xFFFFC90000200000 + 0x1ABCD) == (0x00600000 + 0x1ABCD, 1 << 21)
    assert tr.walk(0xFFFFC90000000000 + 7 * PAGE + 0x10) == (0x9010, PAGE)
    with pytest.raises(PageNotPresent, match="not mapped") as info:
        tr.walk(0xFFFFC90000000000 + 8 * PAGE)
    assert info.value.address == 0xFFFFC90000000000 + 8 * PAGE
    # Kernel image addresses bypass the walk.
    assert tr.translate(START_KERNEL_MAP + 0x1234) == 0x1234


def test_a_four_level_walk_ignores_the_pml5_index(world):
    store, next_pfn = world
    root = 0x50
    store.page(root)
    _map(store, root, 0xFFFF888000000000, 4, (3, 0), alloc=next_pfn)
    phys = PhysicalMemory(store)
    four = X86_64Translator(phys, phys_base=0, pgd_vaddr=START_KERNEL_MAP + root * PAGE)
    five = X86_64Translator(
        phys, phys_base=0, pgd_vaddr=START_KERNEL_MAP + root * PAGE, five_level=True
    )
    assert four.translate(0xFFFF888000001000) == 0x1000
    with pytest.raises(PageNotPresent):  # read as a PML5 table the same page maps nothing there
        five.translate(0xFFFF888000001000)


def test_sme_mask_and_phys_base_and_excluded_tables(world):
    store, next_pfn = world
    root = 0x50
    store.page(root)
    sme = 1 << 47
    _map(store, root, 0xFFFF888000000000, 4, (2, 0x200000 | sme), alloc=next_pfn)
    # A PML4 entry pointing at a page the dump does not hold (an excluded zero page):
    store.set_entry(root, 300, (0x7777 << 12) | PRESENT_RW)
    phys = PhysicalMemory(store)
    tr = X86_64Translator(
        phys, phys_base=0x1000000, pgd_vaddr=START_KERNEL_MAP + root * PAGE - 0x1000000,
        sme_mask=sme,
    )  # fmt: skip
    assert tr.translate(0xFFFF888000000010) == 0x200010
    assert tr.kernel_image_to_phys(START_KERNEL_MAP) == 0x1000000
    with pytest.raises(PageNotPresent, match="PUD entry"):
        tr.translate((0xFFFF << 48) | (300 << 39))


def test_physical_reads_cache_and_fill(world):
    store, _ = world
    store.page(1)[:] = b"\x01" * PAGE
    store.page(2)[:] = b"\x02" * PAGE
    store.corrupt.add(4)
    phys = PhysicalMemory(store, cache_pages=2)
    assert phys.read(2 * PAGE - 2, 4) == b"\x01\x01\x02\x02"
    loads = store.loads
    assert phys.read(PAGE, 8) == b"\x01" * 8
    assert store.loads == loads  # cached
    with pytest.raises(PageNotPresent):
        phys.read(3 * PAGE, 1)
    assert phys.read(2 * PAGE + PAGE - 1, 2, fill=True) == b"\x02\x00"
    with pytest.raises(CorruptPage):
        phys.read(4 * PAGE, 1, fill=True)  # corrupt is never filled


def test_virtual_reads_cross_physically_discontiguous_pages(world):
    store, next_pfn = world
    root = 0x50
    store.page(root)
    base = 0xFFFFC90000000000
    _map(store, root, base, 4, (1, 0x30 * PAGE), alloc=next_pfn)
    _map(store, root, base + PAGE, 4, (1, 0x10 * PAGE), alloc=next_pfn)
    store.page(0x30)[:] = b"A" * PAGE
    store.page(0x10)[:] = b"B" * PAGE
    phys = PhysicalMemory(store)
    tr = X86_64Translator(phys, phys_base=0, pgd_vaddr=START_KERNEL_MAP + root * PAGE)
    vm = VirtualMemory(phys, tr)
    assert vm.read(base + PAGE - 3, 6) == b"AAABBB"
    assert vm.read_u32(base + PAGE) == int.from_bytes(b"BBBB", "little")
