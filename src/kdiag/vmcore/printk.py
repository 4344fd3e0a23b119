"""The kernel log from a dump, without debuginfo, and makedumpfile's text form of it.

Two buffers, chosen as makedumpfile's ``dump_dmesg()`` chooses:

- the lockless ring buffer (Linux 5.10+, ``SYMBOL(prb)``): descriptors ``tail_id .. head_id``,
  accepted when the id in ``state_var`` matches and the state is committed or finalized;
  data blocks begin with their id, wrap to the start of the data ring when
  ``begin > next``, and data-less records (``begin == next``) are skipped, as makedumpfile
  and vmcore-dmesg skip them;
- the structured ``printk_log`` buffer (3.5-5.9, ``SIZE(printk_log)`` or ``SIZE(log)``):
  records from ``log_first_idx`` to ``log_next_idx``, a zero ``len`` meaning "wrap to 0".

Only descriptor slots between tail and head and the data-ring pages those records use are
read.  Offsets come from VMCOREINFO.  ``level``, ``facility`` and the ``LOG_CONT`` flag are
not exported; they are read from the byte after ``text_len`` when the layout is the
kernel's usual one (``caller_id`` right after them), else left unknown.

:func:`format_dmesg` writes exactly what ``makedumpfile --dump-dmesg`` writes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from kdiag.errors import UnsupportedDump
from kdiag.vmcore.memory import VirtualMemory
from kdiag.vmcore.model import LogRecord
from kdiag.vmcore.vmcoreinfo import VmcoreInfo

__all__ = ("format_dmesg", "read_kernel_log", "read_lockless", "read_structured")

_ID_MASK = (1 << 62) - 1
_COMMITTED, _FINALIZED = 1, 2
_LOG_CONT = 0x08
_MAX_COUNT_BITS = 24
_MAX_SIZE_BITS = 30
_MAX_LEGACY_LEN = 1 << 30
_CHUNK = 4096


_U64 = struct.Struct("<Q").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U16 = struct.Struct("<H").unpack_from


def _u64(buf: bytes | bytearray, at: int) -> int:
    value: int = _U64(buf, at)[0]
    return value


def _u32(buf: bytes | bytearray, at: int) -> int:
    value: int = _U32(buf, at)[0]
    return value


def _u16(buf: bytes | bytearray, at: int) -> int:
    value: int = _U16(buf, at)[0]
    return value


def read_kernel_log(vmem: VirtualMemory, info: VmcoreInfo) -> list[LogRecord]:
    """Every record of the kernel log, oldest first."""
    try:
        if info.symbol("prb") is not None:
            return read_lockless(vmem, info)
        if info.size("printk_log") is not None or info.size("log") is not None:
            return read_structured(vmem, info)
    except (struct.error, IndexError) as exc:
        # SIZE()/OFFSET() values that do not fit together: a corrupt VMCOREINFO.
        raise UnsupportedDump(f"the printk layout in VMCOREINFO is inconsistent: {exc}") from exc
    if info.symbol("log_end") is not None:
        raise UnsupportedDump("the plain-text log_buf of kernels before 3.5 is not supported")
    raise UnsupportedDump(
        "VMCOREINFO describes no kernel log (no SYMBOL(prb), SIZE(printk_log) or SIZE(log))"
    )


class _Ring:
    """The data ring, read lazily in 4 KiB chunks of its virtual range."""

    def __init__(self, vmem: VirtualMemory, addr: int, size: int) -> None:
        self.vmem = vmem
        self.addr = addr
        self.size = size
        self._chunks: dict[int, bytes] = {}

    def get(self, start: int, length: int) -> bytes:
        end = min(start + length, self.size)
        if start >= end:
            return b""
        first, last = start // _CHUNK, (end - 1) // _CHUNK
        parts = []
        for index in range(first, last + 1):
            chunk = self._chunks.get(index)
            if chunk is None:
                at = index * _CHUNK
                chunk = self.vmem.read(self.addr + at, min(_CHUNK, self.size - at), fill=True)
                self._chunks[index] = chunk
            parts.append(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        base = first * _CHUNK
        return data[start - base : end - base]


def _read_slots(
    vmem: VirtualMemory, addr: int, elem: int, count: int, span: tuple[int, int]
) -> bytearray:
    """The array of ``count`` elements at ``addr``, read only for ``n`` slots from ``first``."""
    first, n = span
    out = bytearray(elem * count)
    if n >= count:
        out[:] = vmem.read(addr, elem * count, fill=True)
        return out
    end = first + n
    pieces = [(first, min(end, count))]
    if end > count:
        pieces.append((0, end - count))
    for lo, hi in pieces:
        out[lo * elem : hi * elem] = vmem.read(addr + lo * elem, (hi - lo) * elem, fill=True)
    return out


@dataclass(frozen=True, slots=True)
class _RingGeometry:
    """Where the lockless ring's arrays are and which descriptor ids are live."""

    count: int  # descriptor slots
    size: int  # bytes of the text data ring
    descs_addr: int
    infos_addr: int
    data_addr: int
    head_id: int
    tail_id: int


@dataclass(frozen=True, slots=True)
class _RecordLayout:
    """Offsets inside one ``prb_desc`` and one ``printk_info``, from VMCOREINFO."""

    desc_size: int
    info_size: int
    state: int
    begin: int
    next: int
    seq: int
    ts: int
    text_len: int
    caller: int | None
    has_level: bool  # facility and flags/level follow text_len (the kernel's usual layout)


def _ring_geometry(vmem: VirtualMemory, info: VmcoreInfo, counter: int) -> _RingGeometry:
    off = info.need_offset
    rb_addr = vmem.read_u64(info.need_symbol("prb"))
    rb = vmem.read(rb_addr, info.need_size("printk_ringbuffer"), fill=True)
    dr = off("printk_ringbuffer", "desc_ring")
    tr = off("printk_ringbuffer", "text_data_ring")
    count_bits = _u32(rb, dr + off("prb_desc_ring", "count_bits"))
    size_bits = _u32(rb, tr + off("prb_data_ring", "size_bits"))
    if count_bits > _MAX_COUNT_BITS or size_bits > _MAX_SIZE_BITS or size_bits < 3:
        raise UnsupportedDump(
            f"printk ring buffer geometry is not sane (count_bits {count_bits}, "
            f"size_bits {size_bits})"
        )
    return _RingGeometry(
        count=1 << count_bits,
        size=1 << size_bits,
        descs_addr=_u64(rb, dr + off("prb_desc_ring", "descs")),
        infos_addr=_u64(rb, dr + off("prb_desc_ring", "infos")),
        data_addr=_u64(rb, tr + off("prb_data_ring", "data")),
        head_id=_u64(rb, dr + off("prb_desc_ring", "head_id") + counter),
        tail_id=_u64(rb, dr + off("prb_desc_ring", "tail_id") + counter),
    )


def _record_layout(info: VmcoreInfo, counter: int) -> _RecordLayout:
    off = info.need_offset
    lpos = off("prb_desc", "text_blk_lpos")
    text_len = off("printk_info", "text_len")
    caller = info.offset("printk_info", "caller_id")
    return _RecordLayout(
        desc_size=info.need_size("prb_desc"),
        info_size=info.need_size("printk_info"),
        state=off("prb_desc", "state_var") + counter,
        begin=lpos + off("prb_data_blk_lpos", "begin"),
        next=lpos + off("prb_data_blk_lpos", "next"),
        seq=off("printk_info", "seq"),
        ts=off("printk_info", "ts_nsec"),
        text_len=text_len,
        caller=caller,
        has_level=caller is not None and caller == text_len + 4,
    )


def read_lockless(vmem: VirtualMemory, info: VmcoreInfo) -> list[LogRecord]:
    """Walk the 5.10+ lockless ring buffer (``kernel/printk/printk_ringbuffer.c``)."""
    counter = info.offset("atomic_long_t", "counter") or 0
    geo = _ring_geometry(vmem, info, counter)
    layout = _record_layout(info, counter)
    tail_id = geo.tail_id
    n = ((geo.head_id - tail_id) & _ID_MASK) + 1
    if n > geo.count:  # impossible in a sane ring: keep the newest `count` ids
        tail_id = (geo.head_id - geo.count + 1) & _ID_MASK
        n = geo.count
    first_slot = tail_id % geo.count
    descs = _read_slots(vmem, geo.descs_addr, layout.desc_size, geo.count, (first_slot, n))
    infos = _read_slots(vmem, geo.infos_addr, layout.info_size, geo.count, (first_slot, n))
    ring = _Ring(vmem, geo.data_addr, geo.size)
    records: list[LogRecord] = []
    for k in range(n):
        record = _lockless_record(descs, infos, ring, layout, (tail_id + k) & _ID_MASK)
        if record is not None:
            records.append(record)
    return records


def _lockless_record(
    descs: bytearray, infos: bytearray, ring: _Ring, layout: _RecordLayout, rid: int
) -> LogRecord | None:
    """Descriptor ``rid`` as a record, or None when it is not committed or carries no text."""
    slot = rid % (len(descs) // layout.desc_size)
    d = slot * layout.desc_size
    sv = _u64(descs, d + layout.state)
    if sv & _ID_MASK != rid or (sv >> 62) & 3 not in (_COMMITTED, _FINALIZED):
        return None
    begin = _u64(descs, d + layout.begin) % ring.size
    nxt = _u64(descs, d + layout.next) % ring.size
    if begin == nxt:
        return None
    i = slot * layout.info_size
    text_len = _u16(infos, i + layout.text_len)
    if begin > nxt:
        begin = 0
    begin += 8
    if nxt >= begin:
        text_len = min(text_len, nxt - begin)
    raw = ring.get(begin, text_len)
    level = facility = -1
    cont = False
    if layout.has_level:
        facility = infos[i + layout.text_len + 2]
        flags_level = infos[i + layout.text_len + 3]
        level = flags_level >> 5
        cont = bool(flags_level & _LOG_CONT)
    return LogRecord(
        seq=_u64(infos, i + layout.seq),
        ts_nsec=_u64(infos, i + layout.ts),
        level=level,
        facility=facility,
        caller_id=None if layout.caller is None else _u32(infos, i + layout.caller),
        text=raw.decode("utf-8", "backslashreplace"),
        cont=cont,
        raw=raw,
    )


def read_structured(vmem: VirtualMemory, info: VmcoreInfo) -> list[LogRecord]:
    """Walk the 3.5-5.9 ``struct printk_log`` buffer (``struct log`` before 3.11)."""
    name = "printk_log" if info.size("printk_log") is not None else "log"
    hdr = info.need_size(name)
    o_ts = info.need_offset(name, "ts_nsec")
    o_len = info.need_offset(name, "len")
    o_text = info.need_offset(name, "text_len")
    o_dict = info.offset(name, "dict_len")
    o_caller = info.offset(name, "caller_id")
    has_level = o_dict is not None and o_dict == o_text + 2

    buf_addr = vmem.read_u64(info.need_symbol("log_buf"))
    buf_len = vmem.read_u32(info.need_symbol("log_buf_len"))
    first = vmem.read_u32(info.need_symbol("log_first_idx"))
    nxt = vmem.read_u32(info.need_symbol("log_next_idx"))
    if not hdr < buf_len <= _MAX_LEGACY_LEN or first >= buf_len or nxt >= buf_len:
        raise UnsupportedDump(
            f"log_buf geometry is not sane (len {buf_len}, first {first}, next {nxt})"
        )
    buf = vmem.read(buf_addr, buf_len, fill=True)

    def length_at(idx: int) -> int:
        return _u16(buf, idx + o_len) if idx + hdr <= buf_len else 0

    records: list[LogRecord] = []
    idx = first
    for seq in range(buf_len // hdr + 1):  # a corrupt index chain cannot loop forever
        if idx == nxt:
            break
        rec = idx if length_at(idx) else 0  # a zero length marks the wrap to the start
        if rec + hdr > buf_len:
            break
        text_len = _u16(buf, rec + o_text)
        raw = bytes(buf[rec + hdr : min(rec + hdr + text_len, buf_len)])
        level = facility = -1
        cont = False
        if has_level and o_dict is not None:
            facility = buf[rec + o_dict + 2]
            level = buf[rec + o_dict + 3] >> 5
            cont = bool(buf[rec + o_dict + 3] & _LOG_CONT)
        records.append(
            LogRecord(
                seq=seq,
                ts_nsec=_u64(buf, rec + o_ts),
                level=level,
                facility=facility,
                caller_id=None if o_caller is None else _u32(buf, rec + o_caller),
                text=raw.decode("utf-8", "backslashreplace"),
                cont=cont,
                raw=raw,
            )
        )
        step = length_at(idx)
        if step == 0:  # wrapped: the record at 0 was this one; continue after it
            step = length_at(0)
            idx = step
        else:
            idx += step
        if step == 0 or idx >= buf_len:
            break
    return records


# --- makedumpfile's text form ---------------------------------------------------------------

# C-locale isprint() or isspace(): these bytes are written as they are.
_SAFE = bytes(range(0x20, 0x7F)) + b"\t\n\v\f\r"
_ESCAPES = {
    b: (f"\\x{b:02x}" if b < 0x80 else f"\\xffffff{b:02x}") for b in range(256) if b not in _SAFE
}


def _escape(raw: bytes, indent: str) -> str:
    if not raw.translate(None, _SAFE):
        text = raw.decode("ascii")
    else:
        text = "".join(_ESCAPES.get(b) or chr(b) for b in raw)
    return text.replace("\n", "\n" + indent) if "\n" in text else text


def format_dmesg(records: Iterable[LogRecord], *, caller_ids: bool = False) -> str:
    """The log exactly as ``makedumpfile --dump-dmesg`` writes it.

    Each record is ``[%5llu.%06lu] `` then its text, then ``\\n``.  An embedded newline
    is followed by spaces as wide as the prefix.  Bytes that are neither printable nor
    white space (C locale) become ``\\xNN``; bytes from 0x80 up become ``\\xffffffNN``,
    because makedumpfile passes a signed ``char`` to ``%02x``.  Dictionaries are not
    printed.  ``caller_ids=True`` adds the ``[    T123] `` column that makedumpfile 1.7.5+
    prints when ``OFFSET(printk_info.caller_id)`` exists (Debian 12's 1.7.2 does not).
    """
    out: list[str] = []
    for rec in records:
        sec, nsec = divmod(rec.ts_nsec, 1_000_000_000)
        prefix = f"[{sec:5d}.{nsec // 1000:06d}] "
        if caller_ids and rec.caller_id is not None:
            prefix += f"[{rec.caller or '':>8}] "
        raw = rec.raw if rec.raw is not None else rec.text.encode("utf-8", "surrogateescape")
        out.append(prefix + _escape(raw, " " * len(prefix)) + "\n")
    return "".join(out)
