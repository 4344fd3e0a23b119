"""DumpDirWatch: only a new, finished vmcore counts; old ones, unfinished ones, hidden and
too-deep ones do not."""

from __future__ import annotations

from pathlib import Path

from kdiag.drill.observe import DumpDirWatch


def _write(path: Path, data: bytes = b"x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_only_a_new_finished_dump_counts(tmp_path: Path) -> None:
    old = _write(tmp_path / "10.0.0.1-2026-01-01-00:00" / "vmcore")
    watch = DumpDirWatch(tmp_path, stable=0.0)
    _write(tmp_path / "h-1" / "vmcore-incomplete")
    _write(tmp_path / "h-1" / "vmcore.partial")
    _write(tmp_path / ".hidden" / "vmcore")
    _write(tmp_path / "a" / "b" / "c" / "vmcore")  # deeper than /var/crash/<dir>/vmcore
    _write(tmp_path / "h-1" / "dmesg.txt")
    assert watch.poll() == []
    assert watch.poll() == []
    assert watch.new_dump is None
    new = _write(tmp_path / "h-2" / "vmcore")
    assert watch.poll() == []  # first sight: its size must hold still
    assert watch.poll() == [f"new dump: {new}"]
    assert watch.new_dump == new != old
    assert watch.poll() == []  # one dump per drill


def test_a_growing_file_is_not_done(tmp_path: Path) -> None:
    watch = DumpDirWatch(tmp_path, stable=0.0)
    path = _write(tmp_path / "h" / "vmcore", b"x")
    for size in (10, 100, 1000):
        assert watch.poll() == []
        path.write_bytes(b"x" * size)
    watch.poll()
    assert watch.poll() == [f"new dump: {path}"]


def test_a_missing_directory_is_empty(tmp_path: Path) -> None:
    watch = DumpDirWatch(tmp_path / "absent")
    assert watch.poll() == []
