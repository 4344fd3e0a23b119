"""Architecture back ends for virtual-to-physical translation.

An architecture provides a :class:`~kdiag.vmcore.memory.Translator` (``name`` and
``translate(vaddr) -> paddr``): ``x86_64.py`` and ``arm64.py``.  Other machines in
:data:`MACHINES` open (notes, VMCOREINFO) but their virtual reads raise ``UnsupportedDump``.
"""

from __future__ import annotations

from kdiag.vmcore.memory import Translator

__all__ = ("MACHINES", "WORD32", "Translator", "arch_from_uname", "unsupported_message")

#: ELF ``e_machine`` -> architecture name.
MACHINES = {
    62: "x86_64", 183: "arm64", 3: "i386", 40: "arm", 22: "s390x", 21: "ppc64", 8: "mips",
    2: "sparc", 43: "sparc64", 20: "ppc", 243: "riscv", 258: "loongarch64",
}  # fmt: skip
#: Architectures (as named here or by ``uname -m``) whose kernels are 32-bit.
WORD32 = frozenset(
    {"i386", "i486", "i586", "i686", "arm", "armv5l", "armv6l", "armv7l", "armv7",
     "armhf", "armel", "ppc", "mips", "mipsel", "sparc", "s390", "riscv32", "sh4"}
)  # fmt: skip


def unsupported_message(arch: str, *, bits: int, little_endian: bool, container: str) -> str:
    """Why a dump is refused, naming architecture, word size and byte order."""
    order = "little-endian" if little_endian else "big-endian"
    return (
        f"{container} dump of a {bits}-bit {order} {arch} machine: kdiag reads 64-bit"
        " little-endian dumps (x86_64, arm64)"
    )


def arch_from_uname(machine: str) -> str:
    """``utsname.machine`` -> architecture name (``aarch64`` is ``arm64``; empty is x86_64)."""
    machine = machine.strip()
    if not machine:
        return "x86_64"
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine, machine)
