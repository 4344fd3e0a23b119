"""arm64 address translation: page tables built by hand for every granule and VA size, then
the real arm64 dumps, where the linear-map and kernel-image shortcuts must agree with a walk
of the kernel's own ``swapper_pg_dir``."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kdiag.vmcore
from kdiag.errors import PageNotPresent, UnsupportedDump
from kdiag.vmcore.arch.arm64 import Arm64Layout, Arm64Translator
from kdiag.vmcore.formats.diskdump import KdumpPages
from kdiag.vmcore.formats.elf import ElfPages
from kdiag.vmcore.memory import PhysicalMemory
from kdiag.vmcore.vmcoreinfo import VmcoreInfo
from tests.vmcore.conftest import FIXTURE_NAMES

MASK = (1 << 64) - 1
ARM64_FIXTURES = [n for n in FIXTURE_NAMES if n.startswith("arm64-")]
KIMAGE_VOFFSET = 0xFFFF_C000_0000_0000 - 0x4000_0000  # image vaddr = paddr + this


class FakeRam:
    """A PageStore of hand-made pages (anything not written is absent)."""

    def __init__(self, page_shift: int) -> None:
        self.page_size = 1 << page_shift
        self.pages: dict[int, bytearray] = {}
        self._next = 0x40000000 >> page_shift

    def load_page(self, pfn: int) -> bytes:
        if pfn not in self.pages:
            raise PageNotPresent(f"pfn {pfn:#x} absent", address=pfn * self.page_size)
        return bytes(self.pages[pfn])

    def alloc(self) -> int:
        pfn = self._next
        self._next += 1
        self.pages[pfn] = bytearray(self.page_size)
        return pfn * self.page_size

    def get_u64(self, paddr: int) -> int:
        return int.from_bytes(
            self.pages[paddr // self.page_size][paddr % self.page_size :][:8], "little"
        )

    def put_u64(self, paddr: int, value: int) -> None:
        page = self.pages[paddr // self.page_size]
        struct.pack_into("<Q", page, paddr % self.page_size, value)

    def fill(self, paddr: int, data: bytes) -> None:
        pfn = paddr // self.page_size
        self.pages.setdefault(pfn, bytearray(self.page_size))
        at = paddr % self.page_size
        self.pages[pfn][at : at + len(data)] = data


def descriptor(paddr: int, kind: int, page_shift: int, va_bits: int) -> int:
    """Encode an output address the way the architecture does (FEAT_LPA / FEAT_LPA2)."""
    low = paddr & 0x0000_FFFF_FFFF_FFFF
    high = paddr >> 48
    if page_shift == 16:
        return low | (high << 12) | kind
    if va_bits == 52:
        return low | (paddr & (3 << 48)) | ((paddr >> 50) << 8) | kind
    assert not high
    return low | kind


def page_end(va_bits: int) -> int:
    """Where the 5.4+ linear map ends and vmalloc, modules and the image begin."""
    return (-(1 << (min(va_bits, 48) - 1))) & MASK


class Tables:
    """swapper_pg_dir for one granule and VA size, filled by :meth:`map`."""

    def __init__(self, page_shift: int, va_bits: int, levels: int) -> None:
        self.shift, self.va_bits, self.levels = page_shift, va_bits, levels
        self.ram = FakeRam(page_shift)
        self.root = self.ram.alloc()

    def index(self, vaddr: int, level: int) -> int:
        shift = self.shift + (3 - level) * (self.shift - 3)
        # The first level resolves only the bits left above it (1 bit for 16 KiB / 48).
        bits = self.va_bits - shift if level == 4 - self.levels else self.shift - 3
        return (vaddr >> shift) & ((1 << bits) - 1)

    def map(self, vaddr: int, paddr: int, leaf_level: int = 3) -> None:
        table = self.root
        for level in range(4 - self.levels, leaf_level):
            slot = table + 8 * self.index(vaddr, level)
            entry = self.ram.get_u64(slot)
            if entry & 3 != 3:
                nxt = self.ram.alloc()
                self.ram.put_u64(slot, descriptor(nxt, 3, self.shift, self.va_bits))
                table = nxt
            else:
                table = entry & 0x0000_FFFF_FFFF_F000 & ~(self.ram.page_size - 1)
        kind = 3 if leaf_level == 3 else 1
        slot = table + 8 * self.index(vaddr, leaf_level)
        self.ram.put_u64(slot, descriptor(paddr, kind, self.shift, self.va_bits))

    def info(self, **extra: str) -> VmcoreInfo:
        lines = {
            "OSRELEASE": "6.1.0-test",
            "PAGESIZE": str(1 << self.shift),
            "NUMBER(VA_BITS)": str(self.va_bits),
            "NUMBER(TCR_EL1_T1SZ)": hex(64 - self.va_bits),
            "NUMBER(kimage_voffset)": hex(KIMAGE_VOFFSET),
            "NUMBER(PHYS_OFFSET)": "0x40000000",
            "SYMBOL(swapper_pg_dir)": f"{(self.root + KIMAGE_VOFFSET) & MASK:x}",
        } | extra
        return VmcoreInfo.parse("\n".join(f"{k}={v}" for k, v in lines.items()))

    def translator(self, **extra: str) -> Arm64Translator:
        return Arm64Translator.from_vmcoreinfo(PhysicalMemory(self.ram), self.info(**extra))


# (page_shift, VA_BITS, levels): every kernel configuration arm64 Linux offers
# (52-bit VAs with 4/16 KiB pages are FEAT_LPA2, Linux 6.9+).
CONFIGS = [
    (12, 39, 3), (12, 48, 4), (12, 52, 5),
    (14, 36, 2), (14, 47, 3), (14, 48, 4), (14, 52, 4),
    (16, 42, 2), (16, 48, 3), (16, 52, 3),
]  # fmt: skip


@pytest.mark.parametrize(("shift", "va_bits", "levels"), CONFIGS)
def test_walk_pages_and_blocks(shift: int, va_bits: int, levels: int) -> None:
    t = Tables(shift, va_bits, levels)
    page = 1 << shift
    base = (-(1 << va_bits)) & MASK  # the bottom of the kernel half
    vmalloc = page_end(va_bits) + 5 * page + (3 << (shift + shift - 3))  # past the linear map
    target = t.ram.alloc()
    t.ram.fill(target + 0x18, b"arm64!")
    t.map(vmalloc, target)
    # A block one level up (2 MiB / 32 MiB / 512 MiB), and one more up where the granule
    # allows it (1 GiB with 4 KiB pages).
    block_levels = [2] + ([1] if shift == 12 and levels >= 3 else [])
    blocks = []
    for level in block_levels:
        size = 1 << (shift + (3 - level) * (shift - 3))
        vaddr = base + level * (1 << (va_bits - 3))  # apart from vmalloc at every level
        paddr = (level + 1) << 33
        t.map(vaddr, paddr, leaf_level=level)
        blocks.append((vaddr, paddr, size))
    xl = t.translator()
    assert xl.levels == levels
    assert xl.walk(vmalloc + 0x18) == (target + 0x18, page)
    assert xl.translate(vmalloc + 0x18) == target + 0x18
    assert xl.phys.read(xl.translate(vmalloc + 0x18), 6) == b"arm64!"
    for vaddr, paddr, size in blocks:
        assert xl.walk(vaddr + size - 8) == (paddr + size - 8, size)
    with pytest.raises(PageNotPresent, match="is invalid"):
        xl.walk(vmalloc + page)  # the next page: no descriptor
    with pytest.raises(PageNotPresent, match="not an arm64 kernel address"):
        xl.walk(base - page)


@pytest.mark.parametrize(("shift", "va_bits"), [(16, 52), (12, 52), (14, 52)])
def test_52_bit_output_addresses(shift: int, va_bits: int) -> None:
    """PA[51:48] in bits [15:12] with 64 KiB pages; PA[51:50] in bits [9:8] with LPA2."""
    t = Tables(shift, va_bits, {12: 5, 14: 4, 16: 3}[shift])
    high = 0x000F_1234_5678_0000 & ~((1 << shift) - 1)
    vaddr = page_end(va_bits) + (9 << shift)
    t.map(vaddr, high)
    t.ram.fill(high, b"high memory")
    xl = t.translator()
    assert xl.translate(vaddr + 3) == high + 3
    assert xl.phys.read(high, 11) == b"high memory"


def test_descriptors_the_mmu_would_fault_on() -> None:
    t = Tables(12, 48, 4)
    vaddr = 0xFFFF_8000_1234_5000
    t.map(vaddr, 0x4000_0000 + 0x5000)
    xl = t.translator()
    assert xl.walk(vaddr) == (0x4000_5000, 4096)
    pte_table = [p * 4096 for p in sorted(t.ram.pages)][-1]  # the last table made
    slot = pte_table + 8 * t.index(vaddr, 3)
    t.ram.put_u64(slot, 0x4000_5000 | 1)  # bits [1:0] = 01 at level 3: reserved
    with pytest.raises(PageNotPresent, match=r"level 3 descriptor .* is reserved"):
        Arm64Translator.from_vmcoreinfo(PhysicalMemory(t.ram), t.info()).walk(vaddr)
    root_slot = t.root + 8 * t.index(vaddr, 0)
    t.ram.put_u64(root_slot, 0x4000_0000 | 1)  # a block at level 0: not with 4 KiB pages
    with pytest.raises(PageNotPresent, match="block where the granule allows none"):
        Arm64Translator.from_vmcoreinfo(PhysicalMemory(t.ram), t.info()).walk(vaddr)
    t.ram.put_u64(root_slot, 0xFFFF_FFFF_F000 | 3)  # a table far outside the dump
    with pytest.raises(PageNotPresent, match=r"level 1 descriptor .* is invalid"):
        Arm64Translator.from_vmcoreinfo(PhysicalMemory(t.ram), t.info()).walk(vaddr)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    config=st.sampled_from(CONFIGS),
    entries=st.lists(st.integers(0, (1 << 64) - 1), min_size=5, max_size=5),
    offset=st.integers(0, (1 << 52) - 1),
)
def test_any_descriptors_translate_or_raise_page_not_present(
    config: tuple[int, int, int], entries: list[int], offset: int
) -> None:
    """Whatever the tables hold, a walk ends within ``levels`` reads: an address inside the
    leaf it found, or PageNotPresent. Tables land at arbitrary physical addresses (mostly
    absent, read as zeros) or, with a flipped entry, back on themselves."""
    shift, va_bits, levels = config
    t = Tables(shift, va_bits, levels)
    vaddr = page_end(va_bits) + offset % (1 << (min(va_bits, 48) - 1))
    table = t.root
    for level, entry in zip(range(4 - levels, 4), entries, strict=False):
        t.ram.put_u64(table + 8 * t.index(vaddr, level), entry)
        if level < 3:
            nxt = t.ram.alloc()
            if entry & 3 == 3 and entry & 0x10:  # now and then point at the real next table
                t.ram.put_u64(table + 8 * t.index(vaddr, level), nxt | 3)
            table = nxt
    xl = t.translator()
    try:
        paddr, size = xl.walk(vaddr)
    except PageNotPresent as exc:
        missing = exc.address
    else:
        missing = None
    if missing is not None:
        assert missing == vaddr
        return
    assert size in {1 << (shift + k * (shift - 3)) for k in range(4)}
    assert paddr % size == vaddr % size
    assert 0 <= paddr < 1 << 52


def _layout(**values: str) -> Arm64Layout:
    base = {
        "OSRELEASE": "6.1.0-57-arm64",
        "PAGESIZE": "4096",
        "NUMBER(VA_BITS)": "48",
        "NUMBER(kimage_voffset)": "0xffffbd85aa200000",
        "NUMBER(PHYS_OFFSET)": "0x40000000",
        "SYMBOL(swapper_pg_dir)": "ffffbd85eba58000",
        "SYMBOL(_stext)": "ffffbd85ea410000",
        "SYMBOL(init_uts_ns)": "ffffbd85ec31c030",
    }
    text = "\n".join(f"{k}={v}" for k, v in (base | values).items() if v)
    return Arm64Layout.from_vmcoreinfo(VmcoreInfo.parse(text))


def test_layout_of_a_5_4_and_later_kernel() -> None:
    layout = _layout()
    assert layout.flipped
    assert layout.page_offset == 0xFFFF_0000_0000_0000
    assert layout.linear_range == (0xFFFF_0000_0000_0000, 0xFFFF_8000_0000_0000)
    assert (layout.image_start, layout.image_end) == (0xFFFFBD85EA410000, 0xFFFFBD85EC31D000)


def test_layout_before_5_4() -> None:
    """Before 5.4 the linear map was the top half of the kernel VA, the image the bottom."""
    layout = _layout(OSRELEASE="4.19.0-27-arm64")
    assert not layout.flipped
    assert layout.page_offset == 0xFFFF_8000_0000_0000
    assert layout.linear_range == (0xFFFF_8000_0000_0000, 1 << 64)
    # Without a release, where _stext lies tells the layout.
    assert not _layout(OSRELEASE="", **{"SYMBOL(_stext)": "ffff000008081000"}).flipped
    assert _layout(OSRELEASE="").flipped


def test_52_bit_kernel_on_48_bit_hardware() -> None:
    """PAGE_OFFSET is for VA_BITS=52; the kernel lowers memstart_addr (PHYS_OFFSET, printed
    as an unsigned value) by the difference, and the linear map starts at the 48-bit base."""
    phys_offset = (0x4000_0000 - ((1 << 52) - (1 << 48))) & MASK
    t = Tables(16, 52, 3)
    xl = t.translator(**{"NUMBER(TCR_EL1_T1SZ)": "16", "NUMBER(PHYS_OFFSET)": hex(phys_offset)})
    assert xl.layout.va_in_use == 48
    assert xl.layout.linear_range[0] == 0xFFFF_0000_0000_0000
    assert xl.translate(0xFFFF_0000_0000_1234) == 0x4000_1234


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"NUMBER(VA_BITS)": ""}, r"NUMBER\(VA_BITS\).*4\.12"),
        ({"PAGESIZE": "8192"}, "PAGESIZE=8192"),
        ({"NUMBER(VA_BITS)": "60"}, "60-bit kernel VA"),
        ({"NUMBER(TCR_EL1_T1SZ)": "8"}, "more than VA_BITS"),
        ({"NUMBER(kimage_voffset)": ""}, r"NUMBER\(kimage_voffset\)"),
        ({"SYMBOL(swapper_pg_dir)": ""}, r"SYMBOL\(swapper_pg_dir\)"),
    ],
)
def test_what_is_not_supported_is_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(UnsupportedDump, match=message):
        _layout(**values)


# --- the real arm64 dumps -------------------------------------------------------------------


def _ram_samples(dump: kdiag.vmcore.Dump, count: int) -> list[int]:
    """Physical addresses of pages the dump holds, spread over its RAM."""
    store = dump.layout.store
    if isinstance(store, ElfPages):
        seg = store.segments[0]
        return [seg.paddr + i * (seg.memsz // count) for i in range(count)]
    assert isinstance(store, KdumpPages)
    pfns = list(store.present_pfns())
    return [pfns[i * len(pfns) // count] * dump.page_size for i in range(count)]


@pytest.mark.parametrize("name", ARM64_FIXTURES)
def test_shortcuts_agree_with_the_page_tables(
    fixture_dump: Callable[[str], Path], name: str
) -> None:
    with kdiag.vmcore.open(fixture_dump(name)) as dump:
        xl = dump.translator
        assert isinstance(xl, Arm64Translator)
        layout = xl.layout
        assert (layout.page_size, layout.va_bits, layout.va_in_use, xl.levels) == (4096, 48, 48, 4)
        # Linear map: __va(paddr) walks to paddr.
        assert layout.phys_offset is not None
        for paddr in _ram_samples(dump, 200):
            vaddr = paddr - layout.phys_offset + layout.page_offset
            assert xl.in_linear_map(vaddr)
            assert xl.walk(vaddr)[0] == xl.translate(vaddr) == paddr
        # Kernel image: every symbol, and pages between; the image is mapped in 2 MiB
        # blocks and pages except __init (freed and unmapped after boot), which the kernel's
        # __pa_symbol() and kimage_voffset still place.
        assert layout.image_start is not None
        assert layout.image_end is not None
        walked = 0
        for vaddr in range(layout.image_start, layout.image_end, 4096 * 13):
            try:
                paddr, _size = xl.walk(vaddr)
            except PageNotPresent:
                continue
            walked += 1
            assert paddr == xl.translate(vaddr) == (vaddr - layout.kimage_voffset) & MASK
        assert walked > 400
        for key in dump.vmcoreinfo.raw:
            if key.startswith("SYMBOL("):
                vaddr = dump.vmcoreinfo.need_symbol(key[7:-1])
                assert xl.walk(vaddr)[0] == xl.translate(vaddr), key
        # vmalloc: the panicking task's stack (VMAP_STACK; the idle task of CPU 0 runs on
        # init_stack, in the image), read through the walk.
        stacks = [cpu.sp for cpu in dump.cpus if cpu.sp is not None]
        assert len(stacks) == 2
        walked_only = [sp for sp in stacks if not (xl.in_linear_map(sp) or xl.in_kernel_image(sp))]
        assert walked_only
        for sp in stacks:
            assert len(dump.read_virt(sp, 64)) == 64


def test_qemu_elf_header_quirk(fixture_dump: Callable[[str], Path]) -> None:
    """QEMU 7.2 writes e_ehsize=8 and section headers before the program headers."""
    path = fixture_dump("arm64-qemu-elf")
    with path.open("rb") as f:
        head = f.read(64)
    phoff, shoff = struct.unpack_from("<QQ", head, 32)
    (ehsize,) = struct.unpack_from("<H", head, 52)
    assert (ehsize, shoff, phoff) == (8, 64, 192)
    with kdiag.vmcore.open(path) as dump:
        assert (dump.format, dump.arch, len(dump.cpus)) == ("qemu-elf", "arm64", 2)
        # QEMU's pr_pid is the vCPU number (1, 2), which the reader does not take for a pid.
        assert {cpu.pid for cpu in dump.cpus} == {-1}
        assert dump.utsname is not None
        assert dump.utsname.machine == "aarch64"


def test_random_kernel_addresses_never_hang(fixture_dump: Callable[[str], Path]) -> None:
    """Any kernel-half address translates or raises PageNotPresent, quickly."""
    rng = random.Random(17)
    with kdiag.vmcore.open(fixture_dump("arm64-sysrq-zlib")) as dump:
        xl = dump.translator
        mapped, absent = 0, []
        for _ in range(3000):
            vaddr = 0xFFFF_0000_0000_0000 | rng.getrandbits(48)
            try:
                xl.translate(vaddr)
                mapped += 1
            except PageNotPresent as exc:
                absent.append((exc.address, vaddr))
        assert mapped > 0
        assert absent
        assert all(got == want for got, want in absent)


def test_a_vmcoreinfo_without_va_bits_is_refused_by_name(
    fixture_dump: Callable[[str], Path],
) -> None:
    """A real arm64 dump read with a VMCOREINFO that lacks NUMBER(VA_BITS) (Linux < 4.12
    wrote none): notes and the header still read; virtual reads say what is missing."""
    path = fixture_dump("arm64-sysrq-zlib")
    with kdiag.vmcore.open(path) as dump:
        text = "\n".join(
            f"{k}={v}" for k, v in dump.vmcoreinfo.raw.items() if k != "NUMBER(VA_BITS)"
        )
    with kdiag.vmcore.open(path, vmcoreinfo=text) as dump:
        assert dump.utsname is not None  # from the kdump header
        assert len(dump.cpus) == 2
        with pytest.raises(UnsupportedDump, match=r"NUMBER\(VA_BITS\)"):
            dump.read_symbol("init_uts_ns", 8)
        with pytest.raises(UnsupportedDump, match=r"NUMBER\(VA_BITS\)"):
            dump.kernel_log()
