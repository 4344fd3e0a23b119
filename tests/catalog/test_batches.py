"""A scan commits its rows a bounded batch at a time (kdiag.catalog.writes), with the
outcomes of a scan that commits file by file: the first file of a dump is new, the later
ones match it and see every path recorded before them, bad files are rejected and the scan
goes on, a write that fails for one file rejects that file only, an interrupted scan keeps
what it read."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from kdiag import catalog
from kdiag.catalog import writes
from kdiag.catalog.records import ScanReport
from kdiag.store import Store, dump_batch
from kdiag.store import dumps as dumpdb
from tests.catalog.conftest import TREE, link_or_copy


@pytest.fixture
def mixed(tree: Path) -> Path:
    """The four dumps of ``tree``, two more names for two of them, and two bad files."""
    first, second = (tree / rel for rel in list(TREE)[:2])
    link_or_copy(first, tree / "zz-2026-11-30-00:00:00" / "vmcore")
    link_or_copy(second, tree / "zz-2026-11-30-00:00:00" / "vmcore.1")
    bad = tree / "bad-2026-11-24-00:00:00"
    bad.mkdir()
    (bad / "vmcore").write_bytes(os.urandom(8192))
    (bad / "vmcore.1").write_bytes(b"")
    return tree


def batches(monkeypatch: pytest.MonkeyPatch, most: int, seconds: float) -> list[int]:
    """Set the batch bounds; the list fills with the size of each committed batch."""
    monkeypatch.setattr(writes, "BATCH_FILES", most)
    monkeypatch.setattr(writes, "BATCH_SECONDS", seconds)
    sizes: list[int] = []
    real = dump_batch.record_batch

    def spy(
        store: Store, items: Sequence[dump_batch.NewFiles | dump_batch.NewReject], **kw: str | None
    ) -> list[dump_batch.BatchResult]:
        sizes.append(len(items))
        return real(store, items, **kw)

    monkeypatch.setattr(dump_batch, "record_batch", spy)
    return sizes


def assert_file_by_file(report: ScanReport) -> None:
    """What a scan committing each file before reading the next reports: an entry holds the
    paths recorded up to and including its file."""
    seen: dict[str, list[str]] = {}
    for outcome in report.outcomes:
        if outcome.status == "rejected":
            assert outcome.entry is None
            assert outcome.error is not None
            continue
        assert outcome.entry is not None
        before = seen.setdefault(outcome.entry.identity, [])
        assert outcome.status == ("matched" if before else "new"), outcome.paths
        before.extend(outcome.paths)
        assert sorted(outcome.entry.paths) == sorted(before)


def test_batches_are_bounded_in_files_and_keep_the_outcomes(
    store: Store, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = batches(monkeypatch, most=3, seconds=3600.0)
    report = catalog.scan(store, [mixed])
    assert len(report.outcomes) == 8
    assert sizes == [3, 3, 2]
    assert (report.count("new"), report.count("matched"), report.count("rejected")) == (4, 2, 2)
    assert_file_by_file(report)
    dumps = catalog.list_dumps(store)
    assert (len(dumps), sum(len(d.paths) for d in dumps)) == (4, 6)
    assert {r.code for r in catalog.list_rejects(store)} == {"NotACrashDump"}
    # a rescan reads nothing and writes nothing
    sizes.clear()
    again = catalog.scan(store, [mixed])
    assert sorted({o.status for o in again.outcomes}) == ["rejected", "unchanged"]
    assert sizes == []


def test_a_batch_is_committed_once_its_oldest_file_waited_long_enough(
    store: Store, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = batches(monkeypatch, most=1000, seconds=0.0)
    report = catalog.scan(store, [mixed])
    assert sizes == [1] * 8
    assert_file_by_file(report)


def test_a_write_failing_for_one_file_rejects_that_file_only(
    store: Store, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = batches(monkeypatch, most=100, seconds=3600.0)
    real = dump_batch._row

    def failing(account: str, facts: dumpdb.NewDump, when: object) -> object:
        if str(facts.summary["triage"]["path"]).endswith("dump.202611220620"):
            raise ValueError("a row this code cannot write")
        return real(account, facts, when)  # type: ignore[arg-type]

    monkeypatch.setattr(dump_batch, "_row", failing)
    report = catalog.scan(store, [mixed])
    by_name = {Path(o.paths[0]).name: o for o in report.outcomes}
    broken = by_name["dump.202611220620"]
    assert broken.status == "rejected"
    assert broken.error is not None
    assert broken.error.code == "InternalError"
    assert "a row this code cannot write" in broken.error.message
    assert (report.count("new"), report.count("matched"), report.count("rejected")) == (3, 2, 3)
    # the batch of 8 failed as a whole, then each file was written on its own (the broken
    # one twice: its row, then its rejection)
    assert sizes == [8, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert len(catalog.list_dumps(store)) == 3
    assert "InternalError" in {r.code for r in catalog.list_rejects(store)}


def test_an_interrupted_scan_keeps_the_files_it_read(
    store: Store, mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches(monkeypatch, most=100, seconds=3600.0)

    def stop_after_three(done: int, total: int, path: str) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        catalog.scan(store, [mixed], progress=stop_after_three)
    dumps = catalog.list_dumps(store)
    assert sum(len(d.paths) for d in dumps) + len(catalog.list_rejects(store)) == 3
    report = catalog.scan(store, [mixed])
    assert report.count("unchanged") + report.count("rejected") >= 3
    assert len(catalog.list_dumps(store)) == 4


def _dump(identity: str) -> dumpdb.NewDump:
    return dumpdb.NewDump(
        identity=identity,
        host=None,
        crash_time=None,
        format="kdump",
        compression="zlib",
        arch="x86_64",
        size=1,
        release=None,
        klass="nmi",
        signature=None,
        signature_id=None,
        complete=True,
        incomplete_reason=None,
        source="scan",
        summary={},
        log_tail="",
    )


def _files(*paths: str) -> list[dumpdb.FileFacts]:
    return [dumpdb.FileFacts(p, n, 10 + n, None, 1, 100 + n, 5) for n, p in enumerate(paths)]


def _shown(results: Sequence[dump_batch.BatchResult]) -> list[tuple[object, ...]]:
    """A result without what differs between two accounts (ids, times)."""
    out: list[tuple[object, ...]] = []
    for r in results:
        if isinstance(r, tuple):
            out.append((r[0].identity, r[0].paths, r[0].host, r[1]))
        else:
            out.append((r.path, r.code, r.message, r.size))
    return out


def _state(store: Store, account: str) -> tuple[object, ...]:
    dumps = sorted((d.identity, d.paths) for d in dumpdb.list_dumps(store, account_id=account))
    rejects = sorted((r.path, r.code) for r in dumpdb.list_rejects(store, account_id=account))
    return tuple(dumps), tuple(rejects)


@pytest.mark.parametrize("repeat", [False, True], ids=["distinct-paths", "a-path-twice"])
def test_record_batch_returns_what_the_single_calls_return(store: Store, repeat: bool) -> None:
    """Paths moved between dumps, taken by a rejection, cleared of one: a batch and the same
    items recorded one call at a time (in another account) agree item by item."""
    batch = store.create_account("batched").id
    single = store.create_account("single").id
    for account in (batch, single):
        dumpdb.record_dump(store, _dump("d1"), _files("/c/p1"), account_id=account)
        dumpdb.record_dump(store, _dump("d2"), _files("/c/p2"), account_id=account)
        dumpdb.record_reject(store, "/c/p5", "NotACrashDump", "no", account_id=account)
    with_host = dataclasses.replace(_dump("d3"), host="web-1")
    items: list[dump_batch.NewFiles | dumpdb.NewReject] = [
        dump_batch.NewFiles(_dump("d1"), _files("/c/p3")),
        dumpdb.NewReject("/c/p1", "TruncatedDump", "cut", 7, 8),
        dump_batch.NewFiles(_dump("d3"), _files("/c/p4")),
        dump_batch.NewFiles(_dump("d1"), _files("/c/p2")),
        dump_batch.NewFiles(_dump("d2"), _files("/c/p5", "/c/p6")),
        dump_batch.NewFiles(with_host, _files("/c/p7")),
    ]
    if repeat:  # the same path twice: recorded item by item in the one transaction
        items.append(dumpdb.NewReject("/c/p7", "NotACrashDump", "again"))
    got = dump_batch.record_batch(store, items, account_id=batch)
    want: list[dump_batch.BatchResult] = []
    for item in items:
        if isinstance(item, dump_batch.NewFiles):
            want.append(dumpdb.record_dump(store, item.facts, item.files, account_id=single))
        else:
            want.append(
                dumpdb.record_reject(
                    store,
                    item.path,
                    item.code,
                    item.message,
                    size=item.size,
                    mtime_ns=item.mtime_ns,
                    account_id=single,
                )
            )
    assert _shown(got) == _shown(want)
    assert _state(store, batch) == _state(store, single)
    assert [r[1] for r in got if isinstance(r, tuple)] == [False, True, False, False, False]
