"""``crashkernel=``: parse the kernel's syntax and the RAM-based recommendation.

Syntax (kernel ``Documentation/admin-guide/kdump/kdump.rst``): ``size[KMG][@offset]``,
``range1:size1[,range2:size2,...][@offset]``, ``size,high`` / ``size,low``, ``size,cma``, and
RHEL's ``auto``.  In ``range:size`` items a range ``A-B`` means RAM at least A and below B
(``A-`` has no upper end); the kernel reserves the size of the range the machine's RAM falls
in, and nothing when it falls in none.

The recommended tables start from kdump-utils' ``kdump_get_arch_recommend_crashkernel()``
(kdump-readiness.md §3.2), which reserves nothing below 2 GiB, and add what the distributions
reserve on the small machines most cloud VMs are: 192M from 512M on x86_64 (Ubuntu's
kdump-tools ``512M-:192M``; RHEL 9's ``1G-4G:192M``), 192M from 1G on s390x and 256M from 1G
on aarch64 (RHEL 9's kexec-tools tables).
"""

from __future__ import annotations

import re

from kdiag.errors import ConfigError

__all__ = (
    "RECOMMENDED",
    "cmdline_values",
    "explain",
    "parse_size",
    "recommended",
    "reserved_for",
    "shortfalls",
)

#: Recommended ``crashkernel=`` per architecture, by RAM (see the module docstring).
RECOMMENDED = {
    "x86_64": "512M-2G:192M,2G-64G:256M,64G-:512M",
    "s390x": "1G-2G:192M,2G-64G:256M,64G-:512M",
    "aarch64": "1G-4G:256M,4G-64G:320M,64G-:576M",
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


def _size_text(size: int) -> str:
    if size >= 1 << 30:
        whole = size % (1 << 30) == 0
        # rounded down: a RAM just below a boundary must not print as the boundary
        return f"{size >> 30}G" if whole else f"{(size * 10 >> 30) / 10}G"
    return f"{size >> 20}M"


def explain(value: str, ram_bytes: int) -> str:
    """How ``crashkernel=value`` sizes the reservation for this RAM, in one phrase."""
    spec = value.split("@", 1)[0]
    ram = _size_text(ram_bytes)
    if spec == "auto":
        return "crashkernel=auto: the RHEL kernel sizes it"
    if ":" not in spec:
        return f"crashkernel={value}: a fixed size, whatever the RAM"
    try:
        reserved_for(value, ram_bytes)
    except ConfigError:
        return f"crashkernel={value}: not valid syntax"
    for item in spec.split(","):
        span, _, item_size = item.partition(":")
        low_s, _, high_s = span.partition("-")
        low = parse_size(low_s)
        high = parse_size(high_s) if high_s else None
        if ram_bytes >= low and (high is None or ram_bytes < high):
            return f"RAM {ram} is in the range {span} of crashkernel={value}: {item_size}"
    first = spec.split(",", 1)[0].partition(":")[0].partition("-")[0]
    return (
        f"RAM {ram} is in no range of crashkernel={value} (a range A-B means at least A and "
        f"below B; the first starts at {first}): nothing is reserved"
    )


def recommended(arch: str, ram_bytes: int) -> tuple[str, int]:
    """The recommended ``crashkernel=`` value for ``arch`` and the bytes it gives this RAM."""
    table = RECOMMENDED.get(arch, RECOMMENDED["x86_64"])
    return table, reserved_for(table, ram_bytes) or 0


#: RAM sizes at which a crashkernel= value is compared with a recommendation when the RAM of
#: the machine is not known (an offline image): every boundary of the tables, and between.
RAM_POINTS = tuple(n << 20 for n in (512, 1024, 2048, 4096, 8192, 16384, 65536, 131072, 1 << 20))


def shortfalls(value: str, table: str) -> list[tuple[int, int, int]]:
    """(RAM, reserved, recommended) at each of ``RAM_POINTS`` where ``crashkernel=value``
    reserves less than ``table``; empty when it is enough at every size (or ``auto``).
    Raises ``ConfigError`` for bad syntax."""
    out = []
    for ram in RAM_POINTS:
        gives = reserved_for(value, ram)
        want = reserved_for(table, ram) or 0
        if gives is not None and gives < want:
            out.append((ram, gives, want))
    return out
