"""Finding the dumps under /var/crash, and what opening a path that is not one says."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.errors import ConfigError, NotACrashDump, TruncatedDump
from kdiag.vmcore.discover import find_dumps, is_dump_name
from kdiag.vmcore.spool import file_compression


@pytest.mark.parametrize(
    ("name", "is_dump"),
    [
        ("vmcore", True),
        ("vmcore-incomplete", True),
        ("vmcore.flat", True),
        ("vmcore.zst", True),
        ("vmcore.1", True),
        ("dump.202611220613", True),
        ("dump.202611220613.zst", True),
        ("dump-incomplete", True),
        ("vmcore-dmesg.txt", False),
        ("dmesg.202611220613", False),
        ("vmcore.txt", False),
        ("kexec_cmd", False),
        ("dump", False),
        ("dump.log", False),
    ],
)
def test_dump_names(name: str, is_dump: bool) -> None:
    assert is_dump_name(name) is is_dump


def test_find_dumps_walks_the_tree_sorted_and_once(tmp_path: Path) -> None:
    for rel in (
        "b/202611220613/dump.202611220613",
        "b/202611220613/dmesg.202611220613",
        "a/127.0.0.1-2026-11-22-06:13:06/vmcore",
        "a/127.0.0.1-2026-11-22-06:13:06/vmcore-dmesg.txt",
        "c/vmcore-incomplete",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "c" / "vmcore.latest").symlink_to(tmp_path / "c" / "vmcore-incomplete")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "vmcore").mkdir()  # a directory called vmcore is not a dump
    found = [p.relative_to(tmp_path).as_posix() for p in find_dumps(tmp_path)]
    assert found == [
        "a/127.0.0.1-2026-11-22-06:13:06/vmcore",
        "b/202611220613/dump.202611220613",
        "c/vmcore-incomplete",
    ]
    assert find_dumps(tmp_path / "b" / "202611220613" / "dmesg.202611220613") == []


def test_opening_a_path_that_is_not_a_dump_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        kdiag.vmcore.open(tmp_path / "missing")
    with pytest.raises(ConfigError, match="is a directory"):
        kdiag.vmcore.open(tmp_path)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(NotACrashDump):
        kdiag.vmcore.open(empty)


def test_compressed_junk_is_still_not_a_dump(tmp_path: Path) -> None:
    packed = tmp_path / "junk.gz"
    packed.write_bytes(gzip.compress(b"hello, not a dump " * 1000))
    assert file_compression(packed.read_bytes()[:8]) == "gzip"
    with pytest.raises(NotACrashDump):
        kdiag.vmcore.open(packed)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed.read_bytes()[:40])
    with pytest.raises(TruncatedDump):
        kdiag.vmcore.open(cut)
    with pytest.raises(NotACrashDump):
        kdiag.vmcore.open_stream(io.BytesIO(b"not a dump either"))


def test_open_stream_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(NotACrashDump):
        kdiag.vmcore.open_stream(io.BytesIO(b"\0" * 10000))
    assert os.listdir(tmp_path) == []
