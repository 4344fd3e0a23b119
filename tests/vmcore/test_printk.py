"""The printk readers over synthetic buffers, and makedumpfile's text form."""

import struct

import pytest

from kdiag.errors import UnsupportedDump
from kdiag.vmcore import LogRecord, format_dmesg
from kdiag.vmcore.arch.x86_64 import START_KERNEL_MAP, X86_64Translator
from kdiag.vmcore.memory import PhysicalMemory, VirtualMemory
from kdiag.vmcore.printk import read_kernel_log, read_lockless, read_structured
from kdiag.vmcore.vmcoreinfo import VmcoreInfo
from tests.vmcore.vmcorewriter import LOCKLESS_LAYOUT

PAGE = 4096
COMMITTED, FINALIZED, REUSABLE, RESERVED = 1, 2, 3, 0
LOG_CONT = 0x08

# The 6.1 x86_64 layout, as the fixtures' VMCOREINFO exports it (shared with the writer).
LOCKLESS_KEYS = "SYMBOL(prb)={prb:x}\n" + LOCKLESS_LAYOUT


class Memory:
    """Flat physical memory, addressed through the kernel-image mapping (phys_base 0)."""

    page_size = PAGE

    def __init__(self, size: int = 64 * PAGE) -> None:
        self.data = bytearray(size)

    def load_page(self, pfn: int) -> bytes:
        return bytes(self.data[pfn * PAGE : (pfn + 1) * PAGE])

    def vmem(self) -> VirtualMemory:
        phys = PhysicalMemory(self)
        return VirtualMemory(phys, X86_64Translator(phys, phys_base=0, pgd_vaddr=None))

    def put(self, paddr: int, raw: bytes) -> None:
        self.data[paddr : paddr + len(raw)] = raw


def kva(paddr: int) -> int:
    return START_KERNEL_MAP + paddr


class Ring:
    """A lockless printk ring written the way the kernel's data_alloc()/desc_reserve() do."""

    PRB, RB, DESCS, INFOS, DATA = 0x100, 0x200, 0x1000, 0x4000, 0x10000

    def __init__(self, mem: Memory, count_bits: int = 4, size_bits: int = 8) -> None:
        self.mem = mem
        self.count = 1 << count_bits
        self.size = 1 << size_bits
        self.count_bits, self.size_bits = count_bits, size_bits
        self.head_id = -1
        self.tail_id = 0
        self.head_lpos = self.tail_lpos = 0
        self.blocks: dict[int, tuple[int, int]] = {}
        self.seq = 0

    def add(self, text: bytes, *, ts=0, level=6, facility=0, flags=0, caller=1, state=FINALIZED,
            dataless=False) -> int:  # fmt: skip
        rid = self.head_id + 1
        slot = rid % self.count
        if dataless:
            begin = nxt = 0x3  # EMPTY_LINE_LPOS
        else:
            blk = (8 + len(text) + 7) & ~7
            begin = self.head_lpos
            # get_next_lpos(): a block that would reach the end of the ring (even exactly)
            # is stored at index 0 instead.
            if begin % self.size + blk >= self.size:
                nxt = begin - begin % self.size + self.size + blk
                at = 0
            else:
                nxt = begin + blk
                at = begin % self.size
            self.mem.put(self.DATA + at, struct.pack("<Q", rid) + text)
            self.head_lpos = nxt
            # Data overwritten: older records become reusable, the tail moves on.
            for old, (_b, n) in list(self.blocks.items()):
                if n <= self.head_lpos - self.size or _b < self.head_lpos - self.size:
                    self._state(old, REUSABLE)
                    del self.blocks[old]
                    self.tail_id = max(self.tail_id, old + 1)
            self.blocks[rid] = (begin, nxt)
        if rid - self.tail_id >= self.count:
            self.tail_id = rid - self.count + 1
        self.head_id = rid
        desc = struct.pack("<QQQ", (state << 62) | rid, begin, nxt)
        self.mem.put(self.DESCS + slot * 24, desc)
        info = bytearray(88)
        struct.pack_into("<QQHBBI", info, 0, self.seq, ts, len(text), facility,
                         (level << 5) | flags, caller)  # fmt: skip
        self.mem.put(self.INFOS + slot * 88, bytes(info))
        self.seq += 1
        return rid

    def _state(self, rid: int, state: int) -> None:
        slot = rid % self.count
        self.mem.put(self.DESCS + slot * 24, struct.pack("<Q", (state << 62) | rid))

    def publish(self) -> VmcoreInfo:
        rb = bytearray(88)
        struct.pack_into("<IxxxxQQQQ", rb, 0, self.count_bits, kva(self.DESCS), kva(self.INFOS),
                         self.head_id, self.tail_id)  # fmt: skip
        struct.pack_into("<IxxxxQQQ", rb, 48, self.size_bits, kva(self.DATA), self.head_lpos,
                         self.tail_lpos)  # fmt: skip
        self.mem.put(self.RB, bytes(rb))
        self.mem.put(self.PRB, struct.pack("<Q", kva(self.RB)))
        return VmcoreInfo.parse(LOCKLESS_KEYS.format(prb=kva(self.PRB)))


def test_lockless_ring_fields_levels_callers_and_continuations():
    mem = Memory()
    ring = Ring(mem)
    ring.add(b"Linux version 6.1", ts=0, level=5, caller=0)
    ring.add(b"partial ", ts=1_500_000_000, level=4, caller=0x80000001, flags=LOG_CONT)
    ring.add(b"", dataless=True)
    ring.add(b"being written", state=RESERVED)
    ring.add(b"two\nlines\x01\xc3\xa9", ts=2_000_001_000, level=3, facility=1, caller=123,
             state=COMMITTED)  # fmt: skip
    info = ring.publish()
    records = read_kernel_log(mem.vmem(), info)
    assert [r.text for r in records] == ["Linux version 6.1", "partial ", "two\nlines\x01é"]
    assert [r.seq for r in records] == [0, 1, 4]
    assert [r.level for r in records] == [5, 4, 3]
    assert [r.cont for r in records] == [False, True, False]
    assert [r.caller for r in records] == ["T0", "C1", "T123"]
    assert records[2].facility == 1
    assert records[2].raw == b"two\nlines\x01\xc3\xa9"
    assert format_dmesg(records) == (
        "[    0.000000] Linux version 6.1\n"
        "[    1.500000] partial \n"
        "[    2.000001] two\n"
        "               lines\\x01\\xffffffc3\\xffffffa9\n"
    )


def test_lockless_ring_wraps_descriptors_and_data():
    mem = Memory()
    ring = Ring(mem, count_bits=3, size_bits=8)  # 8 descriptors, 256 bytes of text
    texts = [f"message number {i:03d} {'x' * (i % 5)}".encode() for i in range(40)]
    for i, text in enumerate(texts):
        ring.add(text, ts=i * 1000)
    info = ring.publish()
    records = read_lockless(mem.vmem(), info)
    survivors = [t for rid, t in enumerate(texts) if ring.tail_id <= rid <= ring.head_id]
    assert [r.raw for r in records] == survivors
    assert len(records) >= 3
    assert [r.ts_nsec for r in records] == sorted(r.ts_nsec for r in records)


def test_corrupt_head_and_tail_are_bounded():
    mem = Memory()
    ring = Ring(mem)
    for i in range(5):
        ring.add(f"m{i}".encode())
    info = ring.publish()
    struct.pack_into("<Q", mem.data, Ring.RB + 32, (ring.head_id - 10**6) & ((1 << 62) - 1))
    records = read_lockless(mem.vmem(), info)
    assert [r.text for r in records] == [f"m{i}" for i in range(5)]


def test_insane_ring_geometry_is_rejected():
    mem = Memory()
    ring = Ring(mem)
    ring.add(b"x")
    info = ring.publish()
    struct.pack_into("<I", mem.data, Ring.RB + 48, 40)  # size_bits
    with pytest.raises(UnsupportedDump):
        read_lockless(mem.vmem(), info)


LEGACY_KEYS = """\
SYMBOL(log_buf)={log_buf:x}
SYMBOL(log_buf_len)={log_buf_len:x}
SYMBOL(log_first_idx)={first:x}
SYMBOL(log_next_idx)={next:x}
SYMBOL(clear_idx)={first:x}
SIZE(printk_log)={size}
OFFSET(printk_log.ts_nsec)=0
OFFSET(printk_log.len)=8
OFFSET(printk_log.text_len)=10
OFFSET(printk_log.dict_len)=12
"""


def _legacy(mem: Memory, records, first: int, nxt: int, *, caller: bool = False, length=256):
    """Lay ``records`` (index, text, ts, level) into a log_buf; index None = wrap marker."""
    hdr = 24 if caller else 16
    vars_at, buf_at = 0x100, 0x1000
    for idx, text, ts, level in records:
        if text is None:
            struct.pack_into("<QH", mem.data, buf_at + idx, 0, 0)
            continue
        dict_ = b"SUBSYSTEM=pci"
        total = (hdr + len(text) + len(dict_) + 7) & ~7
        rec = bytearray(total)
        struct.pack_into("<QHHHBB", rec, 0, ts, total, len(text), len(dict_), 0, level << 5)
        if caller:
            struct.pack_into("<I", rec, 16, 0x80000002)
        rec[hdr : hdr + len(text)] = text
        rec[hdr + len(text) : hdr + len(text) + len(dict_)] = dict_
        mem.put(buf_at + idx, bytes(rec))
    struct.pack_into("<QIII", mem.data, vars_at, kva(buf_at), length, first, nxt)
    keys = LEGACY_KEYS.format(
        log_buf=kva(vars_at), log_buf_len=kva(vars_at + 8), first=kva(vars_at + 12),
        next=kva(vars_at + 16), size=hdr,
    )  # fmt: skip
    if caller:
        keys += "OFFSET(printk_log.caller_id)=16\n"
    return VmcoreInfo.parse(keys)


@pytest.mark.parametrize("caller", [False, True])
def test_structured_log_buf_with_wrap_marker(caller):
    mem = Memory()
    hdr = 24 if caller else 16
    size = (hdr + 6 + 13 + 7) & ~7  # header, text, dictionary, LOG_ALIGN padding
    records = [
        (160, b"oldest", 1_000, 6),
        (160 + size, None, 0, 0),  # wrap marker: continue at 0
        (0, b"middle", 2_000_000, 4),
        (size, b"newest", 3_000_000_000, 0),
    ]
    info = _legacy(mem, records, first=160, nxt=2 * size, caller=caller)
    out = read_kernel_log(mem.vmem(), info)
    assert [r.text for r in out] == ["oldest", "middle", "newest"]
    assert [r.level for r in out] == [6, 4, 0]
    assert [r.caller_id for r in out] == ([0x80000002] * 3 if caller else [None] * 3)
    assert format_dmesg(out).splitlines()[2] == "[    3.000000] newest"


def test_a_looping_legacy_index_chain_stops():
    mem = Memory()
    info = _legacy(mem, [(0, b"loop", 0, 6)], first=0, nxt=200)
    struct.pack_into("<H", mem.data, 0x1000 + 8, 0)  # len 0 at 0: wraps to 0 forever
    out = read_structured(mem.vmem(), info)
    assert len(out) <= 256 // 16 + 1


def test_no_log_description_is_unsupported():
    with pytest.raises(UnsupportedDump, match="no kernel log"):
        read_kernel_log(Memory().vmem(), VmcoreInfo.parse("OSRELEASE=1\n"))
    with pytest.raises(UnsupportedDump, match=r"before 3\.5"):
        read_kernel_log(Memory().vmem(), VmcoreInfo.parse("SYMBOL(log_end)=ffffffff81000000\n"))


def _rec(text: str | bytes, ts: int = 1_000_000_000, caller: int | None = None) -> LogRecord:
    raw = text.encode() if isinstance(text, str) else text
    return LogRecord(0, ts, 6, 0, caller, raw.decode("utf-8", "backslashreplace"), False, raw)


def test_format_dmesg_matches_makedumpfile_rules():
    assert format_dmesg([]) == ""
    assert format_dmesg([_rec("x", ts=0)]) == "[    0.000000] x\n"
    assert format_dmesg([_rec("x", ts=123456_789012_345)]) == "[123456.789012] x\n"
    assert format_dmesg([_rec("tab\there\rcr\vvt\fff")]) == "[    1.000000] tab\there\rcr\vvt\fff\n"
    assert format_dmesg([_rec(b"\x00\x1b[0m\x7f")]) == "[    1.000000] \\x00\\x1b[0m\\x7f\n"
    assert format_dmesg([_rec(b"\xff")]) == "[    1.000000] \\xffffffff\n"
    assert (
        format_dmesg([_rec("a\n\nb")]) == "[    1.000000] a\n" + " " * 15 + "\n" + " " * 15 + "b\n"
    )
    assert format_dmesg([_rec("")]) == "[    1.000000] \n"
    # Records without raw bytes are encoded from their text.
    no_raw = LogRecord(1, 5_000, 6, 0, None, "é", False)
    assert format_dmesg([no_raw]) == "[    0.000005] \\xffffffc3\\xffffffa9\n"


def test_format_dmesg_caller_ids_like_makedumpfile_1_7_5():
    records = [_rec("a\nb", caller=123), _rec("c", caller=0x80000001), _rec("d")]
    assert format_dmesg(records, caller_ids=True) == (
        "[    1.000000] [    T123] a\n"
        + " " * 26
        + "b\n"
        + "[    1.000000] [      C1] c\n"
        + "[    1.000000] d\n"
    )


def test_an_inconsistent_layout_is_unsupported_not_a_crash():
    mem = Memory()
    ring = Ring(mem)
    ring.add(b"x")
    keys = LOCKLESS_KEYS.format(prb=kva(Ring.PRB)).replace(
        "OFFSET(printk_info.text_len)=16", "OFFSET(printk_info.text_len)=4000"
    )
    ring.publish()
    with pytest.raises(UnsupportedDump, match="inconsistent"):
        read_kernel_log(mem.vmem(), VmcoreInfo.parse(keys))
