"""Windows CrashControl exports (UTF-16LE ``reg export`` files) through ``doctor``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.errors import ConfigError
from kdiag.readiness.windows import check_registry, parse_reg


def hex2(text: str) -> str:
    """``hex(2):`` data the way regedit wraps it: 25 bytes per line, backslash continuation."""
    data = (text + "\0").encode("utf-16-le")
    parts = [f"{b:02x}" for b in data]
    lines = [",".join(parts[i : i + 25]) for i in range(0, len(parts), 25)]
    return "hex(2):" + ",\\\r\n  ".join(lines)


def reg_file(tmp_path: Path, values: str, *, encoding: str = "utf-16") -> Path:
    text = (
        "Windows Registry Editor Version 5.00\r\n\r\n"
        "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl]\r\n"
        + values
        + "\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl"
        '\\StorageTelemetry]\r\n"DeviceDumpEnabled"=dword:00000001\r\n\r\n'
    )
    path = tmp_path / "crashcontrol.reg"
    path.write_bytes(text.encode(encoding))  # "utf-16" writes the BOM, little-endian here
    return path


DUMP_FILE = hex2("%SystemRoot%\\MEMORY.DMP")
MINIDUMP_DIR = hex2("%SystemRoot%\\Minidump")
GOOD = (
    '"AutoReboot"=dword:00000001\r\n'
    '"CrashDumpEnabled"=dword:00000002\r\n'
    f'"DumpFile"={DUMP_FILE}\r\n'
    '"LogEvent"=dword:00000001\r\n'
    f'"MinidumpDir"={MINIDUMP_DIR}\r\n'
    '"Overwrite"=dword:00000001\r\n'
    '"NMICrashDump"=dword:00000001\r\n'
    '"DedicatedDumpFile"="D:\\\\dedicateddumpfile.sys"\r\n'
    '"DumpFileSize"=dword:00002000\r\n'
    '"DumpFilters"=hex(7):64,00,75,00,6d,00,70,00,66,00,76,00,65,00,2e,00,73,00,79,00,\\\r\n'
    "  73,00,00,00,00,00\r\n"
)


def test_parse_utf16_export(tmp_path: Path) -> None:
    raw = reg_file(tmp_path, GOOD).read_bytes()
    assert raw[:2] == b"\xff\xfe"
    keys = parse_reg(raw)
    values = keys["HKEY_LOCAL_MACHINE\\SYSTEM\\CURRENTCONTROLSET\\CONTROL\\CRASHCONTROL"]
    assert values["DumpFile"].data == "%SystemRoot%\\MEMORY.DMP"
    assert values["DumpFile"].kind == "REG_EXPAND_SZ"
    assert values["DedicatedDumpFile"].data == "D:\\dedicateddumpfile.sys"
    assert values["DumpFileSize"].data == 0x2000
    assert values["DumpFilters"].data == ("dumpfve.sys",)


def test_good_export_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = reg_file(tmp_path, GOOD)
    assert run(["doctor", "--windows-registry", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["platform"]["os"] == "windows"
    assert {c["id"]: c["status"] for c in data["checks"]} == {
        "windows-crash-dump-enabled": "pass",
        "windows-nmi-crash-dump": "pass",
        "windows-auto-reboot": "pass",
        "windows-dump-file": "pass",
    }


def test_bad_export_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = reg_file(
        tmp_path,
        '"AutoReboot"=dword:00000000\r\n"CrashDumpEnabled"=dword:00000000\r\n'
        '"Overwrite"=dword:00000000\r\n',
    )
    report = check_registry(path)
    got = {c.id: c.status for c in report.checks}
    assert got == {
        "windows-crash-dump-enabled": "fail",
        "windows-nmi-crash-dump": "warn",
        "windows-auto-reboot": "fail",
        "windows-dump-file": "fail",
    }
    assert "CrashDumpEnabled" in report.get("windows-crash-dump-enabled").fix
    assert run(["doctor", "--windows-registry", str(path)]) == 1
    assert "windows-auto-reboot" in capsys.readouterr().out


def test_complete_dump_without_dedicated_file_warns(tmp_path: Path) -> None:
    path = reg_file(tmp_path, '"CrashDumpEnabled"=dword:00000001\r\n', encoding="utf-8")
    check = check_registry(path).get("windows-dump-file")
    assert check.status == "warn"
    assert "RAM + 257 MB" in check.evidence


def test_not_a_reg_file(tmp_path: Path) -> None:
    path = tmp_path / "x.reg"
    path.write_text("hello")
    with pytest.raises(ConfigError, match=f"^{path}: not a .reg export"):
        check_registry(path)
    other = tmp_path / "other.reg"
    other.write_bytes(
        "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_CURRENT_USER\\X]\r\n".encode("utf-16")
    )
    with pytest.raises(ConfigError, match="CrashControl"):
        check_registry(other)
