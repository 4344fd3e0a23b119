"""Match a vmlinux to a dump, then ask drgn what needs types (tasks, load average).

The check is cheap and needs no drgn: the vmlinux's GNU build id (``.note.gnu.build-id``)
against VMCOREINFO ``BUILD-ID`` (v5.9+, "kdump: append kernel build-id string to
VMCOREINFO"), else the ``Linux version <release>`` banner in its ``.rodata`` against the dump's
release. A mismatch raises :class:`~kdiag.errors.DebuginfoMismatch` before drgn is loaded.
drgn itself (``kdiag[drgn]``) is imported only by :func:`drgn_facts`.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from kdiag.errors import ConfigError, DebuginfoMismatch, UnsupportedDump

if TYPE_CHECKING:
    from kdiag.vmcore.triage import Triage

__all__ = ("DrgnFacts", "VmlinuxId", "check_vmlinux", "drgn_facts", "read_vmlinux_id")

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_NOTE = struct.Struct("<III")
_SHT_NOTE = 7
_NT_GNU_BUILD_ID = 3
_MAX_SECTIONS = 1 << 16
_MAX_RODATA = 64 << 20
_BANNER = re.compile(rb"Linux version (\S+) ")


@dataclass(frozen=True)
class VmlinuxId:
    """What identifies a kernel image: its GNU build id and banner release."""

    build_id: str | None
    release: str | None


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ConfigError(f"{getattr(f, 'name', 'vmlinux')}: truncated ELF file")
    return data


def read_vmlinux_id(path: str | os.PathLike[str]) -> VmlinuxId:
    """Build id and release of a vmlinux ELF file (``ConfigError`` if it is not one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_EHDR.size)
            if len(head) < _EHDR.size or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                raise ConfigError(f"{os.fspath(path)}: not a 64-bit little-endian ELF vmlinux")
            fields = _EHDR.unpack(head)
            shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]
            if shentsize != _SHDR.size or not 0 < shnum <= _MAX_SECTIONS:
                raise ConfigError(f"{os.fspath(path)}: ELF file without a usable section table")
            table = _read_at(f, shoff, shnum * _SHDR.size)
            sections = [_SHDR.unpack_from(table, i * _SHDR.size) for i in range(shnum)]
            names = b""
            if shstrndx < shnum:
                strtab = sections[shstrndx]
                names = _read_at(f, strtab[4], min(strtab[5], 1 << 20))
            build_id = release = None
            for sh in sections:
                name_off, sh_type, _, _, offset, size = sh[:6]
                name = names[name_off : names.find(b"\0", name_off)] if names else b""
                if sh_type == _SHT_NOTE and build_id is None and 0 < size <= 1 << 16:
                    build_id = _build_id(_read_at(f, offset, size))
                if name == b".rodata" and release is None and 0 < size <= _MAX_RODATA:
                    m = _BANNER.search(_read_at(f, offset, size))
                    if m:
                        release = m.group(1).decode("ascii", "replace")
            return VmlinuxId(build_id, release)
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc.strerror}") from exc


def _build_id(notes: bytes) -> str | None:
    pos = 0
    while pos + _NOTE.size <= len(notes):
        namesz, descsz, ntype = _NOTE.unpack_from(notes, pos)
        pos += _NOTE.size
        name = notes[pos : pos + namesz]
        pos += (namesz + 3) & ~3
        desc = notes[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        if ntype == _NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU" and desc:
            return desc.hex()
    return None


def check_vmlinux(t: Triage, path: str | os.PathLike[str]) -> VmlinuxId:
    """Raise ``DebuginfoMismatch`` unless ``path`` is the dump's kernel."""
    ident = read_vmlinux_id(path)
    name = os.fspath(path)
    if t.build_id and ident.build_id:
        if t.build_id.lower() != ident.build_id.lower():
            raise DebuginfoMismatch(
                f"{name} has build id {ident.build_id}, the dump's kernel {t.build_id}"
            )
        return ident
    if t.release and ident.release:
        if t.release != ident.release:
            raise DebuginfoMismatch(
                f"{name} is Linux {ident.release}, the dump's kernel is {t.release}"
            )
        return ident
    raise DebuginfoMismatch(
        f"cannot tell whether {name} matches the dump: no build id or release to compare"
    )


@dataclass(frozen=True)
class DrgnFacts:
    """What drgn reads with types: task count (pid > 0) and crash's LOAD AVERAGE."""

    tasks: int
    load_average: tuple[str, str, str]


def _load(value: int) -> str:
    # include/linux/sched/loadavg.h: FSHIFT 11; crash rounds by FIXED_1/200 first.
    fixed_1 = 1 << 11
    value += fixed_1 // 200
    return f"{value >> 11}.{((value & (fixed_1 - 1)) * 100) >> 11:02d}"


def drgn_facts(dump_path: str | os.PathLike[str], vmlinux: str | os.PathLike[str]) -> DrgnFacts:
    """Open the dump with drgn and the vmlinux; count tasks and read ``avenrun``.

    :raises UnsupportedDump: drgn (libkdumpfile) cannot open the dump, as with QEMU's own
        kdump files, whose header lacks what libkdumpfile needs to find the architecture.
    :raises ConfigError: drgn is missing, or cannot read the dump with this vmlinux.
    """
    try:
        import drgn  # noqa: PLC0415 - optional extra kdiag[drgn], only for --debuginfo
        from drgn.helpers.linux.pid import for_each_task  # noqa: PLC0415 - as above
    except ImportError as exc:
        raise ConfigError("--debuginfo needs drgn: pip install 'kdiag[drgn]'") from exc
    prog = drgn.Program()
    try:
        prog.set_core_dump(os.fspath(dump_path))
    except Exception as exc:  # drgn raises a bare Exception for libkdumpfile's errors
        raise UnsupportedDump(
            f"--debuginfo: drgn cannot open this dump ({exc}); the summary without"
            " --debuginfo does not need it"
        ) from exc
    try:
        prog.load_debug_info([os.fspath(vmlinux)])
        tasks = sum(1 for task in for_each_task(prog) if task.pid.value_() > 0)
        avenrun = prog["avenrun"]
        loads = tuple(_load(int(avenrun[i].value_())) for i in range(3))
    except (drgn.FaultError, drgn.MissingDebugInfoError, LookupError, ValueError) as exc:
        raise ConfigError(f"drgn could not read the dump with {os.fspath(vmlinux)}: {exc}") from exc
    return DrgnFacts(tasks=tasks, load_average=(loads[0], loads[1], loads[2]))
