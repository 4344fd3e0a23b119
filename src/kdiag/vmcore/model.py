"""Plain records the reader hands out: utsname, per-CPU state, kernel log records."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ("CpuState", "LogRecord", "Utsname")


@dataclass(frozen=True, slots=True)
class Utsname:
    """``struct new_utsname``: six NUL-terminated 65-byte strings."""

    sysname: str
    nodename: str
    release: str
    version: str
    machine: str
    domainname: str

    FIELD_LEN = 65

    @classmethod
    def from_bytes(cls, data: bytes) -> Utsname:
        """Decode 6 x 65 bytes (``data`` may be longer)."""
        n = cls.FIELD_LEN
        parts = [
            data[i * n : (i + 1) * n].split(b"\0", 1)[0].decode("utf-8", "replace")
            for i in range(6)
        ]
        return cls(*parts)


@dataclass(frozen=True, slots=True)
class CpuState:
    """One ``NT_PRSTATUS`` note: the pid running on that CPU and its saved registers."""

    cpu: int
    pid: int
    registers: dict[str, int] = field(default_factory=dict)

    @property
    def ip(self) -> int | None:
        return self.registers.get("rip", self.registers.get("pc"))

    @property
    def sp(self) -> int | None:
        return self.registers.get("rsp", self.registers.get("sp"))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One printk record.

    ``text`` is the record text decoded as UTF-8 with ``backslashreplace``; ``raw`` keeps
    the stored bytes so :func:`kdiag.vmcore.format_dmesg` can reproduce makedumpfile's
    escaping byte for byte.  ``level``/``facility``/``cont`` are not exported in VMCOREINFO;
    they are read from the usual ``printk_info`` layout when it is recognised, else
    ``level == -1``, ``facility == -1`` and ``cont is False``.
    """

    seq: int
    ts_nsec: int
    level: int
    facility: int
    caller_id: int | None
    text: str
    cont: bool
    raw: bytes | None = None

    @property
    def caller(self) -> str | None:
        """``T<pid>`` or ``C<cpu>`` as printk's caller prefix spells it, or ``None``."""
        if self.caller_id is None:
            return None
        if self.caller_id & 0x80000000:
            return f"C{self.caller_id & 0x7FFFFFFF}"
        return f"T{self.caller_id}"
