"""Persisted sysctl settings: which file sets what, in the order the boot applies them.

Order (systemd-sysctl and procps ``sysctl --system``): files named ``*.conf`` in
``/etc/sysctl.d`` and ``/usr/lib/sysctl.d``, sorted by file name, a name in ``/etc``
shadowing the same name in ``/usr/lib``; then ``/etc/sysctl.conf``.  The last assignment
wins.  On systems without ``sysctl.d`` (RHEL 6) only ``/etc/sysctl.conf`` counts, which the
same order covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = (
    "KERNEL_DEFAULTS",
    "Assignment",
    "assignments",
    "effective",
    "kernel_default",
    "parse_line",
)

#: What the kernel starts with when nothing sets a value (upstream; ``kernel.sysrq`` is
#: ``CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE``, whose Kconfig default is 0x1).
KERNEL_DEFAULTS = {
    "kernel.unknown_nmi_panic": "0",
    "kernel.panic": "0",
    "kernel.panic_on_oops": "0",
    "kernel.panic_on_unrecovered_nmi": "0",
    "kernel.softlockup_panic": "0",
    "kernel.hardlockup_panic": "0",
    "kernel.hung_task_panic": "0",
    "kernel.nmi_watchdog": "1",
    "kernel.sysrq": "1",
}

#: Distribution kernels built with another default: Debian's (and Ubuntu's) kernel config
#: sets CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE=0x01b6 (438: every function but the dumps of
#: registers and tasks, and signalling processes).
_FAMILY_DEFAULTS = {("debian", "kernel.sysrq"): "438"}


@dataclass(frozen=True)
class Assignment:
    """``key = value`` on ``line`` (0-based) of ``path``."""

    path: str
    line: int
    key: str
    value: str


def kernel_default(key: str, family: str | None = None) -> str:
    """The value ``key`` has at boot when no file and no command line sets it."""
    return _FAMILY_DEFAULTS.get((family or "", key), KERNEL_DEFAULTS.get(key, "0"))


def parse_line(line: str) -> tuple[str, str] | None:
    """``(key, value)`` from a sysctl.conf line, or None for comments and blanks."""
    text = line.strip()
    if not text or text[0] in "#;":
        return None
    if text.startswith("-"):
        text = text[1:]
    key, sep, value = text.partition("=")
    if not sep:
        return None
    return key.strip().replace("/", "."), value.strip()


def _ordered(files: Mapping[str, str]) -> list[str]:
    by_name: dict[str, str] = {}
    for directory in ("/usr/lib/sysctl.d/", "/etc/sysctl.d/"):
        for path in files:
            if path.startswith(directory) and path.endswith(".conf"):
                by_name[path[len(directory) :]] = path
    ordered = [by_name[name] for name in sorted(by_name)]
    if "/etc/sysctl.conf" in files:
        ordered.append("/etc/sysctl.conf")
    return ordered


def assignments(files: Mapping[str, str]) -> list[Assignment]:
    """Every sysctl assignment in boot order."""
    out = []
    for path in _ordered(files):
        content = files[path]
        for number, line in enumerate(content.splitlines()):
            parsed = parse_line(line)
            if parsed is not None:
                out.append(Assignment(path, number, parsed[0], parsed[1]))
    return out


def effective(files: Mapping[str, str], key: str) -> Assignment | None:
    """The assignment of ``key`` that wins at boot, or None."""
    found = None
    for item in assignments(files):
        if item.key == key:
            found = item
    return found
