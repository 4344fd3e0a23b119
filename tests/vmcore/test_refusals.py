"""What kdiag does not read it refuses precisely: ``UnsupportedDump`` naming the architecture,
word size and byte order; a degenerate but valid kdump file (nothing dumped) opens."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.errors import UnsupportedDump
from kdiag.vmcore.triage import triage
from tests.vmcore.synthdump import (
    PAGE,
    KdumpSpec,
    Segment,
    build_elf,
    build_kdump,
    note,
    prstatus,
    utsname_bytes,
)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "vmcore"
    path.write_bytes(data)
    return path


def _elf(**kwargs: int) -> bytes:
    notes = note("CORE", 1, prstatus(153, {})) + note("VMCOREINFO", 0, b"OSRELEASE=x\n")
    return build_elf([Segment(0x1000, b"\x11" * PAGE)], notes, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"machine": 40}, "ELF64 dump of a 32-bit little-endian arm machine"),
        ({"machine": 3}, "ELF64 dump of a 32-bit little-endian i386 machine"),
        ({"machine": 40, "elf_class": 1}, "ELF32 dump of a 32-bit little-endian arm machine"),
        ({"machine": 3, "elf_class": 1}, "ELF32 dump of a 32-bit little-endian i386 machine"),
    ],
)
def test_32_bit_elf_dumps_are_refused_by_name(
    tmp_path: Path, kwargs: dict[str, int], words: str
) -> None:
    with pytest.raises(UnsupportedDump, match=words):
        kdiag.vmcore.open(_write(tmp_path, _elf(**kwargs)))


@pytest.mark.parametrize(
    ("machine", "name", "bits"), [(21, "ppc64", 64), (22, "s390x", 64), (20, "ppc", 32)]
)
def test_big_endian_elf_dumps_are_refused_by_name(
    tmp_path: Path, machine: int, name: str, bits: int
) -> None:
    data = bytearray(_elf())
    data[5] = 2  # EI_DATA = ELFDATA2MSB
    struct.pack_into(">H", data, 18, machine)
    with pytest.raises(UnsupportedDump, match=f"of a {bits}-bit big-endian {name} machine"):
        kdiag.vmcore.open(_write(tmp_path, bytes(data)))


def _kdump32(machine: str, *, big: bool = False, block_size: int = 4096) -> bytes:
    """A ``struct disk_dump_header`` as a 32-bit kernel's makedumpfile lays it out: 4-byte
    ``long``s, so the ``timeval`` is 8 bytes at 404 and ``block_size`` is at 416."""
    order = ">" if big else "<"
    head = bytearray(b"KDUMP   ")
    head += struct.pack(order + "i", 6)
    head += utsname_bytes(machine=machine)
    head += bytes(404 - len(head))
    head += struct.pack(order + "ii", 1_795_327_416, 0)  # timestamp
    head += struct.pack(order + "Iiii", 0x1, block_size, 1, 2)  # status, block, sub, bitmap
    head += struct.pack(order + "I", 4096)  # max_mapnr
    return bytes(head.ljust(3 * PAGE + 8 * PAGE, b"\0"))


def _kdump64_big(machine: str) -> bytes:
    head = bytearray(b"KDUMP   ")
    head += struct.pack(">i", 6)
    head += utsname_bytes(machine=machine)
    head += bytes(408 - len(head))
    head += struct.pack(">qqIiiiI", 1_795_327_416, 0, 1, 4096, 1, 2, 4096)
    return bytes(head.ljust(11 * PAGE, b"\0"))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_kdump32("armv7l"), "kdump-compressed dump of a 32-bit little-endian armv7l machine"),
        (_kdump32("i686"), "of a 32-bit little-endian i686 machine"),
        (_kdump32("mystery"), "of a 32-bit little-endian mystery machine"),  # by its layout
        (_kdump32("ppc", big=True), "of a 32-bit big-endian ppc machine"),
        (_kdump64_big("s390x"), "of a 64-bit big-endian s390x machine"),
        (_kdump64_big("ppc64"), "of a 64-bit big-endian ppc64 machine"),
        (_kdump64_big("aarch64_be"), "of a 64-bit big-endian aarch64_be machine"),
    ],
)
def test_32_bit_and_big_endian_kdump_files_are_refused_by_name(
    tmp_path: Path, data: bytes, words: str
) -> None:
    with pytest.raises(UnsupportedDump, match=words) as caught:
        kdiag.vmcore.open(_write(tmp_path, data))
    assert "block size" not in str(caught.value)


def test_a_64_bit_little_endian_block_size_error_is_still_about_the_block_size(
    tmp_path: Path,
) -> None:
    data = bytearray(build_kdump(KdumpSpec(pages={1: b"\x01" * PAGE})))
    struct.pack_into("<i", data, 428, 3000)
    with pytest.raises(UnsupportedDump, match="block size 3000"):
        kdiag.vmcore.open(_write(tmp_path, bytes(data)))


@pytest.mark.parametrize("ram", [None, set()])
def test_an_empty_bitmap_opens(tmp_path: Path, ram: set[int] | None) -> None:
    """No page dumped (and, with ``ram`` empty, no RAM either): a valid file that ends at
    its (empty) descriptor table."""
    spec = KdumpSpec(pages={}, ram=ram)
    with kdiag.vmcore.open(_write(tmp_path, build_kdump(spec))) as dump:
        assert dump.complete, dump.incomplete_reason
        assert dump.ram_in_dump_bytes == (0 if ram is not None else 256 * PAGE)
        assert list(dump.layout.store.present_pfns()) == []  # type: ignore[attr-defined]
        assert dump.read_phys(0, 8, zero_excluded=True) == bytes(8)
        result = triage(dump)
        assert result.complete
        assert result.log_records == 0


def test_a_cut_file_with_pages_is_still_incomplete(tmp_path: Path) -> None:
    data = build_kdump(KdumpSpec(pages={3: b"\x03" * PAGE}))
    with kdiag.vmcore.open(_write(tmp_path, data[: 5 * PAGE])) as dump:
        assert not dump.complete
        assert "page descriptors" in (dump.incomplete_reason or "")
