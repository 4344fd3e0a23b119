"""Hostile input for the catalog: names that are not UTF-8, NUL and huge text, huge sparse
files, symlink loops, hundreds of bad files. Typed reasons, bounded reads, nothing lost,
on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

from kdiag import catalog
from kdiag.store import Store


def test_a_file_name_that_is_not_utf8(store: Store, tmp_path: Path, vmcore_fixtures: Path) -> None:
    folder = tmp_path / "crash"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/vmcore.\xff\xfe"
    os.link(vmcore_fixtures / "sysrq-zlib" / "vmcore", raw)
    bad = os.fsencode(folder) + b"/vmcore.\xc3("
    with open(bad, "wb") as file:
        file.write(b"garbage" * 100)
    report = catalog.scan(store, [folder])
    assert sorted(o.status for o in report.outcomes) == ["new", "rejected"]
    (entry,) = catalog.list_dumps(store)
    assert entry.paths == (str(folder) + "/vmcore.\\xff\\xfe",)
    (rejected,) = catalog.list_rejects(store)
    assert rejected.path == str(folder) + "/vmcore.\\xc3("
    assert rejected.code == "NotACrashDump"
    again = catalog.scan(store, [folder])
    assert sorted(o.status for o in again.outcomes) == ["rejected", "unchanged"]
    assert len(catalog.list_dumps(store)) == 1
    assert len(catalog.list_rejects(store)) == 1


def test_nul_and_huge_text_from_the_caller(store: Store, vmcore_fixtures: Path) -> None:
    entry = catalog.index_dump(store, vmcore_fixtures / "nmi-zlib" / "vmcore", host="a\0b" * 400)
    assert entry.host is not None
    assert "\0" not in entry.host
    assert entry.host.startswith("a\\x00b")
    assert len(entry.host) == 255


def test_huge_sparse_files_are_refused_after_a_few_bytes(store: Store, tmp_path: Path) -> None:
    zeros = tmp_path / "vmcore"
    with zeros.open("wb") as file:
        file.truncate(64 << 30)
    header = tmp_path / "vmcore.kdump"
    with header.open("wb") as file:
        file.write(b"KDUMP   " + b"\xff" * 4088)
        file.truncate(64 << 30)
    elf = tmp_path / "vmcore.elf"
    with elf.open("wb") as file:
        # ELF64 little-endian core file claiming 65535 program headers at the end of the file
        file.write(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (4).to_bytes(2, "little"))
        file.write(b"\0" * 14 + ((64 << 30) - 64).to_bytes(8, "little") + b"\0" * 14)
        file.write((56).to_bytes(2, "little") + (65535).to_bytes(2, "little"))
        file.truncate(64 << 30)
    report = catalog.scan(store, [tmp_path])
    assert report.count("rejected") == 3, report.to_json()
    codes = {Path(r.path).name: r.code for r in catalog.list_rejects(store)}
    assert codes["vmcore"] == "NotACrashDump"
    assert codes["vmcore.kdump"] in {"NotACrashDump", "UnsupportedDump", "TruncatedDump"}
    assert codes["vmcore.elf"] in {"NotACrashDump", "UnsupportedDump", "TruncatedDump"}
    assert report.bytes_read == 0  # nothing indexed; rejects never count as read dumps


def test_symlink_loops_and_hundreds_of_bad_files(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "crash"
    for n in range(300):
        folder = root / f"10.0.{n // 250}.{n % 250}-2026-11-22-06:03:36"
        folder.mkdir(parents=True)
        (folder / "vmcore").write_bytes(n.to_bytes(4, "little") * 64)
    loop = root / "vmcore.loop"
    loop.symlink_to(loop)
    report = catalog.scan(store, [root, loop])
    assert len(report.outcomes) == 301
    assert report.count("rejected") == 301
    codes = {r.code for r in catalog.list_rejects(store)}
    assert codes == {"NotACrashDump", "ConfigError"}
    assert len(catalog.list_rejects(store)) == 301
    catalog.scan(store, [root])
    assert len(catalog.list_rejects(store)) == 301
