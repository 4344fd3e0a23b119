"""``crashkernel=``: parse the kernel's syntax and the RAM-based recommendation.

Syntax (kernel ``Documentation/admin-guide/kdump/kdump.rst``): ``size[KMG][@offset]``,
``range1:size1[,range2:size2,...][@offset]``, ``size,high`` / ``size,low``, ``size,cma``, and
RHEL's ``auto``.  Recommended tables: kdump-utils ``kdump_get_arch_recommend_crashkernel()``
(kdump-readiness.md §3.2).
"""

from __future__ import annotations

import re

from kdiag.errors import ConfigError

__all__ = (
    "RECOMMENDED",
    "cmdline_values",
    "parse_size",
    "recommended",
    "reserved_for",
)

#: Default ``crashkernel=`` per architecture (kdump-utils).
RECOMMENDED = {
    "x86_64": "2G-64G:256M,64G-:512M",
    "s390x": "2G-64G:256M,64G-:512M",
    "aarch64": "2G-4G:256M,4G-64G:320M,64G-:576M",
    "ppc64le": "2G-4G:384M,4G-16G:512M,16G-64G:1G,64G-128G:2G,128G-:4G",
}

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``256M``-style text; ``ConfigError`` when it is not one."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ConfigError(f"not a size: {text!r} (expected e.g. 256M)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def cmdline_values(cmdline: str) -> list[str]:
    """Every ``crashkernel=`` value on a kernel command line, in order."""
    return [w.split("=", 1)[1] for w in cmdline.split() if w.startswith("crashkernel=")]


def reserved_for(value: str, ram_bytes: int) -> int | None:
    """Bytes ``crashkernel=value`` reserves on a machine with ``ram_bytes``.

    None for ``auto`` (decided by the RHEL kernel).  Raises ``ConfigError`` for bad syntax.
    """
    spec = value.split("@", 1)[0]
    if spec == "auto":
        return None
    if ":" not in spec:
        return parse_size(spec.split(",", 1)[0])
    for item in spec.split(","):
        span, sep, size = item.partition(":")
        if not sep:
            raise ConfigError(f"bad crashkernel range {item!r}")
        low_s, dash, high_s = span.partition("-")
        if not dash:
            raise ConfigError(f"bad crashkernel range {item!r}")
        low = parse_size(low_s)
        high = parse_size(high_s) if high_s else None
        if ram_bytes >= low and (high is None or ram_bytes < high):
            return parse_size(size)
    return 0


def recommended(arch: str, ram_bytes: int) -> tuple[str, int]:
    """The recommended ``crashkernel=`` value for ``arch`` and the bytes it gives this RAM."""
    table = RECOMMENDED.get(arch, RECOMMENDED["x86_64"])
    return table, reserved_for(table, ram_bytes) or 0
