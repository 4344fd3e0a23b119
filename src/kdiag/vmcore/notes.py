"""ELF notes as the kernel, makedumpfile and QEMU write them: NT_PRSTATUS and VMCOREINFO.

The same encoding is used in an ELF vmcore's ``PT_NOTE`` segment and in the note blob of a
kdump-compressed file (``offset_note``/``size_note``).  Each note is ``n_namesz``,
``n_descsz``, ``n_type`` (u32 each), the name padded to 4 bytes, then the descriptor padded
to 4 bytes.  A per-CPU note buffer ends with an all-zero header; we stop at one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from kdiag.errors import TruncatedDump
from kdiag.vmcore.model import CpuState

__all__ = (
    "ARM64_REGISTERS",
    "NT_PRSTATUS",
    "X86_64_PRSTATUS_SIZE",
    "X86_64_REGISTERS",
    "Note",
    "iter_notes",
    "parse_prstatus",
    "parse_prstatus_x86_64",
)

NT_PRSTATUS = 1
_NOTE_HEADER = struct.Struct("<III")

#: ``user_regs_struct`` order inside ``elf_prstatus.pr_reg`` on x86_64.
X86_64_REGISTERS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp",
    "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip
X86_64_PRSTATUS_SIZE = 336
_PR_PID = struct.Struct("<i")
_PR_PID_OFFSET = 32
_PR_REG_OFFSET = 112
_PR_REGS = struct.Struct("<27Q")


@dataclass(frozen=True, slots=True)
class Note:
    """One note: its name (without the NUL), type, descriptor, and offset in the blob."""

    name: str
    type: int
    desc: bytes
    offset: int


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def iter_notes(blob: bytes, *, strict: bool = False) -> Iterator[Note]:
    """Yield the notes in ``blob``; stop at an all-zero header or the end.

    A note that runs past the end of the blob ends the walk, or raises
    :class:`TruncatedDump` when ``strict``.
    """
    pos = 0
    end = len(blob)
    while pos + _NOTE_HEADER.size <= end:
        namesz, descsz, ntype = _NOTE_HEADER.unpack_from(blob, pos)
        if namesz == 0 and descsz == 0:
            return
        name_at = pos + _NOTE_HEADER.size
        desc_at = name_at + _pad4(namesz)
        nxt = desc_at + _pad4(descsz)
        if desc_at + descsz > end:
            if strict:
                raise TruncatedDump(f"ELF note at blob offset {pos} runs past its segment")
            return
        name = blob[name_at : name_at + namesz].split(b"\0", 1)[0].decode("ascii", "replace")
        yield Note(name, ntype, blob[desc_at : desc_at + descsz], pos)
        pos = nxt


#: ``struct user_pt_regs`` order inside ``pr_reg`` on arm64 (x0-x30, sp, pc, pstate).
ARM64_REGISTERS = (*(f"x{i}" for i in range(31)), "sp", "pc", "pstate")
_REGISTER_SETS = {"x86_64": X86_64_REGISTERS, "arm64": ARM64_REGISTERS}


def parse_prstatus(desc: bytes, cpu: int, arch: str) -> CpuState:
    """``struct elf_prstatus`` of a 64-bit kernel: ``pr_pid`` always, registers when known.

    The generic part (``pr_pid`` at 32, ``pr_reg`` at 112) is the same on every LP64
    architecture; the register order is per architecture (x86_64 and arm64 here).
    """
    if arch == "x86_64":
        return parse_prstatus_x86_64(desc, cpu)
    if len(desc) < _PR_REG_OFFSET:
        raise TruncatedDump(f"NT_PRSTATUS of CPU {cpu} is {len(desc)} bytes")
    (pid,) = _PR_PID.unpack_from(desc, _PR_PID_OFFSET)
    names = _REGISTER_SETS.get(arch, ())
    regs: dict[str, int] = {}
    if names and len(desc) >= _PR_REG_OFFSET + 8 * len(names):
        values = struct.unpack_from(f"<{len(names)}Q", desc, _PR_REG_OFFSET)
        regs = dict(zip(names, values, strict=True))
    return CpuState(cpu=cpu, pid=pid, registers=regs)


def parse_prstatus_x86_64(desc: bytes, cpu: int) -> CpuState:
    """``struct elf_prstatus`` on x86_64 (336 bytes): ``pr_pid`` and ``pr_reg``."""
    if len(desc) < _PR_REG_OFFSET + _PR_REGS.size:
        raise TruncatedDump(f"NT_PRSTATUS of CPU {cpu} is {len(desc)} bytes, expected 336")
    (pid,) = _PR_PID.unpack_from(desc, _PR_PID_OFFSET)
    regs = _PR_REGS.unpack_from(desc, _PR_REG_OFFSET)
    return CpuState(cpu=cpu, pid=pid, registers=dict(zip(X86_64_REGISTERS, regs, strict=True)))
