"""Scanning and indexing into a real store (SQLite and PostgreSQL): rescans add nothing,
renamed copies are one dump, truncated copies are incomplete, bad files have a typed
reason, split sets are one dump, accounts see only their own dumps."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag import catalog
from kdiag.catalog.scan import LOG_TAIL_LINES
from kdiag.errors import ConfigError, NoSuchEntity, NotACrashDump, TruncatedDump
from kdiag.store import Store
from kdiag.vmcore.describe import format_date
from tests.catalog.conftest import TREE, link_or_copy
from tests.conftest import require_tool
from tests.vmcore import makedumpfile_sets
from tests.vmcore._fixtures import crash_sys, meta


def counts(store: Store) -> tuple[int, int, int]:
    dumps = catalog.list_dumps(store)
    return len(dumps), sum(len(d.paths) for d in dumps), len(catalog.list_rejects(store))


def test_scanning_a_tree_twice_adds_nothing(store: Store, tree: Path) -> None:
    first = catalog.scan(store, [tree])
    assert [o.status for o in first.outcomes] == ["new"] * len(TREE)
    assert first.bytes_read > 0
    before = counts(store)
    assert before == (len(TREE), len(TREE), 0)
    again = catalog.scan(store, [tree])
    assert [o.status for o in again.outcomes] == ["unchanged"] * len(TREE)
    assert again.bytes_read == 0  # unchanged files are not read again
    assert counts(store) == before
    assert [d.id for d in catalog.list_dumps(store)] == [d.id for d in catalog.list_dumps(store)]
    # A file rewritten with the same bytes (a new inode: the tree's files are hard links to
    # the read-only fixtures, never modified in place) is read again, recognised by content,
    # and still adds nothing.
    one = next(tree.rglob("dump.*"))
    data = one.read_bytes()
    one.unlink()
    one.write_bytes(data)
    third = catalog.scan(store, [tree])
    assert sorted(o.status for o in third.outcomes) == ["matched"] + ["unchanged"] * (len(TREE) - 1)
    assert counts(store) == before


def test_host_and_time_from_the_tree(store: Store, tree: Path) -> None:
    catalog.scan(store, [tree])
    by_path = {Path(d.paths[0]).relative_to(tree).as_posix(): d for d in catalog.list_dumps(store)}
    ip = by_path["192.168.122.7-2026-11-22-07:00:00/vmcore"]
    assert ip.host == "192.168.122.7"  # kexec-tools folder: the host in its name
    assert ip.klass == "nmi"
    assert ip.complete
    assert ip.format == "kdump"
    assert ip.release == meta("nmi-zlib")["expected"]["release"]
    kdump_tools = by_path["202611220620/dump.202611220620"]
    assert kdump_tools.host == meta("oops-null-zlib")["expected"]["nodename"]  # utsname
    assert kdump_tools.klass == "null-deref"
    # The dump's own CRASHTIME, not the folder's minute.
    assert ip.time is not None
    assert format_date(ip.time) == crash_sys("nmi-zlib")["DATE"]  # crash's own reading
    assert by_path["web-1-2026-11-23-08:00:00/vmcore"].host == "web-1"
    assert (
        by_path["web-1-2026-11-23-08:00:00/vmcore"].size
        == (tree / "web-1-2026-11-23-08:00:00/vmcore").stat().st_size
    )


def test_a_renamed_copy_is_the_same_dump(
    store: Store, tree: Path, copy_of: Callable[[Path, str], Path]
) -> None:
    catalog.scan(store, [tree])
    source = tree / "192.168.122.7-2026-11-22-06:13:06/vmcore"
    renamed = copy_of(source, "sysrq-from-monday.vmcore")
    moved_dir = tree / "archive" / "vmcore.old"
    link_or_copy(source, moved_dir)
    report = catalog.scan(store, [tree, renamed])
    statuses = {o.paths[0]: o.status for o in report.outcomes}
    assert statuses[str(renamed)] == "matched"
    assert statuses[str(moved_dir)] == "matched"
    assert counts(store)[0] == len(TREE)
    entry = next(d for d in catalog.list_dumps(store) if str(source) in d.paths)
    assert set(entry.paths) == {str(source), str(renamed), str(moved_dir)}
    # index_dump (the drill's call) on yet another name: the same entry again.
    again = catalog.index_dump(store, renamed, source="drill")
    assert again.id == entry.id
    assert again.identity == entry.identity
    assert again.source == "scan"  # an entry keeps what it was first recorded with


def test_a_truncated_copy_is_recorded_incomplete(
    store: Store, vmcore_fixtures: Path, tmp_path: Path
) -> None:
    source = vmcore_fixtures / "nmi-zlib" / "vmcore"
    cut = tmp_path / "127.0.0.1-2026-11-22-06:03:36" / "vmcore-incomplete"
    cut.parent.mkdir()
    with source.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(source.stat().st_size // 2))
    whole = catalog.index_dump(store, source)
    part = catalog.index_dump(store, cut, source="scan")
    assert whole.complete
    assert whole.incomplete_reason is None
    assert not part.complete
    assert part.incomplete_reason
    assert part.id != whole.id
    assert part.release == whole.release  # the kdump header is still there
    detail = catalog.show_dump(store, part.id)
    assert "COMPLETE: no" in detail.summary_text
    assert detail.summary["complete"] is False


def test_bad_files_get_a_typed_reason_and_never_stop_the_scan(
    store: Store, tree: Path, vmcore_fixtures: Path
) -> None:
    bad = tree / "bad-2026-11-24-00:00:00"
    bad.mkdir()
    (bad / "vmcore").write_bytes(b"")  # empty
    (bad / "vmcore.txt.1").write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 9)  # ELF, cut
    (bad / "vmcore.junk").write_bytes(os.urandom(8192))
    source = (vmcore_fixtures / "sysrq-zlib" / "vmcore").read_bytes()
    (bad / "vmcore.head").write_bytes(source[:100])  # a kdump header cut short
    os.mkfifo(bad / "vmcore.fifo")
    dangling = bad / "vmcore.link"
    dangling.symlink_to(bad / "nowhere")
    report = catalog.scan(store, [tree, dangling, bad / "vmcore.fifo"])
    by_path = {o.paths[0]: o for o in report.outcomes}
    assert report.count("new") == len(TREE)
    codes = {Path(p).name: o.error.code for p, o in by_path.items() if o.error is not None}
    assert codes == {
        "vmcore": "NotACrashDump",
        "vmcore.txt.1": "TruncatedDump",
        "vmcore.junk": "NotACrashDump",
        "vmcore.head": "TruncatedDump",
        "vmcore.fifo": "ConfigError",
        "vmcore.link": "ConfigError",
    }
    rejects = {Path(r.path).name: r for r in catalog.list_rejects(store)}
    assert {n: r.code for n, r in rejects.items()} == codes
    assert rejects["vmcore.junk"].size == 8192
    # Rescanning keeps one record per bad file; fixing a file clears its record.
    catalog.scan(store, [bad])
    assert len(catalog.list_rejects(store)) == len(codes)
    (bad / "vmcore.head").write_bytes(source)
    catalog.scan(store, [bad])
    assert "vmcore.head" not in {Path(r.path).name for r in catalog.list_rejects(store)}


def test_index_dump_raises_the_typed_error_and_records_it(store: Store, tmp_path: Path) -> None:
    junk = tmp_path / "vmcore"
    junk.write_bytes(b"not a dump at all")
    with pytest.raises(NotACrashDump):
        catalog.index_dump(store, junk)
    head = tmp_path / "vmcore.2"
    head.write_bytes(b"KDUMP   " + b"\0" * 40)
    with pytest.raises(TruncatedDump):
        catalog.index_dump(store, head)
    with pytest.raises(ConfigError):
        catalog.index_dump(store, tmp_path / "missing")
    with pytest.raises(ConfigError):
        catalog.index_dump(store, junk, source="cron")
    assert [r.code for r in catalog.list_rejects(store)] == [
        "ConfigError",
        "NotACrashDump",
        "TruncatedDump",
    ]
    assert catalog.list_dumps(store) == []


def test_a_split_set_is_one_dump(
    store: Store, fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    require_tool("makedumpfile")
    parts = makedumpfile_sets.made(
        fixture_dump, "split3-c", ["--split", "-c", "-d", "31"], ["s1", "s2", "s3"]
    )
    folder = tmp_path / "10.0.0.9-2026-11-22-06:03:36"
    for n, part in enumerate(reversed(parts)):
        link_or_copy(part, folder / f"vmcore.{chr(ord('c') - n)}")
    report = catalog.scan(store, [folder])
    assert len(report.outcomes) == 1
    assert report.outcomes[0].status == "new"
    entry = report.outcomes[0].entry
    assert entry is not None
    assert entry.paths == tuple(str(folder / f"vmcore.{c}") for c in "abc")
    assert entry.size == sum(p.stat().st_size for p in parts)
    assert entry.klass == "nmi"
    assert entry.complete
    assert entry.host == "10.0.0.9"
    detail = catalog.show_dump(store, entry.id)
    assert [f.part for f in detail.files] == [0, 1, 2]
    assert catalog.scan(store, [folder]).outcomes[0].status == "unchanged"
    # One member alone is a different (partial) dump, never merged with the set.
    alone = catalog.index_dump(store, parts[0], source="scan")
    assert alone.id != entry.id


def test_accounts_see_only_their_own_dumps(store: Store, tree: Path) -> None:
    other = store.create_account("other")
    catalog.scan(store, [tree])
    assert catalog.list_dumps(store, account_id=other.id) == []
    mine = catalog.list_dumps(store)
    with pytest.raises(NoSuchEntity):
        catalog.show_dump(store, mine[0].id, account_id=other.id)
    theirs = catalog.scan(store, [tree], account_id=other.id)
    assert theirs.count("new") == len(TREE)  # the same files: new to that account
    assert {d.identity for d in catalog.list_dumps(store, account_id=other.id)} == {
        d.identity for d in mine
    }
    assert not {d.id for d in catalog.list_dumps(store, account_id=other.id)} & {d.id for d in mine}


def test_show_has_the_analyze_summary_and_the_log_tail(
    store: Store, tree: Path, vmcore_fixtures: Path
) -> None:
    catalog.scan(store, [tree])
    entry = next(d for d in catalog.list_dumps(store) if d.klass == "null-deref")
    detail = catalog.show_dump(store, entry.id)
    assert "CLASS: null-deref" in detail.summary_text
    assert f"SIGNATURE: {entry.signature_id}  {entry.signature}" in detail.summary_text
    assert detail.summary["panic"]["signature"] == entry.signature
    # The oracle: makedumpfile's own --dump-dmesg of the same dump.
    truth = (vmcore_fixtures / "oops-null-zlib" / "makedumpfile-dmesg.txt").read_text()
    assert list(detail.log_tail) == truth.splitlines()[-LOG_TAIL_LINES:]
    with pytest.raises(NoSuchEntity):
        catalog.show_dump(store, "dump-0000000000000000")
