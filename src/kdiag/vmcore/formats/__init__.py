"""One module per on-disk format: ``elf``, ``diskdump`` (kdump-compressed), ``flattened``.

Each format module turns a :class:`~kdiag.vmcore.source.ByteSource` into a :class:`Layout`:
the header facts plus a :class:`~kdiag.vmcore.memory.PageStore`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from kdiag.vmcore.memory import PageStore
from kdiag.vmcore.model import CpuState, Utsname
from kdiag.vmcore.vmcoreinfo import VmcoreInfo

__all__ = ("Layout", "ProgressFn")

ProgressFn = Callable[[str, int, int], None]


@dataclass
class Layout:
    """What a format module learned from the headers; ``Dump`` builds on it."""

    format: str
    compression: str
    store: PageStore
    page_size: int
    arch: str
    vmcoreinfo: VmcoreInfo
    cpus: tuple[CpuState, ...]
    complete: bool = True
    incomplete_reason: str | None = None
    dump_level: int | None = None
    header_version: int | None = None
    header_utsname: Utsname | None = None
    header_time: datetime.datetime | None = None
    nr_cpus: int | None = None
    phys_base: int | None = None
    eraseinfo: str | None = None
    memory_bytes: Callable[[], int] | None = None
    notes: dict[str, int] = field(default_factory=dict)
