"""Grouping by crash signature on a scan of the real fixture folders, against an oracle:
the signature :func:`kdiag.vmcore.panic.classify` gives for the kernel log the peers wrote
(``makedumpfile --dump-dmesg``, or crash's ``log`` for the QEMU host dump) — text kdiag's
reader never touched."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from kdiag import catalog
from kdiag.errors import ConfigError
from kdiag.store import Store
from kdiag.vmcore.panic import classify
from tests.vmcore.conftest import FIXTURE_NAMES


def peer_log(folder: Path) -> list[str]:
    for name in ("makedumpfile-dmesg.txt", "crash-log.txt"):
        if (folder / name).is_file():
            return (folder / name).read_text(errors="replace").splitlines()
    raise AssertionError(f"no peer log in {folder}")


def test_grouping_a_scan_of_the_real_fixtures(store: Store, vmcore_fixtures: Path) -> None:
    """One scan (it decompresses the two zstd dumps, 1.1 GB: seconds) for three checks."""
    report = catalog.scan(store, [vmcore_fixtures])
    assert report.count("new") == len(FIXTURE_NAMES), report.to_json()
    groups_match_the_peers_logs(store, vmcore_fixtures)
    the_nmi_group_spans_formats_and_hosts(store)
    since_and_occurrences(store)


def groups_match_the_peers_logs(scanned: Store, vmcore_fixtures: Path) -> None:
    oracle: Counter[str] = Counter()
    classes: dict[str, str] = {}
    for name in FIXTURE_NAMES:
        info = classify(peer_log(vmcore_fixtures / name))
        assert info.signature_id is not None, name
        oracle[info.signature_id] += 1
        classes[info.signature_id] = info.klass
    groups = catalog.group_dumps(scanned)
    assert {g.signature_id: g.count for g in groups} == dict(oracle)
    assert {g.signature_id: g.klass for g in groups} == classes
    assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)
    dumps = {d.id: d for d in catalog.list_dumps(scanned)}
    for group in groups:
        members = [dumps[i] for i in group.dump_ids]
        assert {d.signature_id for d in members} == {group.signature_id}
        assert group.hosts == tuple(sorted({d.host for d in members if d.host}))
        assert group.releases == tuple(sorted({d.release for d in members if d.release}))
        times = [d.time or d.indexed_at for d in members]
        assert (group.first_seen, group.last_seen) == (min(times), max(times))


def the_nmi_group_spans_formats_and_hosts(scanned: Store) -> None:
    nmi = next(g for g in catalog.group_dumps(scanned) if g.klass == "nmi")
    dumps = {d.id: d for d in catalog.list_dumps(scanned)}
    formats = sorted(dumps[i].format for i in nmi.dump_ids)
    # One guest crash written four ways, and QEMU's host-side dump of another guest.
    assert formats == ["elf", "flattened", "kdump", "kdump", "qemu-kdump"]
    assert nmi.hosts == ("fixture-hostdump", "fixture-nmi")
    assert nmi.releases == ("6.1.0-56-amd64",)


def since_and_occurrences(scanned: Store) -> None:
    dumps = catalog.list_dumps(scanned)
    with_time = sorted(d.time for d in dumps if d.time is not None)
    cut = sorted(set(with_time))[1]  # after the four copies of the nmi crash
    recent = catalog.group_dumps(scanned, since=cut)
    expected = sum(1 for d in dumps if (d.time or d.indexed_at) >= cut)
    assert sum(g.count for g in recent) == expected
    assert 0 < expected < len(dumps)
    for bucket in catalog.BUCKETS:
        occ = catalog.occurrences(scanned, bucket=bucket)
        assert sum(o.count for o in occ) == len(dumps)
        assert occ == sorted(occ, key=lambda o: (o.start, o.signature_id))
        for o in occ:
            assert o.start.tzinfo is not None
            assert o.start.minute == o.start.second == 0
            if bucket != "hour":
                assert o.start.hour == 0
            if bucket == "week":
                assert o.start.weekday() == 0
    one = catalog.group_dumps(scanned)[0]
    mine = catalog.occurrences(scanned, signature_id=one.signature_id, bucket="day")
    assert {o.signature_id for o in mine} == {one.signature_id}
    assert sum(o.count for o in mine) == one.count
    with pytest.raises(ConfigError):
        catalog.occurrences(scanned, bucket="month")


def test_dumps_without_a_signature_are_in_no_group(
    store: Store, tmp_path: Path, vmcore_fixtures: Path
) -> None:
    source = vmcore_fixtures / "nmi-zlib" / "vmcore"
    cut = tmp_path / "vmcore"
    with source.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(source.stat().st_size // 2))  # the log is in the missing half
    entry = catalog.index_dump(store, cut)
    assert entry.signature is None
    assert entry.klass == "unknown"
    assert catalog.group_dumps(store) == []
    assert catalog.occurrences(store) == []
    assert catalog.group_dumps(store, since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) == []
