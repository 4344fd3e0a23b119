"""``makedumpfile --split`` sets, made by Debian's makedumpfile from the ``nmi-elf`` fixture.

The truth is the same makedumpfile run without ``--split`` (``whole``): the set, opened in any
order, must read every page, the log and the triage exactly as ``whole`` does; one file read
alone gives exactly its own pages and a typed error for the others, never another page's bytes.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.errors import DumpFormatError, NotACrashDump, PageNotPresent, TruncatedDump
from kdiag.vmcore.formats.diskdump import KdumpPages
from kdiag.vmcore.triage import triage
from tests.vmcore import makedumpfile_sets

_OPTS = ["-c", "-d", "31"]
# Without --splitblock-size this makedumpfile puts every page into the first file.
_SPLIT = ["--split", "--splitblock-size", "64", *_OPTS]


@pytest.fixture(scope="module")
def whole(fixture_dump: Callable[[str], Path]) -> Path:
    return makedumpfile_sets.made(fixture_dump, "whole-c-d31", _OPTS, ["vmcore"])[0]


@pytest.fixture(scope="module")
def members(fixture_dump: Callable[[str], Path]) -> list[Path]:
    return makedumpfile_sets.made(fixture_dump, "split3-c-d31", _SPLIT, ["s1", "s2", "s3"])


@pytest.fixture(scope="module")
def foreign(fixture_dump: Callable[[str], Path]) -> list[Path]:
    opts = ["--split", "--splitblock-size", "64", "-c", "-d", "1"]
    return makedumpfile_sets.made(fixture_dump, "split2-c-d1", opts, ["f1", "f2"])


def _store(dump: kdiag.vmcore.Dump) -> KdumpPages:
    assert isinstance(dump.layout.store, KdumpPages)
    return dump.layout.store


def test_makedumpfile_wrote_a_real_three_way_split(members: list[Path]) -> None:
    ranges = []
    for path in members:
        with kdiag.vmcore.open(path) as dump:
            assert dump.split_range is not None
            ranges.append(dump.split_range)
            assert dump.complete is False
            assert "one file of a makedumpfile --split set" in (dump.incomplete_reason or "")
    assert ranges[0][0] == 0
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(ranges))


def test_a_member_alone_gives_its_own_pages_or_a_typed_error(
    whole: Path, members: list[Path]
) -> None:
    with kdiag.vmcore.open(whole) as ref:
        truth = {pfn: _store(ref).load_page(pfn) for pfn in _store(ref).present_pfns()}
    assert len(truth) > 10_000
    for path in members:
        with kdiag.vmcore.open(path) as dump:
            start, end = dump.split_range or (0, 0)
            own = [pfn for pfn in truth if start <= pfn < end]
            assert own
            assert list(_store(dump).present_pfns()) == own
            for pfn, page in truth.items():
                if start <= pfn < end:
                    assert dump.read_phys(pfn * 4096, 4096) == page
                else:
                    # Not PageNotPresent: zero_excluded must not turn it into zeros either.
                    for fill in (False, True):
                        with pytest.raises(TruncatedDump, match="in another file of this split"):
                            dump.read_phys(pfn * 4096, 4096, zero_excluded=fill)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_the_set_reads_as_the_whole_dump(
    whole: Path, members: list[Path], order: tuple[int, ...]
) -> None:
    with (
        kdiag.vmcore.open(whole) as ref,
        kdiag.vmcore.open([members[i] for i in order]) as dump,
    ):
        assert dump.members == tuple(members)
        assert dump.path == members[0]
        assert dump.complete, dump.incomplete_reason
        assert dump.split_range is None
        want, got = triage(ref), triage(dump)
        assert dataclasses.replace(got, path=want.path, bytes_read=0) == dataclasses.replace(
            want, bytes_read=0
        )
        assert kdiag.vmcore.format_dmesg(dump.kernel_log()) == kdiag.vmcore.format_dmesg(
            ref.kernel_log()
        )
        pfns = list(_store(ref).present_pfns())
        assert list(dump.layout.store.present_pfns()) == pfns  # type: ignore[attr-defined]
        for pfn in pfns[::7]:
            assert dump.read_phys(pfn * 4096, 4096) == ref.read_phys(pfn * 4096, 4096)
        absent = next(p for p in range(_store(ref).max_mapnr) if p not in set(pfns))
        for reader in (ref, dump):
            with pytest.raises(PageNotPresent):
                reader.read_phys(absent * 4096, 8)
            assert reader.read_phys(absent * 4096, 8, zero_excluded=True) == bytes(8)
        beyond = _store(ref).max_mapnr * 4096
        with pytest.raises(PageNotPresent):
            dump.read_phys(beyond, 8)


def test_a_missing_member_is_named_by_its_pfn_range(members: list[Path]) -> None:
    s1, s2, s3 = members
    with pytest.raises(
        TruncatedDump, match=rf"lacks the file holding pfns 0x[0-9a-f]+-0x[0-9a-f]+ \(after {s2}"
    ):
        kdiag.vmcore.open([s2, s1])
    with pytest.raises(TruncatedDump, match=rf"\(before {s3}\)"):
        kdiag.vmcore.open([s3, s1])
    with pytest.raises(TruncatedDump, match=r"lacks the file holding pfns 0x0-"):
        kdiag.vmcore.open([s3, s2])


def test_a_foreign_member_is_named(members: list[Path], foreign: list[Path], whole: Path) -> None:
    s1, s2, s3 = members
    with pytest.raises(NotACrashDump, match=rf"{foreign[1]} belongs to another dump .*dump level"):
        kdiag.vmcore.open([s1, foreign[1], s2, s3])
    with pytest.raises(NotACrashDump, match=rf"{whole} is not a file of a split dump"):
        kdiag.vmcore.open([s1, s2, s3, whole])
    with pytest.raises(NotACrashDump, match=rf"{s2} overlaps {s2}"):
        kdiag.vmcore.open([s1, s2, s2, s3])
    # The foreign set itself is complete and reads.
    with kdiag.vmcore.open(foreign) as dump:
        assert dump.complete
        assert dump.kernel_log()


def test_a_list_of_one_path_is_that_path(whole: Path) -> None:
    with kdiag.vmcore.open([whole]) as dump:
        assert dump.path == whole
        assert dump.members == ()
    with pytest.raises(NotACrashDump, match="no dump files"):
        kdiag.vmcore.open([])


def test_header_version_5_members_use_the_32_bit_pfn_range(
    whole: Path, members: list[Path], tmp_path: Path
) -> None:
    """Before version 6 the range is in the 32-bit ``start_pfn``/``end_pfn`` fields."""
    old = []
    for path in members:
        copy = tmp_path / path.name
        shutil.copyfile(path, copy)
        with copy.open("r+b") as file:
            file.seek(8)
            file.write(struct.pack("<i", 5))
            file.seek(4096 + 88)  # start_pfn_64, end_pfn_64, max_mapnr_64: ignored now
            file.write(bytes(24))
        old.append(copy)
    with kdiag.vmcore.open(old) as dump, kdiag.vmcore.open(whole) as ref:
        assert dump.header_version == 5
        assert kdiag.vmcore.format_dmesg(dump.kernel_log()) == kdiag.vmcore.format_dmesg(
            ref.kernel_log()
        )


def test_members_cut_short_stay_typed(members: list[Path], tmp_path: Path) -> None:
    s1, s2, s3 = members
    cut = tmp_path / "s2-cut"
    cut.write_bytes(s2.read_bytes()[: s2.stat().st_size // 2])
    with kdiag.vmcore.open([s1, cut, s3]) as dump:
        assert not dump.complete
        assert f"{cut}: the file is cut short" in (dump.incomplete_reason or "")
        result = triage(dump)  # reads what is there; missing pages are typed errors
        assert result.complete is False
        start, end = kdiag.vmcore.open(cut).split_range or (0, 0)
        errors = 0
        for pfn in range(start, end):
            try:
                dump.read_phys(pfn * 4096, 16)
            except DumpFormatError:
                errors += 1
        assert errors
