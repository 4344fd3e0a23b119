"""Architecture back ends for virtual-to-physical translation.

An architecture provides a :class:`~kdiag.vmcore.memory.Translator` (``name`` and
``translate(vaddr) -> paddr``): ``x86_64.py`` and ``arm64.py``.  Other machines in
:data:`MACHINES` open (notes, VMCOREINFO) but their virtual reads raise ``UnsupportedDump``.
"""

from __future__ import annotations

from kdiag.vmcore.memory import Translator

__all__ = ("MACHINES", "Translator", "arch_from_uname")

#: ELF ``e_machine`` -> architecture name.
MACHINES = {62: "x86_64", 183: "arm64", 3: "i386", 40: "arm", 22: "s390x", 21: "ppc64"}


def arch_from_uname(machine: str) -> str:
    """``utsname.machine`` -> architecture name (``aarch64`` is ``arm64``; empty is x86_64)."""
    machine = machine.strip()
    if not machine:
        return "x86_64"
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine, machine)
