"""``kdiag analyze`` as a user runs it: a real process on every real fixture dump."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vmcore import conftest as vmcore_conftest
from tests.vmcore import makedumpfile_sets
from tests.vmcore._fixtures import crash_sys, expected_format, folder, meta, sys_truth

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
    assert (doc["format"], doc["compression"]) == expected_format(name)
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
    theirs = sys_truth(name)  # crash's sys, or the same labels from the arm64 truth files
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


# --- issue 9: bad input is one line and the right exit code, never a traceback -------------------


def _synthetic(tmp_path: Path, name: str = "vmcore", **guest: object) -> Path:
    """A small real-format kdump of a synthetic guest (tests/vmcore/vmcorewriter.py)."""
    from tests.vmcore.test_synthetic import records
    from tests.vmcore.vmcorewriter import Guest

    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(Guest(records(), **guest).kdump())  # type: ignore[arg-type]
    return path


def _one_error_line(run: subprocess.CompletedProcess[bytes], code: str) -> str:
    err = run.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[-1].startswith("error: "), err
    assert lines[-1].endswith(f"({code})"), err
    return lines[-1]


def test_debuginfo_on_a_qemu_dump_is_one_error_line(
    fixture_dump: Callable[[str], Path], debug_vmlinux: Path
) -> None:
    run = kdiag("analyze", "--debuginfo", debug_vmlinux, fixture_dump("hostdump-qemu-kdump"))
    assert run.returncode == 5
    assert "drgn cannot open QEMU's kdump" in _one_error_line(run, "UnsupportedDump")
    assert run.stderr.decode().count("\n") == 1


def test_debuginfo_on_a_compressed_dump_reads_the_decompressed_copy(
    vmcore_fixtures: Path, debug_vmlinux: Path
) -> None:
    run = kdiag(
        "analyze",
        "--json",
        "--debuginfo",
        debug_vmlinux,
        vmcore_fixtures / "nmi-elf" / "vmcore.zst",
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tasks"] == meta("nmi-elf")["expected"]["tasks"]


@pytest.mark.parametrize("args", [["--json"], ["-n", "5"], ["--log"]])
def test_a_full_disk_on_stdout_is_one_error_line(tmp_path: Path, args: list[str]) -> None:
    dump = _synthetic(tmp_path)
    with open("/dev/full", "wb") as full:
        run = subprocess.run(
            [KDIAG, "analyze", *args, str(dump)],
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    assert run.returncode == 1
    assert "cannot write the output: No space left on device" in _one_error_line(run, "KdiagError")
    assert run.stderr.decode().count("\n") == 1  # no second complaint from the exit-time flush


def test_traceback_keeps_the_exit_code(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    run = kdiag("--traceback", "analyze", empty)
    assert run.returncode == 5
    err = run.stderr.decode()
    assert "Traceback (most recent call last)" in err  # --traceback shows the stack ...
    assert (
        err.splitlines()[-1]
        == "error: the file is empty or too short to be a crash dump (NotACrashDump)"
    )
    plain = kdiag("analyze", empty)
    assert plain.returncode == 5
    assert "Traceback" not in plain.stderr.decode()


def test_an_unreadable_dump_is_a_permission_error_exit_2(tmp_path: Path) -> None:
    dump = _synthetic(tmp_path)
    dump.chmod(0o000)
    tmp_path.chmod(0o755)
    # root reads anything: drop to nobody for the run (as a user without read access is)
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    run = subprocess.run(
        [*(drop if os.geteuid() == 0 else []), KDIAG, "analyze", str(dump)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "permission denied" in _one_error_line(run, "ConfigError")
    missing = kdiag("analyze", tmp_path / "no-such-dump")
    assert missing.returncode == 2
    assert "No such file or directory" in _one_error_line(missing, "ConfigError")


@pytest.mark.parametrize(
    ("suffix", "packer"),
    [
        (".gz", lambda b: __import__("gzip").compress(b, 1)),
        (".xz", lambda b: __import__("lzma").compress(b, preset=0)),
        (".bz2", lambda b: __import__("bz2").compress(b, 1)),
        (".zst", lambda b: __import__("zstandard").ZstdCompressor().compress(b)),
    ],
)
def test_compressed_dumps_are_read_directly(
    tmp_path: Path, suffix: str, packer: Callable[[bytes], bytes]
) -> None:
    plain = _synthetic(tmp_path)
    packed = tmp_path / f"vmcore{suffix}"
    packed.write_bytes(packer(plain.read_bytes()))
    want = json.loads(kdiag("analyze", "--json", plain).stdout)
    run = kdiag("analyze", "--json", packed)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["panic"]["signature"] == want["panic"]["signature"] is not None
    assert got["release"] == "6.1.0-synth-amd64"
    # a corrupt or cut compressed file is a bad dump, in one line
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    bad = kdiag("analyze", cut)
    assert bad.returncode == 5
    _one_error_line(bad, "TruncatedDump")


def test_a_real_zstd_fixture_is_read_as_stored(
    fixture_dump: Callable[[str], Path], vmcore_fixtures: Path
) -> None:
    stored = kdiag("analyze", "--json", vmcore_fixtures / "nmi-elf" / "vmcore.zst")
    assert stored.returncode == 0, stored.stderr
    raw = kdiag("analyze", "--json", fixture_dump("nmi-elf"))
    a, b = json.loads(stored.stdout), json.loads(raw.stdout)
    same = {"path": "", "bytes_read": 0}
    assert a | same == b | same


def test_json_and_log_conflict(tmp_path: Path) -> None:
    run = kdiag("analyze", "--json", "--log", _synthetic(tmp_path))
    assert run.returncode == 2
    assert run.stdout == b""
    assert "--log: not allowed with argument --json" in run.stderr.decode().splitlines()[0]


def test_a_truncated_dump_says_so_and_shows_no_wrong_memory(
    fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    whole = fixture_dump("sysrq-zlib")
    cut = tmp_path / "vmcore"
    with whole.open("rb") as src:
        cut.write_bytes(src.read(whole.stat().st_size // 2))
    run = kdiag("analyze", "-n", "0", cut)
    assert run.returncode == 5
    assert "is incomplete (the file is cut short" in _one_error_line(run, "TruncatedDump")
    fields = dict(line.split(": ", 1) for line in run.stdout.decode().splitlines())
    assert fields["        MEMORY"] == "-"  # not the 255.5 MB the truncated bitmaps suggest
    assert fields["      COMPLETE"].startswith("no: the file is cut short")
    doc = json.loads(kdiag("analyze", "--json", cut).stdout)
    assert (doc["complete"], doc["memory_bytes"]) == (False, None)


def test_unreadable_dumps_get_no_shared_signature(
    fixture_dump: Callable[[str], Path], tmp_path: Path
) -> None:
    docs = []
    for name in ("sysrq-zlib", "oops-null-zlib"):
        whole = fixture_dump(name)
        cut = tmp_path / name
        with whole.open("rb") as src:
            cut.write_bytes(src.read(whole.stat().st_size // 3))
        docs.append(json.loads(kdiag("analyze", "--json", cut).stdout))
    for doc in docs:
        assert doc["panic"]["class"] == "unknown"
        assert doc["panic"]["signature"] is None
        assert doc["panic"]["signature_id"] is None  # nothing to group two unrelated dumps by
        assert doc["panic"]["no_signature_reason"] == "the kernel log is unreadable"


# --- several dumps, a /var/crash tree, stdin, schema_version -------------------------------------


def test_a_var_crash_tree_is_one_line_per_dump(
    tmp_path: Path, fixture_dump: Callable[[str], Path]
) -> None:
    crash = tmp_path / "var-crash"
    # kdump-tools (Debian) and kexec-tools (Fedora) layouts, with their dmesg files beside
    _synthetic(crash, "202611220613/dump.202611220613", nodename="debian-box")
    (crash / "202611220613" / "dmesg.202611220613").write_text("not a dump\n")
    (crash / "127.0.0.1-2026-11-22-06:13:06").mkdir()
    (crash / "127.0.0.1-2026-11-22-06:13:06" / "vmcore").symlink_to(fixture_dump("sysrq-zlib"))
    (crash / "127.0.0.1-2026-11-22-06:13:06" / "vmcore-dmesg.txt").write_text("not a dump\n")
    _synthetic(crash, "old/vmcore.1", nodename="old-box")
    (crash / "broken").mkdir()
    (crash / "broken" / "vmcore-incomplete").write_bytes(b"garbage" * 100)

    run = kdiag("analyze", "--output", "text", crash)
    assert run.returncode == 5  # one dump is unreadable: the worst code wins ...
    rows = [line.split("\t") for line in run.stdout.decode().splitlines()]
    assert [Path(r[0]).relative_to(crash).as_posix() for r in rows] == [
        "127.0.0.1-2026-11-22-06:13:06/vmcore",
        "202611220613/dump.202611220613",
        "broken/vmcore-incomplete",
        "old/vmcore.1",
    ]
    by_name = {Path(r[0]).parent.name: r for r in rows}
    assert by_name["127.0.0.1-2026-11-22-06:13:06"][1:4] == [
        "6.1.0-56-amd64",
        "sysrq",
        "ce57b4a967de8fd3",
    ]
    assert by_name["127.0.0.1-2026-11-22-06:13:06"][4] == "2026-11-22T06:13:06Z"
    assert by_name["202611220613"][1:3] == ["6.1.0-synth-amd64", "sysrq"]
    assert by_name["broken"][2:4] == ["error", "NotACrashDump"]
    # ... and it is named on stderr in one line
    err = run.stderr.decode().splitlines()
    assert len(err) == 1
    assert "vmcore-incomplete" in err[0]
    assert err[0].endswith("(NotACrashDump)")

    table = kdiag("analyze", "--output", "table", crash)
    header = table.stdout.decode().splitlines()[0].split()
    assert header == ["PATH", "RELEASE", "CLASS", "SIGNATURE", "TIME"]

    doc = json.loads(kdiag("analyze", "--json", crash).stdout)
    assert doc["schema_version"] == 1
    assert [d.get("error", {}).get("code") for d in doc["dumps"]] == [
        None,
        None,
        "NotACrashDump",
        None,
    ]
    assert doc["dumps"][0]["panic"]["signature_id"] == "ce57b4a967de8fd3"
    query = kdiag("analyze", "--query", "dumps[].nodename", "--output", "json", crash)
    assert json.loads(query.stdout) == ["fixture-sysrq", "debian-box", "old-box"]  # null dropped


def test_several_dump_arguments(tmp_path: Path) -> None:
    a = _synthetic(tmp_path, "a", nodename="box-a")
    b = _synthetic(tmp_path, "b", nodename="box-b")
    run = kdiag("analyze", "-o", "text", a, b)
    assert run.returncode == 0, run.stderr
    assert [line.split("\t")[0] for line in run.stdout.decode().splitlines()] == [str(a), str(b)]
    assert kdiag("analyze", "--log", a, b).returncode == 2
    assert kdiag("analyze", tmp_path / "empty-dir").returncode == 2


def test_no_dumps_under_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dmesg.202611220613").write_text("text\n")
    run = kdiag("analyze", tmp_path)
    assert run.returncode == 2
    assert "no crash dumps under" in _one_error_line(run, "ConfigError")


def test_dash_reads_the_dump_from_stdin_through_a_private_file(tmp_path: Path) -> None:
    dump = _synthetic(tmp_path / "in")
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    env = {**os.environ, "TMPDIR": str(spool_dir)}
    with dump.open("rb") as stdin:
        run = subprocess.run(
            [KDIAG, "analyze", "--json", "-"],
            stdin=stdin,
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["path"] == "-"
    assert doc["nodename"] == "synth-guest"
    assert doc["panic"]["class"] == "sysrq"
    assert list(spool_dir.iterdir()) == []  # the copy was unlinked at once
    # a compressed stream too
    packed = tmp_path / "in.gz"
    packed.write_bytes(__import__("gzip").compress(dump.read_bytes(), 1))
    with packed.open("rb") as stdin:
        run = subprocess.run(
            [KDIAG, "analyze", "--json", "-"],
            stdin=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert json.loads(run.stdout)["panic"]["signature"] == doc["panic"]["signature"]


def test_the_spool_is_private(tmp_path: Path) -> None:
    import io

    from kdiag.vmcore.spool import spool

    fd = spool(io.BytesIO(b"\0" * (3 << 20) + b"data"), what="t", name="t")
    try:
        st = os.fstat(fd)
        assert st.st_mode & 0o777 == 0o600
        assert st.st_nlink == 0  # already unlinked
        assert st.st_size == (3 << 20) + 4
        assert st.st_blocks * 512 < 1 << 20  # zero blocks stayed holes
    finally:
        os.close(fd)


def test_json_schema_version(tmp_path: Path) -> None:
    from kdiag.vmcore.triage import SCHEMA_VERSION

    doc = json.loads(kdiag("analyze", "--json", _synthetic(tmp_path)).stdout)
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    docs = (Path(__file__).parents[2] / "docs" / "analyze.md").read_text()
    assert f"schema_version` is {SCHEMA_VERSION}" in docs


# --- the fast path: no Typer patching, help lists every option --------------------------------


def test_help_lists_every_option() -> None:
    run = kdiag("analyze", "--help")
    assert run.returncode == 0
    text = run.stdout.decode()
    for option in ("--json", "--log", "--output", "--query", "--lines", "--debuginfo", "DUMP"):
        assert option in text
    assert "analyze" in kdiag("--help").stdout.decode()


def test_analyze_never_imports_pydantic(tmp_path: Path) -> None:
    dump = _synthetic(tmp_path)
    code = "import sys; from kdiag.cli.main import run; sys.exit(run(sys.argv[1:]))"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, "analyze", "--json", str(dump)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    imported = {line.split("|")[-1].strip() for line in run.stderr.decode().splitlines()}
    assert "kdiag.vmcore.triage" in imported
    assert not {m for m in imported if m.split(".")[0] in ("pydantic", "rich")}


def test_typer_is_not_patched() -> None:
    import typer.core

    import kdiag.cli.analyze  # noqa: F401 - importing it must change nothing in Typer
    from kdiag.cli.main import build_app

    before = typer.core._TyperParameter.get_runtime_param
    build_app()
    assert typer.core._TyperParameter.get_runtime_param is before
    assert not hasattr(typer.core._TyperParameter, "_kdiag_fast_bool")


def test_the_typer_entry_forwards_to_the_same_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from kdiag.cli.main import build_app

    a = _synthetic(tmp_path, "a", nodename="box-a")
    command = typer.main.get_command(build_app("analyze"))
    with pytest.raises(SystemExit) as done:  # Typer's standalone mode exits with run()'s code
        command.main(args=["analyze", "-o", "text", str(a), str(a)], prog_name="kdiag")
    assert done.value.code == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split("\t")[:3] for r in rows] == [[str(a), "6.1.0-synth-amd64", "sysrq"]] * 2


# --- makedumpfile --split sets (real ones, made from the nmi-elf fixture) --------------------


def _split_set(fixture_dump: Callable[[str], Path]) -> tuple[Path, list[Path]]:
    opts = ["-c", "-d", "31"]
    whole = makedumpfile_sets.made(fixture_dump, "whole-c-d31", opts, ["vmcore"])[0]
    split = ["--split", "--splitblock-size", "64", *opts]
    members = makedumpfile_sets.made(fixture_dump, "split3-c-d31", split, ["s1", "s2", "s3"])
    return whole, members


def test_a_split_set_is_analysed_as_the_whole_dump(fixture_dump: Callable[[str], Path]) -> None:
    whole, (s1, s2, s3) = _split_set(fixture_dump)
    log = kdiag("analyze", "--log", s3, s1, s2)
    assert log.returncode == 0, log.stderr
    assert log.stdout == (folder("nmi-elf") / "makedumpfile-dmesg.txt").read_bytes()
    assert log.stdout == kdiag("analyze", "--log", whole).stdout
    summary = kdiag("analyze", s2, s3, s1)
    assert summary.returncode == 0, summary.stderr
    want = kdiag("analyze", whole).stdout.decode().replace(str(whole), str(s1))
    assert summary.stdout.decode() == want
    got = json.loads(kdiag("analyze", "--json", s2, s1, s3).stdout)
    ref = json.loads(kdiag("analyze", "--json", whole).stdout)
    assert got["path"] == str(s1)
    for doc in (got, ref):
        del doc["path"], doc["bytes_read"]
    assert got == ref


def test_split_members_in_a_listing_are_one_row(fixture_dump: Callable[[str], Path]) -> None:
    whole, (s1, s2, s3) = _split_set(fixture_dump)
    run = kdiag("analyze", "-o", "text", s2, whole, s1, s3)
    assert run.returncode == 0, run.stderr
    rows = [line.split("\t") for line in run.stdout.decode().splitlines()]
    assert [r[0] for r in rows] == [str(s1), str(whole)]  # a set is named by its first file
    assert rows[0][1:4] == rows[1][1:4]
    assert rows[0][2] == "nmi"
    assert kdiag("analyze", "--log", s1, whole).returncode == 2  # not one split set


def test_an_incomplete_split_set_and_a_lone_member_are_errors(
    fixture_dump: Callable[[str], Path],
) -> None:
    _, (s1, s2, s3) = _split_set(fixture_dump)
    run = kdiag("analyze", "--log", s1, s3)
    assert run.returncode == 5
    assert "lacks the file holding pfns" in _one_error_line(run, "TruncatedDump")
    alone = kdiag("analyze", "-n", "0", s2)
    assert alone.returncode == 5
    text = alone.stdout.decode()
    assert "COMPLETE: no: one file of a makedumpfile --split set" in text
    assert "is in another file of this split dump" in text
    assert "PANIC: -" in text
