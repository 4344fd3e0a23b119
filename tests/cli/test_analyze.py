"""``kdiag analyze`` as a user runs it: a real process on every real fixture dump."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vmcore import conftest as vmcore_conftest
from tests.vmcore._fixtures import crash_sys, folder, meta

FIXTURE_NAMES = vmcore_conftest.FIXTURE_NAMES
fixture_dump = vmcore_conftest.fixture_dump  # the session fixture, shared with tests/vmcore

KDIAG = str(Path(sys.executable).with_name("kdiag"))


def kdiag(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([KDIAG, *map(str, args)], capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_log_is_makedumpfile_byte_for_byte(fixture_dump: Callable[[str], Path], name: str) -> None:
    run = kdiag("analyze", "--log", fixture_dump(name))
    assert run.returncode == 0, run.stderr
    truth = folder(name) / "makedumpfile-dmesg.txt"
    if not truth.exists():  # QEMU's kdump file: makedumpfile cannot read it; crash can
        truth = folder(name) / "crash-log.txt"
    assert run.stdout == truth.read_bytes()
    assert run.stderr == b""


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_json(fixture_dump: Callable[[str], Path], name: str) -> None:
    run = kdiag("analyze", "--json", fixture_dump(name))
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    info = meta(name)
    want = info["expected"]
    required = {
        "format", "compression", "dump_level", "complete", "release", "version", "machine",
        "nodename", "crash_time", "uptime_s", "cpus", "memory_bytes", "page_size", "panic",
    }  # fmt: skip
    assert required <= set(doc)
    assert {"message", "cpu", "pid", "comm", "class", "signature"} <= set(doc["panic"])
    assert doc["format"] == info["format"]
    assert doc["compression"] == info["compression"]
    assert doc["complete"] is True
    assert doc["release"] == want["release"]
    assert doc["nodename"] == want["nodename"]
    assert doc["cpus"] == want["cpus"]
    assert doc["page_size"] == 4096
    assert doc["panic"]["class"] == want["panic_class"]
    assert doc["panic"]["cpu"] == want["panic_cpu"]
    assert doc["panic"]["pid"] == want["panic_pid"]
    assert doc["panic"]["comm"] == want["panic_comm"]
    assert doc["panic"]["message"] == (want["panic_message"] or want["oops_line"])
    if doc["crash_time"] is not None:
        assert doc["crash_time"].endswith("Z")
    assert doc["bytes_read"] <= 4 << 20


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_summary(fixture_dump: Callable[[str], Path], name: str) -> None:
    run = kdiag("analyze", fixture_dump(name))
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode()
    summary, _, tail = text.partition("\nLAST 30 LOG LINES:\n")
    fields = {}
    for line in summary.splitlines():
        label, _, value = line.partition(": ")
        fields[label.strip()] = value
    theirs = crash_sys(name)
    for label in ("NODENAME", "RELEASE", "VERSION", "MEMORY", "PANIC"):
        assert fields[label] == theirs[label], label
    assert fields["CLASS"] == meta(name)["expected"]["panic_class"]
    assert fields["PID"] == str(meta(name)["expected"]["panic_pid"])
    assert fields["COMMAND"] == f'"{meta(name)["expected"]["panic_comm"]}"'
    assert len(fields["SIGNATURE"].split()[0]) == 16
    log = folder(name) / "makedumpfile-dmesg.txt"
    if not log.exists():
        log = folder(name) / "crash-log.txt"
    assert tail.splitlines() == log.read_text().splitlines()[-30:]


def test_lines_option(fixture_dump: Callable[[str], Path]) -> None:
    run = kdiag("analyze", "-n", "3", fixture_dump("sysrq-zlib"))
    assert run.returncode == 0
    assert run.stdout.decode().split("LAST 3 LOG LINES:\n")[1].count("\n") == 3
    assert kdiag("analyze", "--lines=0", fixture_dump("sysrq-zlib")).stdout.count(b"LOG LINES") == 0


def test_usage_errors(tmp_path: Path) -> None:
    assert kdiag("analyze").returncode == 2
    assert kdiag("analyze", "--bogus", "x").returncode == 2
    assert kdiag("analyze", "--lines", "many", "x").returncode == 2


def test_not_a_dump(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello, not a dump" * 100)
    run = kdiag("analyze", junk)
    assert run.returncode == 5
    assert b"(NotACrashDump)" in run.stderr


def _elf_with_build_id(path: Path, build_id: bytes, banner: bytes) -> None:
    """A minimal ELF64 with a .note.gnu.build-id and a .rodata holding a banner."""
    note = struct.pack("<III", 4, len(build_id), 3) + b"GNU\0" + build_id
    names = b"\0.note.gnu.build-id\0.rodata\0.shstrtab\0"
    body = note + banner + names
    note_at, rodata_at, names_at = 64, 64 + len(note), 64 + len(note) + len(banner)
    shoff = 64 + len(body)
    sh = [
        bytes(64),
        struct.pack("<IIQQQQIIQQ", 1, 7, 2, 0, note_at, len(note), 0, 0, 4, 0),
        struct.pack("<IIQQQQIIQQ", 20, 1, 2, 0, rodata_at, len(banner), 0, 0, 1, 0),
        struct.pack("<IIQQQQIIQQ", 28, 3, 0, 0, names_at, len(names), 0, 0, 1, 0),
    ]
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", ident, 2, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64, 4, 3)
    path.write_bytes(ehdr + body + b"".join(sh))


def test_debuginfo_mismatch_is_refused(fixture_dump: Callable[[str], Path], tmp_path: Path) -> None:
    wrong = tmp_path / "vmlinux-wrong"
    _elf_with_build_id(wrong, bytes(range(20)), b"\0Linux version 6.1.0-56-amd64 (x) #1\0")
    run = kdiag("analyze", "--debuginfo", wrong, fixture_dump("sysrq-zlib"))
    assert run.returncode == 2
    assert b"(DebuginfoMismatch)" in run.stderr
    assert b"build id 000102030405" in run.stderr
    not_elf = tmp_path / "not-elf"
    not_elf.write_bytes(b"text")
    run = kdiag("analyze", "--debuginfo", not_elf, fixture_dump("sysrq-zlib"))
    assert run.returncode == 2
    assert b"not a 64-bit little-endian ELF" in run.stderr


def test_debuginfo_release_check_without_build_id(tmp_path: Path) -> None:
    from kdiag.errors import DebuginfoMismatch
    from kdiag.vmcore.debuginfo import check_vmlinux, read_vmlinux_id

    image = tmp_path / "vmlinux"
    _elf_with_build_id(image, bytes(20), b"\0Linux version 5.10.0-9-amd64 (gcc) #1 SMP\0")
    assert read_vmlinux_id(image).release == "5.10.0-9-amd64"

    class T:  # the two fields check_vmlinux reads
        build_id = None
        release = "6.1.0-56-amd64"

    with pytest.raises(DebuginfoMismatch, match=r"5\.10\.0-9-amd64"):
        check_vmlinux(T(), image)  # type: ignore[arg-type]


class _Tty:
    """A stderr that claims to be a terminal and keeps what Rich writes."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.text.append(s)
        return len(s)

    def flush(self) -> None:
        pass


def test_progress_bar_only_after_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from kdiag.cli import analyze

    now = [100.0]
    monkeypatch.setattr(analyze.time, "monotonic", lambda: now[0])
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    progress = analyze._LazyProgress()
    progress("bitmap", 0, 100)
    now[0] += 0.5
    progress("bitmap", 50, 100)
    assert progress.bar is None  # a quick step shows nothing
    now[0] += 0.6
    progress("bitmap", 80, 100)
    assert progress.bar is not None  # past a second: a bar
    progress("bitmap", 100, 100)
    progress.close()


def test_no_progress_bar_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from kdiag.cli import analyze

    now = [0.0]
    monkeypatch.setattr(analyze.time, "monotonic", lambda: now[0])
    progress = analyze._LazyProgress()
    progress("index", 0, 10)
    now[0] += 5
    progress("index", 5, 10)
    assert progress.bar is None
    progress.close()


@pytest.fixture(scope="session")
def debug_vmlinux(vmcore_fixtures: Path) -> Path:
    """The fixtures' kernel with DWARF (Debian's -dbg package, cached; see tests/debugvmlinux)."""
    from tests.debugvmlinux import debug_vmlinux as fetch
    from tests.debugvmlinux import fixtures_kernel

    return fetch(*fixtures_kernel(vmcore_fixtures / "nmi-zlib" / "meta.json"))


@pytest.mark.parametrize("name", ["oops-null-zlib", "sysrq-zlib", "nmi-zlib"])
def test_debuginfo_tasks_and_load_average(
    fixture_dump: Callable[[str], Path], debug_vmlinux: Path, name: str
) -> None:
    vmlinux = debug_vmlinux
    run = kdiag("analyze", "--json", "--debuginfo", vmlinux, fixture_dump(name))
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["tasks"] == meta(name)["expected"]["tasks"]  # drgn for_each_task, pid > 0
    load = crash_sys(name)["LOAD AVERAGE"]
    assert ", ".join(doc["load_average"]) == load
