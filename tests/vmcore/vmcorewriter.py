"""A synthetic guest, written out as a crash dump: for end-to-end tests of kdiag.vmcore.

:class:`Guest` lays out the physical memory of a small x86_64 machine the way the reader
will find it without a vmlinux: page tables rooted at ``init_top_pgt`` (4- or 5-level, with
1 GiB, 2 MiB or 4 KiB leaves for the direct map and 2 MiB or 4 KiB for the kernel image),
``init_uts_ns``, and a kernel log, either the lockless printk ring buffer of Linux 5.10+
(descriptor and data rings that have wrapped, ids near the top of the 62-bit id space,
continuation records) or the structured ``log_buf`` of 3.5-5.9 (wrapped, with the zero-length
wrap marker). It also writes the VMCOREINFO text that describes all that, and per-CPU
``NT_PRSTATUS`` notes.

The containers come from :mod:`tests.vmcore.synthdump` (the reader helper's writers):
:meth:`Guest.kdump` (every header version and codec, dump level, excluded zero pages,
incomplete flag), :meth:`Guest.elf` (kexec-style ``PT_LOAD`` with direct-map ``p_vaddr``) and
:meth:`Guest.flattened` (either, as a ``makedumpfile -F`` stream).

Everything is written from the kernel's and makedumpfile's format descriptions
(../shared/reference/vmcore-formats.md sections 2-8), not from the reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tests.vmcore.synthdump import KdumpSpec, Segment, build_elf, build_kdump, flatten, note
from tests.vmcore.synthdump import prstatus as prstatus_desc

__all__ = ("Guest", "Record")

PAGE = 4096
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
PRESENT, WRITE, PSE = 0x1, 0x2, 0x80
DESC_ID_MASK = (1 << 62) - 1
FINALIZED = 2
LOG_CONT = 0x08  # enum log_flags in printk_info.flags

# Kernel image layout (offsets from the image base) of the objects the reader looks up.
IMAGE_VIRT = 0x100_0000  # the image starts 16 MiB into __START_KERNEL_map, like _text
OFF_PGD = 0x10000
OFF_UTS = 0x20000
OFF_PRB_PTR = 0x30000
OFF_PRB = 0x30100
OFF_LEGACY = 0x40000

LOCKLESS_LAYOUT = """\
SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(printk_ringbuffer.fail)=80
SIZE(prb_desc_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
SIZE(prb_data_blk_lpos)=16
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(printk_info.dev_info)=24
SIZE(dev_printk_info)=64
OFFSET(dev_printk_info.subsystem)=0
LENGTH(printk_info_subsystem)=16
OFFSET(dev_printk_info.device)=16
LENGTH(printk_info_device)=48
SIZE(prb_data_ring)=32
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
OFFSET(prb_data_ring.head_lpos)=16
OFFSET(prb_data_ring.tail_lpos)=24
SIZE(atomic_long_t)=8
OFFSET(atomic_long_t.counter)=0
"""


@dataclass(frozen=True)
class Record:
    """One printk record as the kernel stored it."""

    text: str
    ts_nsec: int
    level: int = 6
    facility: int = 0
    caller_id: int | None = None
    cont: bool = False


def _align8(n: int) -> int:
    return (n + 7) & ~7


@dataclass
class Guest:
    """A small x86_64 guest's memory, ready to be dumped."""

    records: list[Record]
    log: str = "lockless"  # or "legacy"
    five_level: bool = False
    direct_leaf: str = "1g"  # "1g" | "2m" | "4k"
    kernel_leaf: str = "2m"  # "2m" | "4k"
    ram_pages: int = 8192  # 32 MiB
    phys_base: int = 0x20_0000
    page_offset: int | None = None
    kaslr_offset: int = 0x1E00_0000
    release: str = "6.1.0-synth-amd64"
    nodename: str = "synth-guest"
    version: str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0-1 (2026-01-01)"
    uts_name_offset: int = 0
    count_bits: int = 5  # 32 descriptors
    size_bits: int = 12  # 4 KiB of text
    first_id: int = DESC_ID_MASK - 40  # ids wrap through the top of the id space
    legacy_len: int = 2048
    legacy_caller: bool = True
    cpus: tuple[int, ...] = (153, 0)  # pid running on each CPU
    crashtime: int = 1_795_327_416
    pages: dict[int, bytearray] = field(default_factory=dict, init=False)
    expected: list[Record] = field(default_factory=list, init=False)
    _next_table: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.page_offset is None:
            self.page_offset = 0xFF45_6000_0000_0000 if self.five_level else 0xFFFF_9A40_0000_0000
        self.image_phys = self.phys_base + IMAGE_VIRT  # where the image sits physically
        self._next_table = 6 * 1024  # page tables from pfn 6144 (24 MiB) up
        self._next_data = 7 * 1024  # dynamic buffers from pfn 7168 (28 MiB) up
        self._build()

    # --- memory ------------------------------------------------------------------------------

    def write(self, paddr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            pfn, off = divmod(paddr + pos, PAGE)
            n = min(PAGE - off, len(data) - pos)
            page = self.pages.setdefault(pfn, bytearray(PAGE))
            page[off : off + n] = data[pos : pos + n]
            pos += n

    def read(self, paddr: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            pfn, off = divmod(paddr + len(out), PAGE)
            n = min(PAGE - off, size - len(out))
            out += (self.pages.get(pfn) or bytes(PAGE))[off : off + n]
        return bytes(out)

    def kva(self, image_offset: int) -> int:
        """Kernel-image virtual address of an image offset (what SYMBOL() holds)."""
        return START_KERNEL_MAP + IMAGE_VIRT + image_offset

    def dva(self, paddr: int) -> int:
        """Direct-map virtual address of a physical address."""
        assert self.page_offset is not None
        return self.page_offset + paddr

    def _table(self) -> int:
        paddr = self._next_table * PAGE
        self._next_table += 1
        self.pages.setdefault(paddr // PAGE, bytearray(PAGE))
        return paddr

    def _data(self, size: int) -> int:
        paddr = self._next_data * PAGE
        self._next_data += -(-size // PAGE)
        return paddr

    def _entry(self, table: int, index: int) -> int:
        return struct.unpack("<Q", self.read(table + 8 * index, 8))[0]

    def _set(self, table: int, index: int, value: int) -> None:
        self.write(table + 8 * index, struct.pack("<Q", value))

    def _walk_to(self, vaddr: int, level: int) -> int:
        """The table of ``level`` (3 PUD, 2 PMD, 1 PTE) covering ``vaddr``, made as needed."""
        table = self.pgd
        top = 5 if self.five_level else 4
        for lvl in range(top, level, -1):
            index = (vaddr >> (12 + 9 * (lvl - 1))) & 511
            entry = self._entry(table, index)
            if not entry & PRESENT:
                child = self._table()
                self._set(table, index, child | PRESENT | WRITE)
                table = child
            else:
                table = entry & 0x000F_FFFF_FFFF_F000
        return table

    def map(self, vaddr: int, paddr: int, leaf: str) -> None:
        level, size = {"1g": (3, 1 << 30), "2m": (2, 1 << 21), "4k": (1, PAGE)}[leaf]
        assert vaddr % size == 0, (hex(vaddr), leaf)
        assert paddr % size == 0, (hex(paddr), leaf)
        table = self._walk_to(vaddr, level)
        index = (vaddr >> (12 + 9 * (level - 1))) & 511
        self._set(table, index, paddr | PRESENT | WRITE | (PSE if level > 1 else 0))

    # --- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.pgd = self.image_phys + OFF_PGD
        self.pages.setdefault(self.pgd // PAGE, bytearray(PAGE))
        # Kernel image: 2 MiB of __START_KERNEL_map at IMAGE_VIRT.
        image_va = START_KERNEL_MAP + IMAGE_VIRT
        if self.kernel_leaf == "2m":
            self.map(image_va, self.image_phys, "2m")
        else:
            for off in range(0, 1 << 21, PAGE):
                self.map(image_va + off, self.image_phys + off, "4k")
        # Direct map of all RAM.
        ram = self.ram_pages * PAGE
        if self.direct_leaf == "1g":
            self.map(self.dva(0), 0, "1g")
        elif self.direct_leaf == "2m":
            for pa in range(0, ram, 1 << 21):
                self.map(self.dva(pa), pa, "2m")
        else:
            for pa in range(0, ram, PAGE):
                self.map(self.dva(pa), pa, "4k")
        # init_uts_ns
        uts = b"".join(
            s.encode().ljust(65, b"\0")
            for s in ("Linux", self.nodename, self.release, self.version, "x86_64", "(none)")
        )
        self.write(self.image_phys + OFF_UTS + self.uts_name_offset, uts)
        if self.log == "lockless":
            self._lockless()
        else:
            self._legacy()

    def _lockless(self) -> None:
        count, size = 1 << self.count_bits, 1 << self.size_bits
        descs = bytearray(24 * count)
        infos = bytearray(88 * count)
        data = bytearray(size)
        lpos = 7 * size + 96  # the data ring has wrapped seven times already
        placed: list[tuple[int, int, int, Record]] = []
        for i, rec in enumerate(self.records):
            rid = (self.first_id + i) & DESC_ID_MASK
            text = rec.text.encode("utf-8", "surrogateescape")
            blk = _align8(8 + len(text))
            assert blk <= size // 2
            begin = lpos
            if begin % size + blk > size:  # does not fit before the end: wraps to 0
                if size - begin % size >= 8:
                    struct.pack_into("<Q", data, begin % size, rid)
                nxt = begin - begin % size + size + blk
                at = 0
            else:
                nxt = begin + blk
                at = begin % size
            struct.pack_into("<Q", data, at, rid)
            data[at + 8 : at + 8 + len(text)] = text
            slot = rid % count
            struct.pack_into("<QQQ", descs, 24 * slot, (FINALIZED << 62) | rid, begin, nxt)
            flags = LOG_CONT if rec.cont else 0
            caller = rec.caller_id if rec.caller_id is not None else 0
            struct.pack_into(
                "<QQHBBI", infos, 88 * slot, 1000 + i, rec.ts_nsec, len(text), rec.facility,
                flags | (rec.level << 5), caller,
            )  # fmt: skip
            placed.append((rid, begin, nxt, rec))
            lpos = nxt
        alive = [
            p for i, p in enumerate(placed) if p[1] >= lpos - size and i >= len(placed) - count
        ]
        self.expected = [p[3] for p in alive]
        head_id, tail_id = alive[-1][0], alive[0][0]
        descs_pa = self._data(len(descs))
        infos_pa = self._data(len(infos))
        data_pa = self._data(size)
        self.write(descs_pa, descs)
        self.write(infos_pa, infos)
        self.write(data_pa, data)
        prb = bytearray(88)
        struct.pack_into(
            "<IxxxxQQQQ", prb, 0, self.count_bits, self.dva(descs_pa), self.dva(infos_pa),
            head_id, tail_id,
        )  # fmt: skip
        struct.pack_into("<IxxxxQQQ", prb, 48, self.size_bits, self.dva(data_pa), lpos, alive[0][1])
        self.write(self.image_phys + OFF_PRB, prb)
        self.write(self.image_phys + OFF_PRB_PTR, struct.pack("<Q", self.kva(OFF_PRB)))

    def _legacy(self) -> None:
        """``log_store()`` of 3.5-5.9: drop the oldest records until there is room, and at
        the end of the buffer leave a zero-length header and continue at 0."""
        hdr = 24 if self.legacy_caller else 16
        buf_len = self.legacy_len
        buf = bytearray(buf_len)
        live: list[tuple[int, Record]] = []  # (idx, record), oldest first
        first = nxt = 0

        def has_space(size: int) -> bool:
            free = max(buf_len - nxt, first) if nxt > first or not live else first - nxt
            return free >= size + hdr

        for rec in self.records:
            text = rec.text.encode("utf-8", "surrogateescape")
            size = _align8(hdr + len(text))
            while live and not has_space(size):
                live.pop(0)
                first = live[0][0] if live else nxt
            if nxt + size + hdr > buf_len:
                buf[nxt : nxt + hdr] = bytes(hdr)  # len 0: the wrap marker
                nxt = 0
                if not live:
                    first = 0
            struct.pack_into(
                "<QHHHBB", buf, nxt, rec.ts_nsec, size, len(text), 0, rec.facility,
                (LOG_CONT if rec.cont else 0) | (rec.level << 5),
            )  # fmt: skip
            if self.legacy_caller:
                struct.pack_into("<I", buf, nxt + 16, rec.caller_id or 0)
            buf[nxt + hdr : nxt + hdr + len(text)] = text
            if not live:
                first = nxt
            live.append((nxt, rec))
            nxt += size
        self.expected = [r for _, r in live]
        buf_pa = self._data(buf_len)
        self.write(buf_pa, buf)
        base = self.image_phys + OFF_LEGACY
        self.write(base, struct.pack("<Q", self.dva(buf_pa)))
        self.write(base + 8, struct.pack("<I", buf_len))
        self.write(base + 16, struct.pack("<I", first))
        self.write(base + 24, struct.pack("<I", nxt))
        self.write(base + 32, struct.pack("<I", 0))

    # --- VMCOREINFO and notes ----------------------------------------------------------------

    def vmcoreinfo(self) -> bytes:
        lines = [
            f"OSRELEASE={self.release}",
            "BUILD-ID=" + "ab" * 20,
            f"PAGESIZE={PAGE}",
            f"SYMBOL(init_uts_ns)={self.kva(OFF_UTS):x}",
            f"OFFSET(uts_namespace.name)={self.uts_name_offset}",
            f"SYMBOL(init_top_pgt)={self.kva(OFF_PGD):x}",
            f"NUMBER(pgtable_l5_enabled)={1 if self.five_level else 0}",
            f"NUMBER(phys_base)={self.phys_base}",
            f"KERNELOFFSET={self.kaslr_offset:x}",
            "NUMBER(KERNEL_IMAGE_SIZE)=1073741824",
        ]
        if self.log == "lockless":
            lines.append(f"SYMBOL(prb)={self.kva(OFF_PRB_PTR):x}")
            lines.append(f"SYMBOL(printk_rb_static)={self.kva(OFF_PRB):x}")
            lines += LOCKLESS_LAYOUT.splitlines()
        else:
            base = self.kva(OFF_LEGACY)
            lines += [
                f"SYMBOL(log_buf)={base:x}",
                f"SYMBOL(log_buf_len)={base + 8:x}",
                f"SYMBOL(log_first_idx)={base + 16:x}",
                f"SYMBOL(log_next_idx)={base + 24:x}",
                f"SYMBOL(clear_idx)={base + 32:x}",
                f"SIZE(printk_log)={24 if self.legacy_caller else 16}",
                "OFFSET(printk_log.ts_nsec)=0",
                "OFFSET(printk_log.len)=8",
                "OFFSET(printk_log.text_len)=10",
                "OFFSET(printk_log.dict_len)=12",
            ]
            if self.legacy_caller:
                lines.append("OFFSET(printk_log.caller_id)=16")
        lines.append(f"CRASHTIME={self.crashtime}")  # crash_save_vmcoreinfo() appends it last
        return ("\n".join(lines) + "\n").encode()

    def notes(self) -> bytes:
        out = b""
        for cpu, pid in enumerate(self.cpus):
            regs = {"rip": 0xFFFF_FFFF_8100_0000 + cpu, "rsp": self.dva(0x10000 + cpu * PAGE)}
            out += note("CORE", 1, prstatus_desc(pid, regs))
        return out + note("VMCOREINFO", 0, self.vmcoreinfo())

    # --- containers --------------------------------------------------------------------------

    def nonzero_pages(self) -> dict[int, bytes]:
        return {pfn: bytes(p) for pfn, p in self.pages.items() if any(p)}

    def kdump(
        self,
        *,
        version: int = 6,
        codec: str = "zlib",
        dump_level: int = 31,
        incomplete: bool = False,
        header_utsname: bool = True,
    ) -> bytes:
        """makedumpfile's format; all-zero pages are excluded (dump level bit 1)."""
        uts = (
            b"".join(
                s.encode().ljust(65, b"\0")
                for s in ("Linux", self.nodename, self.release, self.version, "x86_64", "(none)")
            )
            if header_utsname
            else bytes(4 * 65) + b"x86_64".ljust(65, b"\0") + bytes(65)  # QEMU fills machine only
        )
        spec = KdumpSpec(
            pages=self.nonzero_pages(),
            max_mapnr=self.ram_pages,
            version=version,
            codec=codec,
            vmcoreinfo=self.vmcoreinfo(),
            notes=self.notes(),
            utsname=uts,
            incomplete=incomplete,
            dump_level=dump_level,
            nr_cpus=len(self.cpus),
            phys_base=self.phys_base,
        )
        return build_kdump(spec)

    def elf(self) -> bytes:
        """An ELF vmcore: one RAM PT_LOAD, p_vaddr in the direct map as kexec-tools writes."""
        ram = bytearray(self.ram_pages * PAGE)
        for pfn, page in self.pages.items():
            ram[pfn * PAGE : (pfn + 1) * PAGE] = page
        seg = Segment(paddr=0, data=bytes(ram), vaddr=self.dva(0))
        return build_elf([seg], self.notes())

    def flattened(self, inner: bytes, *, seed: int = 3) -> bytes:
        return flatten(inner, record=65536, seed=seed)
