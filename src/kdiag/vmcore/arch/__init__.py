"""Architecture back ends for virtual-to-physical translation.

An architecture provides a :class:`~kdiag.vmcore.memory.Translator` (``name`` and
``translate(vaddr) -> paddr``).  Only x86_64 exists today; arm64 would add ``arm64.py`` with
the same shape and an entry in :data:`MACHINES`.
"""

from __future__ import annotations

from kdiag.vmcore.memory import Translator

__all__ = ("MACHINES", "Translator")

#: ELF ``e_machine`` -> architecture name.
MACHINES = {62: "x86_64", 183: "arm64", 3: "i386", 40: "arm", 22: "s390x", 21: "ppc64"}
