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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import ConfigError
from kdiag.readiness.registry import Registry, Verdict
from kdiag.readiness.report import Check, CheckList

__all__ = (
    "CRASH_CONTROL",
    "WINDOWS",
    "RegValue",
    "WindowsReport",
    "check_registry",
    "parse_reg",
)

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


def _dword(values: Mapping[str, RegValue], name: str) -> int | None:
    value = values.get(name)
    return value.data if value is not None and isinstance(value.data, int) else None


def _text(values: Mapping[str, RegValue], name: str) -> str | None:
    value = values.get(name)
    return value.data if value is not None and isinstance(value.data, str) else None


_Values = Mapping[str, RegValue]
#: The Windows checks, registered like the Linux ones (their table is in docs/readiness.md).
WINDOWS: Registry[_Values] = Registry()
_DEFAULT_DUMP_FILE = "%SystemRoot%\\MEMORY.DMP"
_KEY = "HKLM\\...\\CrashControl"


def _reg_add(name: str, value: int) -> str:
    return f'reg add "{CRASH_CONTROL}" /v {name} /t REG_DWORD /d {value} /f'


@WINDOWS.check(
    "windows-crash-dump-enabled",
    needs="config",
    passes="`CrashDumpEnabled` 1, 2 or 7 (absent = 7)",
    otherwise="fail for 0, warn for 3 (small dump)",
)
def _crash_dump_enabled(values: _Values) -> Verdict:
    enabled = _dword(values, "CrashDumpEnabled")
    kind = _DUMP_KINDS.get(enabled if enabled is not None else 7, f"unknown ({enabled})")
    fix = _reg_add("CrashDumpEnabled", 2)
    if enabled == 0:
        return Verdict(
            "fail",
            f"{_KEY} CrashDumpEnabled = 0: no dump is written",
            fix + " (kernel dump; 1 complete, 7 automatic)",
        )
    if enabled == 3:
        return Verdict(
            "warn",
            f"CrashDumpEnabled = 3 ({kind}): a small dump has no kernel memory to analyze",
            fix,
        )
    if enabled not in (None, 1, 2, 7):
        return Verdict("fail", f"CrashDumpEnabled = {enabled}", fix)
    note = " (absent: Windows default 7)" if enabled is None else ""
    return Verdict("pass", f"CrashDumpEnabled = {kind}{note}")


@WINDOWS.check(
    "windows-nmi-crash-dump",
    needs="config",
    passes="`NMICrashDump` = 1",
    otherwise="warn: older releases ignore an NMI without it",
)
def _nmi_crash_dump(values: _Values) -> Verdict:
    nmi = _dword(values, "NMICrashDump")
    if nmi == 1:
        return Verdict("pass", "NMICrashDump = 1")
    shown = "absent" if nmi is None else f"= {nmi}"
    return Verdict(
        "warn",
        f"NMICrashDump {shown}: Windows Server 2008 R2 / Windows 7 and older ignore an "
        "NMI without it; newer releases bug-check (0x80) by default",
        _reg_add("NMICrashDump", 1) + ", then restart",
    )


@WINDOWS.check("windows-auto-reboot", needs="config", passes="`AutoReboot` ≠ 0", otherwise="fail")
def _auto_reboot(values: _Values) -> Verdict:
    reboot = _dword(values, "AutoReboot")
    if reboot == 0:
        return Verdict(
            "fail",
            "AutoReboot = 0: the machine stays at the bug-check screen",
            _reg_add("AutoReboot", 1),
        )
    note = " (absent: default 1)" if reboot is None else ""
    return Verdict("pass", f"AutoReboot = 1{note}")


def _dump_destination(values: _Values) -> Verdict:
    """Where the dump goes and whether it has room (before the Overwrite rule)."""
    enabled = _dword(values, "CrashDumpEnabled")
    dedicated = _text(values, "DedicatedDumpFile")
    size_mb = _dword(values, "DumpFileSize")
    evidence = "DumpFile = " + (_text(values, "DumpFile") or _DEFAULT_DUMP_FILE)
    if dedicated:
        size = f" ({size_mb} MB)" if size_mb else " (size: automatic)"
        return Verdict("pass", f"{evidence}; DedicatedDumpFile = {dedicated}{size}")
    if enabled in (None, 7):
        return Verdict(
            "pass",
            evidence + "; automatic memory dump: Windows grows the boot volume's page file "
            "as needed",
        )
    if enabled in (1, 2):
        need = "RAM + 257 MB" if enabled == 1 else "about a third of RAM (kernel memory)"
        return Verdict(
            "warn",
            evidence + f"; the dump goes through the boot volume's page file: it needs {need}",
            "size the page file on the boot volume, or set DedicatedDumpFile",
        )
    return Verdict("n/a", evidence)


@WINDOWS.check(
    "windows-dump-file",
    needs="config",
    passes="`DedicatedDumpFile` set, or automatic dumps",
    otherwise="warn: complete/kernel dumps need a page file of RAM + 257 MB / about a third "
    "of RAM on the boot volume; fail for `Overwrite=0`",
)
def _dump_file(values: _Values) -> Verdict:
    verdict = _dump_destination(values)
    if _dword(values, "Overwrite") == 0:
        return Verdict(
            "fail",
            verdict.evidence + "; Overwrite = 0: an existing MEMORY.DMP blocks the next dump",
            _reg_add("Overwrite", 1),
        )
    return verdict


def check_registry(path: str | os.PathLike[str]) -> WindowsReport:
    """The Windows readiness checks for an exported CrashControl key."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        keys = parse_reg(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    values = keys.get(CRASH_CONTROL.upper())
    if values is None:
        raise ConfigError(f"{path} has no [{CRASH_CONTROL}] key (export that key)")
    return WindowsReport(str(path), WINDOWS.run(values))
