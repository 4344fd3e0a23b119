"""Windows guests: does an NMI produce a memory dump and a restart?

Reads a ``reg export`` of ``HKLM\\SYSTEM\\CurrentControlSet\\Control\\CrashControl``: UTF-16LE
with a BOM (``regedit`` and ``reg export`` write that), ``Windows Registry Editor Version
5.00`` header (``REGEDIT4`` ANSI exports are read too), ``[key]`` lines and
``"Name"=dword:XXXXXXXX`` / ``"Name"="text"`` / ``"Name"=hex(2):..`` values, where a hex
value continues over lines ending in a backslash.  ``hex(2)`` (REG_EXPAND_SZ) and ``hex(7)``
(REG_MULTI_SZ) hold UTF-16LE text.

Values checked (Microsoft "Overview of memory dump file options for Windows"; "Generate a
kernel or complete crash dump" for NMICrashDump):

- ``CrashDumpEnabled``: 0 none, 1 complete, 2 kernel, 3 small, 7 automatic (default);
- ``NMICrashDump``: 1 makes an NMI bug-check on releases that do not do it by default;
- ``AutoReboot``: 1 (default) restarts after the bug check;
- ``DumpFile``, ``DedicatedDumpFile``, ``DumpFileSize``, ``Overwrite``: where the dump goes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import ConfigError
from kdiag.readiness.report import Check, CheckList

__all__ = ("CRASH_CONTROL", "RegValue", "WindowsReport", "check_registry", "parse_reg")

CRASH_CONTROL = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl"

_DUMP_KINDS = {0: "none", 1: "complete", 2: "kernel", 3: "small", 7: "automatic"}
_VALUE = re.compile(r'^(@|"(?:[^"\\]|\\.)*")=(.*)$')


@dataclass(frozen=True)
class RegValue:
    """One value: its registry type name and decoded data."""

    kind: str  # REG_DWORD, REG_QWORD, REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_BINARY
    data: int | str | tuple[str, ...] | bytes


def _decode_text(raw: bytes) -> str:
    for enc in ("utf-16", "utf-8-sig", "cp1252"):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        if text.startswith(("Windows Registry Editor", "REGEDIT4")):
            return text
    raise ConfigError("not a .reg export (no 'Windows Registry Editor Version 5.00' header)")


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def _value(raw: str, where: str) -> RegValue:
    if raw.startswith('"'):
        return RegValue("REG_SZ", _unescape(raw))
    kind, _, rest = raw.partition(":")
    try:
        if kind == "dword":
            return RegValue("REG_DWORD", int(rest, 16))
        data = bytes(int(b, 16) for b in rest.replace(" ", "").split(",") if b)
    except ValueError as exc:
        raise ConfigError(f"bad registry value at {where}: {raw[:40]!r}") from exc
    if kind == "hex(b)":
        return RegValue("REG_QWORD", int.from_bytes(data, "little"))
    if kind == "hex(2)":
        return RegValue("REG_EXPAND_SZ", data.decode("utf-16-le").rstrip("\0"))
    if kind == "hex(7)":
        parts = data.decode("utf-16-le").rstrip("\0").split("\0")
        return RegValue("REG_MULTI_SZ", tuple(p for p in parts if p))
    if kind == "hex(4)":
        return RegValue("REG_DWORD", int.from_bytes(data, "little"))
    if kind.startswith("hex"):
        return RegValue("REG_BINARY", data)
    raise ConfigError(f"unknown registry value type at {where}: {kind!r}")


def parse_reg(raw: bytes) -> dict[str, dict[str, RegValue]]:
    """Keys (upper-cased paths) -> value name -> value, from a .reg export."""
    text = _decode_text(raw)
    lines = text.splitlines()
    keys: dict[str, dict[str, RegValue]] = {}
    current: dict[str, RegValue] | None = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        number = i + 1
        i += 1
        while line.endswith("\\") and i < len(lines):  # hex continuation
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = keys.setdefault(line[1:-1].upper(), {})
            continue
        match = _VALUE.match(line)
        if match and current is not None:
            name = "" if match.group(1) == "@" else _unescape(match.group(1))
            if match.group(2) != "-":
                current[name] = _value(match.group(2), f"line {number}")
    return keys


@dataclass(frozen=True)
class WindowsReport(CheckList):
    """The Windows checks, shaped like the Linux report."""

    source: str
    checks: tuple[Check, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "platform": {"os": "windows", "source": self.source},
            "checks": [c.to_json() for c in self.checks],
        }


def _dword(values: dict[str, RegValue], name: str) -> int | None:
    value = values.get(name)
    return value.data if value is not None and isinstance(value.data, int) else None


def _text(values: dict[str, RegValue], name: str) -> str | None:
    value = values.get(name)
    return value.data if value is not None and isinstance(value.data, str) else None


def _checks(values: dict[str, RegValue]) -> tuple[Check, ...]:
    key = "HKLM\\...\\CrashControl"
    out = []
    enabled = _dword(values, "CrashDumpEnabled")
    kind = _DUMP_KINDS.get(enabled if enabled is not None else 7, f"unknown ({enabled})")
    set_enabled = f'reg add "{CRASH_CONTROL}" /v CrashDumpEnabled /t REG_DWORD /d 2 /f'
    if enabled == 0:
        out.append(
            Check(
                "windows-crash-dump-enabled",
                "fail",
                f"{key} CrashDumpEnabled = 0: no dump is written",
                set_enabled + " (kernel dump; 1 complete, 7 automatic)",
            )
        )
    elif enabled == 3:
        out.append(
            Check(
                "windows-crash-dump-enabled",
                "warn",
                f"CrashDumpEnabled = 3 ({kind}): a small dump has no kernel memory to analyze",
                set_enabled,
            )
        )
    elif enabled not in (None, 1, 2, 7):
        out.append(
            Check(
                "windows-crash-dump-enabled", "fail", f"CrashDumpEnabled = {enabled}", set_enabled
            )
        )
    else:
        note = " (absent: Windows default 7)" if enabled is None else ""
        out.append(
            Check("windows-crash-dump-enabled", "pass", f"CrashDumpEnabled = {kind}{note}", "")
        )

    nmi = _dword(values, "NMICrashDump")
    set_nmi = f'reg add "{CRASH_CONTROL}" /v NMICrashDump /t REG_DWORD /d 1 /f, then restart'
    if nmi == 1:
        out.append(Check("windows-nmi-crash-dump", "pass", "NMICrashDump = 1", ""))
    else:
        shown = "absent" if nmi is None else f"= {nmi}"
        out.append(
            Check(
                "windows-nmi-crash-dump",
                "warn",
                f"NMICrashDump {shown}: Windows Server 2008 R2 / Windows 7 and older ignore an "
                "NMI without it; newer releases bug-check (0x80) by default",
                set_nmi,
            )
        )

    reboot = _dword(values, "AutoReboot")
    if reboot == 0:
        out.append(
            Check(
                "windows-auto-reboot",
                "fail",
                "AutoReboot = 0: the machine stays at the bug-check screen",
                f'reg add "{CRASH_CONTROL}" /v AutoReboot /t REG_DWORD /d 1 /f',
            )
        )
    else:
        note = " (absent: default 1)" if reboot is None else ""
        out.append(Check("windows-auto-reboot", "pass", f"AutoReboot = 1{note}", ""))

    dump_file = _text(values, "DumpFile") or "%SystemRoot%\\MEMORY.DMP"
    dedicated = _text(values, "DedicatedDumpFile")
    size_mb = _dword(values, "DumpFileSize")
    overwrite = _dword(values, "Overwrite")
    evidence = f"DumpFile = {dump_file}"
    if dedicated:
        evidence += f"; DedicatedDumpFile = {dedicated}"
        evidence += f" ({size_mb} MB)" if size_mb else " (size: automatic)"
        status, fix = "pass", f"keep {dedicated}'s volume free for the file"
    elif enabled in (None, 7):
        evidence += "; automatic memory dump: Windows grows the boot volume's page file as needed"
        status, fix = "pass", ""
    elif enabled in (1, 2):
        need = "RAM + 257 MB" if enabled == 1 else "about a third of RAM (kernel memory)"
        evidence += f"; the dump goes through the boot volume's page file: it needs {need}"
        status, fix = "warn", "size the page file on the boot volume, or set DedicatedDumpFile"
    else:
        status, fix = "n/a", ""
    if overwrite == 0:
        evidence += "; Overwrite = 0: an existing MEMORY.DMP blocks the next dump"
        status = "fail"
        fix = f'reg add "{CRASH_CONTROL}" /v Overwrite /t REG_DWORD /d 1 /f'
    out.append(Check("windows-dump-file", status, evidence, fix if status != "pass" else ""))
    return tuple(out)


def check_registry(path: str | os.PathLike[str]) -> WindowsReport:
    """The Windows readiness checks for an exported CrashControl key."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    keys = parse_reg(raw)
    values = keys.get(CRASH_CONTROL.upper())
    if values is None:
        raise ConfigError(f"{path} has no [{CRASH_CONTROL}] key (export that key)")
    return WindowsReport(str(path), _checks(values))
