"""The VMCOREINFO note: ``KEY=VALUE`` lines the kernel leaves for dump readers.

Key families (``include/linux/vmcore_info.h``, ``kernel/vmcore_info.c``) and how their
values are written:

=========================  =====================================================
``OSRELEASE``, ``BUILD-ID``  strings
``PAGESIZE``, ``CRASHTIME`` decimal
``SYMBOL(name)``           hex without ``0x`` (runtime address, KASLR applied)
``SIZE(t)``, ``OFFSET(s.f)``, ``LENGTH(x)``  decimal
``NUMBER(x)``              decimal (may be negative), or ``0x`` hex; falls back to hex
``KERNELOFFSET``           hex without ``0x``
``CONFIG_X``               ``y``
=========================  =====================================================

A missing key means "feature unavailable"; the accessors return ``None`` and
:meth:`VmcoreInfo.need_symbol` and friends raise :class:`~kdiag.errors.UnsupportedDump`
naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kdiag.errors import UnsupportedDump

__all__ = ("MAX_VMCOREINFO_BYTES", "VmcoreInfo", "parse_number")

#: The kernel caps the note at one page; allow 64 KiB pages and then some.
MAX_VMCOREINFO_BYTES = 1 << 20

_KEY = re.compile(r"^(SYMBOL|SIZE|OFFSET|LENGTH|NUMBER)\((.+)\)$")

# Stable kernels that wrote a garbage BUILD-ID (drgn issue #464): (major, minor, lo, hi).
_BROKEN_BUILD_ID = (
    (6, 11, 3, 9),
    (6, 10, 14, 1 << 30),
    (6, 6, 55, 62),
    (6, 1, 113, 118),
    (5, 15, 168, 1 << 30),
)


def parse_number(value: str) -> int | None:
    """``NUMBER()`` values: decimal, ``0x`` hex, else hex (makedumpfile's fallback)."""
    text = value.strip()
    try:
        if text.lower().startswith(("0x", "-0x")):
            return int(text, 16)
        return int(text, 10)
    except ValueError:
        pass
    try:
        return int(text, 16)
    except ValueError:
        return None


def _hex(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip(), 16)
    except ValueError:
        return None


def _dec(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip(), 10)
    except ValueError:
        return None


@dataclass(frozen=True)
class VmcoreInfo:
    """Parsed VMCOREINFO; ``raw`` keeps every key, known or not, with its text value."""

    raw: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | str) -> VmcoreInfo:
        """Parse the note text; tolerates NUL padding and a last line without ``\\n``."""
        if isinstance(data, bytes):
            data = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        raw: dict[str, str] = {}
        for row in data.split("\n"):
            line = row.rstrip("\r")
            if not line or "=" not in line:
                continue
            key, _, value = line.partition("=")
            raw[key] = value
        return cls(raw)

    # --- key families ---------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        return self.raw.get(key)

    def symbol(self, name: str) -> int | None:
        """``SYMBOL(name)``: a kernel virtual address (never parsed as decimal)."""
        return _hex(self.raw.get(f"SYMBOL({name})"))

    def size(self, name: str) -> int | None:
        return _dec(self.raw.get(f"SIZE({name})"))

    def offset(self, struct: str, member: str) -> int | None:
        return _dec(self.raw.get(f"OFFSET({struct}.{member})"))

    def length(self, name: str) -> int | None:
        return _dec(self.raw.get(f"LENGTH({name})"))

    def number(self, name: str) -> int | None:
        value = self.raw.get(f"NUMBER({name})")
        return None if value is None else parse_number(value)

    def config(self, name: str) -> bool:
        """``CONFIG_<name>=y`` (``name`` with or without the ``CONFIG_`` prefix)."""
        key = name if name.startswith("CONFIG_") else f"CONFIG_{name}"
        return self.raw.get(key, "").strip() == "y"

    def family(self, kind: str) -> dict[str, str]:
        """Every ``kind(x)=v`` pair as ``{x: v}``, e.g. ``family("SYMBOL")``."""
        out: dict[str, str] = {}
        for key, value in self.raw.items():
            match = _KEY.match(key)
            if match and match.group(1) == kind:
                out[match.group(2)] = value
        return out

    # --- required lookups -----------------------------------------------------------------

    def need_symbol(self, name: str) -> int:
        value = self.symbol(name)
        if value is None:
            raise UnsupportedDump(f"VMCOREINFO has no SYMBOL({name})")
        return value

    def need_size(self, name: str) -> int:
        value = self.size(name)
        if value is None:
            raise UnsupportedDump(f"VMCOREINFO has no SIZE({name})")
        return value

    def need_offset(self, struct: str, member: str) -> int:
        value = self.offset(struct, member)
        if value is None:
            raise UnsupportedDump(f"VMCOREINFO has no OFFSET({struct}.{member})")
        return value

    # --- well-known values ------------------------------------------------------------------

    @property
    def osrelease(self) -> str | None:
        value = self.raw.get("OSRELEASE")
        return value.strip() if value is not None else None

    @property
    def pagesize(self) -> int | None:
        return _dec(self.raw.get("PAGESIZE"))

    @property
    def crashtime(self) -> int | None:
        """Seconds since the epoch at panic (``CRASHTIME``), or ``None``."""
        return _dec(self.raw.get("CRASHTIME"))

    @property
    def kerneloffset(self) -> int | None:
        """The KASLR text offset (``KERNELOFFSET``, hex)."""
        return _hex(self.raw.get("KERNELOFFSET"))

    @property
    def phys_base(self) -> int | None:
        """``NUMBER(phys_base)`` (value); old kernels exported only ``SYMBOL(phys_base)``."""
        return self.number("phys_base")

    @property
    def pgtable_l5_enabled(self) -> bool:
        return bool(self.number("pgtable_l5_enabled") or 0)

    @property
    def build_id(self) -> str | None:
        """``BUILD-ID``, or ``None`` when absent, malformed or from a known-broken stable kernel."""
        value = (self.raw.get("BUILD-ID") or "").strip().lower()
        if not re.fullmatch(r"[0-9a-f]{2,128}", value):
            return None
        if _release_has_broken_build_id(self.osrelease or ""):
            return None
        return value


def _release_has_broken_build_id(release: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", release)
    if not match:
        return False
    major, minor, patch = (int(g) for g in match.groups())
    return any(
        (major, minor) == (ma, mi) and lo <= patch <= hi for ma, mi, lo, hi in _BROKEN_BUILD_ID
    )
