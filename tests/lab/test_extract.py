"""The host side of the capture path on a real ext4 image (mkfs.ext4 + debugfs, no QEMU)."""

from __future__ import annotations

import datetime
import json
import stat
import subprocess
from pathlib import Path

from kdiag.lab.console import ConsoleFollower, decode_facts
from kdiag.lab.supervisor import Supervisor, extract_dump, first_dump_saved
from tests.conftest import require_tool


def _disk_with(tmp_path: Path, files: dict[str, bytes]) -> Path:
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(16 << 20)
    subprocess.run(
        [require_tool("mkfs.ext4"), "-q", "-F", "-O", "^metadata_csum", str(disk)], check=True
    )
    for name, data in files.items():
        src = tmp_path / f"src-{name}"
        src.write_bytes(data)
        subprocess.run(
            [require_tool("debugfs"), "-w", "-R", f"write {src} {name}", str(disk)],
            check=True,
            capture_output=True,
        )
    return disk


def test_extract_dump_builds_a_private_crash_directory(tmp_path: Path) -> None:
    disk = _disk_with(
        tmp_path,
        {
            "dumps.txt": b"1 rc=0 size=12 start=1.00 end=3.50 opts=-c_-d_31\n"
            b"2 rc=0 size=9 start=3.50 end=4.00 opts=-l_-d_31\n",
            "vmcore.1": b"KDUMP   1234",
            "vmcore.2": b"KDUMP   9",
            "dmesg.txt": b"Kernel panic - not syncing: NMI: Not continuing\n",
        },
    )
    when = datetime.datetime(2026, 11, 22, 7, 5, 9)
    out = extract_dump(disk, tmp_path / "crash", "guest1", when)
    assert out == tmp_path / "crash" / "guest1-2026-11-22-07:05:09"
    assert (out / "vmcore").read_bytes() == b"KDUMP   1234"
    assert (out / "vmcore.ld31").read_bytes() == b"KDUMP   9"
    assert "NMI: Not continuing" in (out / "dmesg.txt").read_text()
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    capture = json.loads((out / "capture.json").read_text())
    assert capture["dumps"][0] == {
        "file": "vmcore",
        "makedumpfile": "-c -d 31",
        "rc": 0,
        "seconds": 2.5,
        "size": 12,
    }
    # a second dump in the same second gets its own directory
    again = extract_dump(disk, tmp_path / "crash", "guest1", when)
    assert again != out
    assert again.exists()
    assert not list((tmp_path / "crash").glob(".*"))


def test_console_follower_returns_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"one\ntw")
    follower = ConsoleFollower(path)
    assert [t for _, t in follower.lines()] == ["one"]
    with open(path, "ab") as fh:
        fh.write(b"o\r\nthree\n")
    assert follower.lines() == [(4, "two"), (9, "three")]
    assert follower.lines() == []


def test_decode_facts_ignores_interleaved_kernel_lines() -> None:
    lines = ["eyJhIjog", "[   12.3] random: crng init done", "MX0K"]
    assert decode_facts(lines) == b'{"a": 1}\n'


def _supervised(tmp_path: Path, files: dict[str, bytes]) -> Supervisor:
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "guest.json").write_text(json.dumps({"name": "g"}))
    _disk_with(tmp_path, files).rename(guest / "disk.img")
    sup = Supervisor(guest)
    sup.handle_line("LAB: capture kernel 6.1.0-57-arm64 up; cmdline: x [uptime=2.17]")
    sup.handle_line("LAB: LAB-DUMP-DONE count=1 [uptime=3.45]")
    return sup


def test_a_failed_makedumpfile_is_a_failed_capture_not_a_dump(tmp_path: Path) -> None:
    """arm64's kexec -p _text trap: the capture kernel boots, makedumpfile fails (rc 1, no
    file); the crash directory keeps the evidence but no dump is counted."""
    sup = _supervised(
        tmp_path,
        {
            "dumps.txt": b"1 rc=1 size=0 start=2.94 end=3.10 opts=-c_-d_31\n",
            "dmesg.txt": b"",
        },
    )
    status = json.loads((sup.dir / "status.json").read_text())
    assert (status["phase"], status["dumps"], status["capture_failures"]) == ("dump-failed", 0, 1)
    failed = Path(status["last_failed_capture"])
    assert json.loads((failed / "capture.json").read_text())["dumps"][0]["rc"] == 1
    assert not (failed / "vmcore").exists()
    assert not first_dump_saved(failed)


def test_a_saved_dump_is_counted(tmp_path: Path) -> None:
    sup = _supervised(
        tmp_path,
        {
            "dumps.txt": b"1 rc=0 size=12 start=1.00 end=3.50 opts=-c_-d_31\n",
            "vmcore.1": b"KDUMP   1234",
            "dmesg.txt": b"x\n",
        },
    )
    status = json.loads((sup.dir / "status.json").read_text())
    assert (status["phase"], status["dumps"], status["capture_failures"]) == ("rebooting", 1, 0)
    assert first_dump_saved(Path(status["last_dump"]))
