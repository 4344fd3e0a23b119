"""``makedumpfile --split`` sets: several kdump files that together hold one dump.

Every member carries the same main header, sub header (but for ``start_pfn``/``end_pfn``),
notes and both bitmaps; its page descriptors and data cover only its pfns
``[start_pfn, end_pfn)``.  Members are matched by what they share (utsname, dump time, page
size, pfn count, dump level, codec and the bitmaps themselves); sorted by ``start_pfn`` they
must tile ``[0, max_mapnr)`` without a gap or an overlap.  crash reads them the same way
(``crash vmlinux A B C``), in any order.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kdiag.errors import NotACrashDump, PageNotPresent, TruncatedDump
from kdiag.vmcore.formats import Layout
from kdiag.vmcore.formats.diskdump import KdumpPages
from kdiag.vmcore.source import ByteSource

__all__ = ("Member", "SetSource", "SplitPages", "combine", "member_range")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One opened file of a split set: its name (for messages), source and layout."""

    name: str
    source: ByteSource
    layout: Layout


def member_range(layout: Layout) -> tuple[int, int] | None:
    """``(start_pfn, end_pfn)`` when ``layout`` is one file of a ``--split`` set, else None."""
    store = layout.store
    if isinstance(store, KdumpPages) and store.split:
        return store.start_pfn, store.end_pfn
    return None


def _identity(store: KdumpPages) -> tuple[object, ...]:
    """What every member of one split set shares (the bitmaps by digest)."""
    head, sub = store.header, store.sub
    digest = hashlib.sha256()
    first = store.bitmap1.offset
    end = store.desc_start
    for at in range(first, end, _CHUNK):
        digest.update(store.source.read_upto(at, min(_CHUNK, end - at)))
    return (
        head.header_version,
        head.utsname,
        head.timestamp_sec,
        head.timestamp_usec,
        head.status,
        head.block_size,
        head.bitmap_blocks,
        store.max_mapnr,
        sub.dump_level,
        sub.phys_base,
        digest.digest(),
    )


def _difference(a: tuple[object, ...], b: tuple[object, ...]) -> str:
    names = (
        "header version", "utsname", "dump time", "dump time", "codec", "page size",
        "bitmap size", "pfn count", "dump level", "phys_base", "bitmaps",
    )  # fmt: skip
    for name, x, y in zip(names, a, b, strict=True):
        if x != y:
            return name
    return "header"


def _own_problems(member: Member, store: KdumpPages) -> list[str]:
    """A member's incomplete reasons but the one it has only for being read alone."""
    if member.layout.complete:
        return []
    parts = (member.layout.incomplete_reason or "incomplete").split("; ")
    return [p for p in parts if p != store.split_reason]


class SplitPages:
    """Pages of a split set: each pfn is served by the member whose range holds it."""

    def __init__(self, members: Sequence[KdumpPages]) -> None:
        self.members = sorted(members, key=lambda m: m.start_pfn)
        self.page_size = self.members[0].page_size
        self.max_mapnr = self.members[0].max_mapnr
        self._starts = [m.start_pfn for m in self.members]

    def _member(self, pfn: int) -> KdumpPages:
        i = bisect.bisect_right(self._starts, pfn) - 1
        if i < 0 or not pfn < self.members[i].end_pfn:
            address = pfn * self.page_size
            raise PageNotPresent(
                f"physical address {address:#x} is beyond the dump (max pfn {self.max_mapnr:#x})",
                address=address,
            )
        return self.members[i]

    def load_page(self, pfn: int) -> bytes:
        return self._member(pfn).load_page(pfn)

    def present_pfns(self) -> Iterator[int]:
        for member in self.members:
            yield from member.present_pfns()

    def ram_bytes(self) -> int:
        return self.members[0].ram_bytes()


class SetSource:
    """The members' files seen as one source for bookkeeping: sizes and reads add up."""

    def __init__(self, sources: Sequence[ByteSource]) -> None:
        self.sources = list(sources)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.sources)

    @property
    def bytes_read(self) -> int:
        return sum(s.bytes_read for s in self.sources)

    def read(self, offset: int, size: int, what: str = "data") -> bytes:
        return self.sources[0].read(offset, size, what)

    def read_upto(self, offset: int, size: int) -> bytes:
        return self.sources[0].read_upto(offset, size)

    def close(self) -> None:
        for source in self.sources:
            source.close()


def combine(members: Sequence[Member]) -> tuple[SetSource, Layout, Member]:
    """One layout for a complete split set given in any order; returns the member with the
    lowest ``start_pfn`` too (its path names the set).

    :raises NotACrashDump: a file is not a split member, or belongs to another dump, or two
        members overlap.
    :raises TruncatedDump: a member is missing (the message gives its pfn range).
    """
    stores: list[tuple[Member, KdumpPages]] = []
    for member in members:
        store = member.layout.store
        if not (isinstance(store, KdumpPages) and store.split):
            raise NotACrashDump(
                f"{member.name} is not a file of a split dump (makedumpfile --split);"
                " analyse it on its own"
            )
        stores.append((member, store))
    reference = _identity(stores[0][1])
    for member, store in stores[1:]:
        theirs = _identity(store)
        if theirs != reference:
            raise NotACrashDump(
                f"{member.name} belongs to another dump than {stores[0][0].name}"
                f" (its {_difference(reference, theirs)} differs)"
            )
    stores.sort(key=lambda pair: (pair[1].start_pfn, pair[1].end_pfn))
    expected = 0
    previous: Member | None = None
    for member, store in stores:
        if store.start_pfn < expected:
            raise NotACrashDump(
                f"{member.name} overlaps {previous.name if previous else 'another file'}"
                f" (pfns from {store.start_pfn:#x}); both cannot be of one split set"
            )
        if store.start_pfn > expected:
            raise TruncatedDump(
                f"the split set lacks the file holding pfns {expected:#x}-{store.start_pfn:#x}"
                f" (before {member.name}); give every file makedumpfile --split wrote"
            )
        expected = store.end_pfn
        previous = member
    max_mapnr = stores[0][1].max_mapnr
    if expected < max_mapnr:
        raise TruncatedDump(
            f"the split set lacks the file holding pfns {expected:#x}-{max_mapnr:#x}"
            f" (after {stores[-1][0].name}); give every file makedumpfile --split wrote"
        )
    pages = SplitPages([store for _, store in stores])
    first = stores[0][0]
    reasons = [f"{m.name}: {why}" for m, store in stores for why in _own_problems(m, store)]
    layout = dataclasses.replace(
        first.layout,
        store=pages,
        complete=not reasons,
        incomplete_reason="; ".join(reasons) or None,
        memory_bytes=pages.ram_bytes,
    )
    return SetSource([m.source for m, _ in stores]), layout, first
