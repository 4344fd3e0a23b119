"""triage() and the crash-like summary on every real fixture dump, against crash ``sys``
output and meta.json (ground truth from crash, makedumpfile and drgn)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.vmcore.describe import format_date, format_memory, format_uptime, summary_fields
from kdiag.vmcore.triage import Triage, triage
from tests.vmcore._fixtures import expected_format, folder, meta, sys_truth
from tests.vmcore.conftest import FIXTURE_NAMES


def _triage(fixture_dump: Callable[[str], Path], name: str) -> Triage:
    with kdiag.vmcore.open(fixture_dump(name)) as dump:
        return triage(dump)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_triage_matches_meta(fixture_dump: Callable[[str], Path], name: str) -> None:
    t = _triage(fixture_dump, name)
    info = meta(name)
    want = info["expected"]
    assert (t.format, t.compression) == expected_format(name)
    assert t.complete is want["complete"]
    assert (t.release, t.version, t.machine, t.nodename) == (
        want["release"],
        want["version"],
        want["machine"],
        want["nodename"],
    )
    assert t.cpus == want["cpus"]
    assert t.panic.klass == want["panic_class"]
    assert (t.panic.cpu, t.panic.pid, t.panic.comm) == (
        want["panic_cpu"],
        want["panic_pid"],
        want["panic_comm"],
    )
    assert t.panic.panic_line == want["panic_message"]
    assert t.panic.crash_panic == want.get("crash_sys_panic", sys_truth(name)["PANIC"])
    assert t.page_size == 4096
    assert t.log_error is None
    # One record per "[seconds.micros] " line of the truth log (continuation lines have none).
    truth = folder(name) / "makedumpfile-dmesg.txt"
    if not truth.is_file():
        truth = folder(name) / "crash-log.txt"
    stamps = sum(line.startswith("[") for line in truth.read_text().splitlines())
    assert t.log_records == stamps > 250
    # The panicking CPU's NT_PRSTATUS names the same pid as the log's CPU: line (QEMU's notes
    # carry host thread ids, which the reader reports as -1).
    pid_note = dict(t.cpu_pids).get(want["panic_cpu"])
    assert pid_note == (-1 if t.format.startswith("qemu") else want["panic_pid"])


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_summary_agrees_with_crash_sys(fixture_dump: Callable[[str], Path], name: str) -> None:
    t = _triage(fixture_dump, name)
    ours = dict(summary_fields(t))
    theirs = sys_truth(name)  # crash's sys, or the same labels from the arm64 truth files
    for label in ("NODENAME", "RELEASE", "VERSION", "MEMORY", "PANIC"):
        assert ours[label] == theirs[label], label
    assert ours["KERNEL RELEASE"] == theirs["RELEASE"]
    # crash: "x86_64  (2596 Mhz)" (the MHz needs types); "2 [OFFLINE: 1]" for the QEMU dump.
    assert ours["MACHINE"] == theirs["MACHINE"].split()[0]
    assert ours["CPUS"] == theirs["CPUS"].split()[0]
    # "vmcore  [PARTIAL DUMP]": the file name differs (crash was given "vmcore").
    assert ours["DUMPFILE"].endswith("[PARTIAL DUMP]") == theirs["DUMPFILE"].endswith(
        "[PARTIAL DUMP]"
    )
    if ours["DATE"] != "-":
        assert ours["DATE"] == theirs["DATE"]
    else:  # QEMU host dump: no CRASHTIME (the guest never ran crash_kexec())
        assert t.format.startswith("qemu")
        assert theirs["DATE"] == "-" or t.format == "qemu-kdump"
    # UPTIME: ours is the last log timestamp (local_clock), crash's comes from jiffies, which
    # trail it by under a second; compare in seconds with that tolerance.
    h, m, s = (int(x) for x in theirs["UPTIME"].split(":"))
    assert t.uptime_s is not None
    assert 0 <= t.uptime_s - (h * 3600 + m * 60 + s) < 2


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_json_schema(fixture_dump: Callable[[str], Path], name: str) -> None:
    doc = _triage(fixture_dump, name).to_json()
    for key, kind in {
        "format": str,
        "compression": str,
        "complete": bool,
        "release": str,
        "version": str,
        "machine": str,
        "nodename": str,
        "uptime_s": float,
        "cpus": int,
        "memory_bytes": int,
        "page_size": int,
        "panic": dict,
    }.items():
        assert isinstance(doc[key], kind), key
    assert doc["dump_level"] is None or isinstance(doc["dump_level"], int)
    if doc["crash_time"] is not None:
        parsed = datetime.datetime.fromisoformat(doc["crash_time"].replace("Z", "+00:00"))
        assert parsed.utcoffset() == datetime.timedelta(0)
    assert set(doc["panic"]) >= {"message", "cpu", "pid", "comm", "class", "signature"}


def test_bytes_read_is_small(fixture_dump: Callable[[str], Path]) -> None:
    for name in FIXTURE_NAMES:
        assert _triage(fixture_dump, name).bytes_read <= 4 << 20, name


def test_same_crash_same_signature(fixture_dump: Callable[[str], Path]) -> None:
    """nmi-zlib/-lzo/-elf/-flat are one crash saved four ways; the QEMU dump is another boot
    that died the same way; so are the two arm64 dumps."""
    sigs = {name: _triage(fixture_dump, name).panic.signature for name in FIXTURE_NAMES}
    nmi = {sigs[n] for n in FIXTURE_NAMES if meta(n)["expected"]["panic_class"] == "nmi"}
    assert len(nmi) == 1
    assert len({sigs["nmi-zlib"], sigs["sysrq-zlib"], sigs["oops-null-zlib"]}) == 3
    # The arm64 dumps: two boots of one kernel, both SysRq-c from the same script.
    assert (
        sigs["arm64-sysrq-zlib"]
        == sigs["arm64-qemu-elf"]
        == (
            "sysrq: Kernel panic - not syncing: sysrq triggered crash"
            " | __handle_sysrq < write_sysrq_trigger < proc_reg_write"
        )
    )


def test_formats() -> None:
    when = datetime.datetime(2026, 11, 22, 5, 43, 49, tzinfo=datetime.UTC)
    assert format_date(when) == "Sun Nov 22 05:43:49 UTC 2026"
    assert format_date(when.replace(day=1)) == "Sun Nov  1 05:43:49 UTC 2026"
    assert format_uptime(3.99) == "00:00:03"
    assert format_uptime(86400 * 2 + 3723) == "2 days, 01:02:03"
    assert format_memory(511 * 2**20 + 2**19) == "511.5 MB"
    assert format_memory(2 << 30) == "2 GB"
    assert format_memory(402108416) == "383.5 MB"
    assert format_memory(0) == "0"
