"""The content identity on the real fixture dumps, against an independent oracle: the
SHA-256 of each file's whole decompressed content (two files are the same dump exactly when
those agree, within the limit docs/dumps.md states: pages triage never reads)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag import vmcore
from kdiag.catalog import content_identity
from kdiag.vmcore.triage import triage
from tests.vmcore.conftest import FIXTURE_NAMES


def identity_of(path: Path | list[Path]) -> tuple[str, bool]:
    with vmcore.open(path if isinstance(path, Path) else [str(p) for p in path]) as dump:
        result = triage(dump)
        return content_identity(dump, result.log), result.complete


def file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_every_fixture_is_a_different_dump(fixture_dump: Callable[[str], Path]) -> None:
    paths = {name: fixture_dump(name) for name in FIXTURE_NAMES}
    ids = {name: identity_of(path)[0] for name, path in paths.items()}
    oracle = {name: file_sha(path) for name, path in paths.items()}
    assert len(set(oracle.values())) == len(paths)  # the oracle: nine different files
    assert len(set(ids.values())) == len(paths), ids
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids.values())


def test_same_kernel_same_panic_are_still_different_dumps(
    fixture_dump: Callable[[str], Path],
) -> None:
    """nmi-zlib, nmi-lzo and nmi-flat hold one crash written three ways, sysrq-zlib and
    oops-null-zlib other crashes of the same kernel (6.1.0-56-amd64): five identities."""
    names = ["nmi-zlib", "nmi-lzo", "nmi-flat", "sysrq-zlib", "oops-null-zlib"]
    releases = set()
    for name in names:
        with vmcore.open(fixture_dump(name)) as dump:
            releases.add(triage(dump).release)
    assert len(releases) == 1
    assert len({identity_of(fixture_dump(n))[0] for n in names}) == len(names)


def test_renamed_linked_and_compressed_copies_are_the_same_dump(
    fixture_dump: Callable[[str], Path], vmcore_fixtures: Path, tmp_path: Path
) -> None:
    source = fixture_dump("sysrq-zlib")
    want, _ = identity_of(source)
    renamed = tmp_path / "dump.202611220613"
    shutil.copyfile(source, renamed)
    linked = tmp_path / "vmcore.1"
    linked.hardlink_to(source)
    packed = tmp_path / "vmcore.gz"
    with source.open("rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    assert file_sha(renamed) == file_sha(source)
    for copy in (renamed, linked, packed):
        assert identity_of(copy)[0] == want, copy
    # The stored zstd file of nmi-elf and its decompressed copy: one dump.
    zst = vmcore_fixtures / "nmi-elf" / "vmcore.zst"
    assert identity_of(zst)[0] == identity_of(fixture_dump("nmi-elf"))[0]


def _patched(source: Path, target: Path, old: bytes, new: bytes, count: int = 1) -> Path:
    data = source.read_bytes()
    assert data.count(old) >= 1, old
    assert len(old) == len(new)
    target.write_bytes(data.replace(old, new, count))
    return target


def test_a_different_crash_time_is_a_different_dump(
    fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    """The same kernel and bytes but CRASHTIME (the kdump file keeps VMCOREINFO in clear)."""
    source = fixture_dump("nmi-zlib")
    data = source.read_bytes()
    at = data.index(b"CRASHTIME=") + len(b"CRASHTIME=")
    digit = data[at : at + 1]
    other = b"1" if digit != b"1" else b"2"
    changed = _patched(source, tmp_path / "vmcore", b"CRASHTIME=" + digit, b"CRASHTIME=" + other)
    assert identity_of(changed)[0] != identity_of(source)[0]


def test_a_different_log_line_is_a_different_dump(
    fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    """An ELF dump (pages in clear) whose kernel log record of the panic differs in one
    character (every copy of the record's text: the file maps some memory twice)."""
    source = fixture_dump("nmi-elf")
    line = b"Kernel panic - not syncing: NMI: Not continuing"
    changed = _patched(source, tmp_path / "vmcore", line, line[:-1] + b"G", count=-1)
    with vmcore.open(changed) as dump:
        assert any(r.text.endswith("continuinG") for r in dump.kernel_log())
    assert identity_of(changed)[0] != identity_of(source)[0]


def test_a_page_triage_never_reads_does_not_change_the_identity(
    fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    """The documented limit: a change in kernel text triage never reads (a string in the
    kernel's read-only data, not in the log) leaves the identity alone."""
    source = fixture_dump("nmi-elf")
    text = b"arch/x86/kernel/nmi.c\x00NMI: Not continuing\x00"
    changed = _patched(source, tmp_path / "vmcore", text, text.replace(b"Not", b"NOT"), count=-1)
    assert file_sha(changed) != file_sha(source)
    assert identity_of(changed)[0] == identity_of(source)[0]


def test_a_truncated_copy_is_another_dump_and_incomplete(
    fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    source = fixture_dump("nmi-zlib")
    cut = tmp_path / "vmcore-incomplete"
    with source.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(source.stat().st_size * 3 // 4))
    whole, complete = identity_of(source)
    part, part_complete = identity_of(cut)
    assert complete
    assert not part_complete
    assert part != whole


@pytest.mark.parametrize("name", ["nmi-zlib", "arm64-sysrq-zlib"])
def test_identity_is_stable_across_opens(fixture_dump: Callable[[str], Path], name: str) -> None:
    path = fixture_dump(name)
    assert identity_of(path) == identity_of(path)
