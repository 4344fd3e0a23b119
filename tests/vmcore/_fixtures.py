"""Truth files of the real fixture dumps: crash ``sys`` output, ``meta.json``, the README table.

crash ran on the x86_64 dumps only (Debian's crash is built for the host's architecture), so
for the arm64 dumps :func:`sys_truth` assembles the same ``sys`` labels from what their folders
hold instead: ``meta.json`` (tool output recorded when the dump was made), the last
``makedumpfile --dump-dmesg`` timestamp, and the fixtures README's table.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

from tests.conftest import fixtures_root

__all__ = ("crash_sys", "expected_format", "folder", "has_crash_sys", "meta", "sys_truth")


def folder(name: str) -> Path:
    return fixtures_root() / name


def meta(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder(name) / "meta.json").read_text())
    return data


def has_crash_sys(name: str) -> bool:
    return (folder(name) / "crash-sys.txt").is_file()


def crash_sys(name: str) -> dict[str, str]:
    """crash ``sys`` output as {LABEL: value}."""
    out: dict[str, str] = {}
    for line in (folder(name) / "crash-sys.txt").read_text().splitlines():
        label, sep, value = line.partition(": ")
        if sep:
            out[label.strip()] = value.strip()
    return out


def expected_format(name: str) -> tuple[str, str]:
    """(format, compression) as the fixtures README's table gives them (``kdump / zlib``).

    The x86_64 ``meta.json`` files hold the same short names; the arm64 ones describe the
    format in a sentence, so the table is the one source for every dump.
    """
    readme = fixtures_root() / "README.md"
    for line in readme.read_text().splitlines():
        if line.startswith(f"| `{name}` |"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            fmt, _, compression = cells[3].partition(" / ")
            return fmt, compression
    raise LookupError(f"{name} is not in the table of {readme}")


def _crash_date(seconds: int) -> str:
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return f"{when:%a %b} {when.day:2d} {when:%H:%M:%S} UTC {when.year}"


def _last_dmesg_seconds(name: str) -> int:
    last = (folder(name) / "makedumpfile-dmesg.txt").read_text().rstrip("\n").rsplit("\n", 1)[-1]
    match = re.match(r"\[\s*(\d+)\.\d+\]", last)
    assert match is not None, last
    return int(match[1])


def _mib(text: str) -> int:
    match = re.fullmatch(r"(\d+)([MG])", text)
    assert match is not None, text
    return int(match[1]) << (10 if match[2] == "G" else 0)


def sys_truth(name: str) -> dict[str, str]:
    """crash ``sys`` labels: ``crash-sys.txt`` when crash ran on the dump, else (arm64) built
    from the folder's other truth files.

    - NODENAME, RELEASE, VERSION, MACHINE, CPUS: ``meta.json`` ``expected`` (drgn and
      makedumpfile read the same ``init_uts_ns``).
    - PANIC: crash prints the panic line in double quotes.
    - MEMORY: the guest's RAM less the ``crashkernel=`` reservation: the kernel leaves that
      out of ``/proc/vmcore``, and without ``node_data`` in VMCOREINFO (arm64 exports none)
      the RAM a dump covers is what the reader can know. A QEMU dump covers all of it.
    - DATE: ``CRASHTIME`` of the VMCOREINFO recorded in ``meta.json`` (none for QEMU's dump:
      the guest never ran ``crash_kexec()``), in crash's date form.
    - UPTIME: the last ``makedumpfile --dump-dmesg`` timestamp, in whole seconds.
    - DUMPFILE: ``[PARTIAL DUMP]`` when makedumpfile filtered pages (``-d`` > 0).
    """
    if has_crash_sys(name):
        return crash_sys(name)
    info = meta(name)
    want = info["expected"]
    mib = info["guest_ram_mb"] - (_mib(info["crashkernel"]) if info.get("crashkernel") else 0)
    memory = f"{mib >> 10} GB" if mib % 1024 == 0 else f"{mib} MB"
    crashtime = info.get("vmcoreinfo", {}).get("CRASHTIME")
    up = _last_dmesg_seconds(name)
    level = re.search(r"makedumpfile .*-d (\d+)", info.get("capture_command", ""))
    return {
        "DUMPFILE": "vmcore" + ("  [PARTIAL DUMP]" if level and int(level[1]) else ""),
        "CPUS": str(want["cpus"]),
        "DATE": _crash_date(int(crashtime)) if crashtime else "-",
        "UPTIME": f"{up // 3600:02d}:{up // 60 % 60:02d}:{up % 60:02d}",
        "NODENAME": want["nodename"],
        "RELEASE": want["release"],
        "VERSION": want["version"],
        "MACHINE": want["machine"],
        "MEMORY": memory,
        "PANIC": f'"{want["panic_message"]}"',
    }
