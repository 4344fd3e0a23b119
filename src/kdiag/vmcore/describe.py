"""Human text for a :class:`~kdiag.vmcore.triage.Triage`: crash's ``sys`` block and friends.

The labels, order and value formats follow crash's ``display_sys_stats()`` (``kernel.c``):
``DATE`` as ``Sun Nov 22 05:43:49 UTC 2026``, ``UPTIME`` as ``HH:MM:SS`` (``N days,
HH:MM:SS`` beyond a day), ``MEMORY`` as ``511.5 MB`` / ``2 GB``, ``PANIC`` quoted. ``PID``,
``COMMAND`` and ``CPU`` are the panicking task as crash's ``set``/``bt`` header names it.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdiag.vmcore.triage import Triage

__all__ = ("format_date", "format_memory", "format_uptime", "summary_block", "summary_fields")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(when: datetime.datetime) -> str:
    """``Sun Nov 22 05:43:49 UTC 2026`` (locale-independent, always UTC)."""
    utc = when.astimezone(datetime.UTC)
    return (
        f"{_DAYS[utc.weekday()]} {_MONTHS[utc.month - 1]} {utc.day:2d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} UTC {utc.year}"
    )


def format_uptime(seconds: float) -> str:
    """``00:00:07``; ``2 days, 03:04:05`` past a day (whole seconds, rounded down)."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if days:
        return f"{days} day{'s' if days != 1 else ''}, {clock}"
    return clock


def format_memory(nbytes: int) -> str:
    """crash's size format: one decimal, ``.0`` dropped (``383.5 MB``, ``2 GB``, ``512 KB``)."""
    if nbytes <= 0:
        return "0"
    units = (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10))
    for name, scale in units:
        if nbytes >= scale:
            text = f"{nbytes / scale:.1f}"
            if text.endswith(".0"):
                text = text[:-2]
            return f"{text} {name}"
    return f"{nbytes} bytes"


def summary_fields(t: Triage) -> list[tuple[str, str]]:
    """(label, value) pairs of the crash-like block, in crash's order; unknown values ``-``."""
    dumpfile = t.path + ("  [PARTIAL DUMP]" if t.partial else "")
    if not t.complete:
        dumpfile += "  [INCOMPLETE]"
    fields = [
        ("KERNEL RELEASE", t.release or "-"),
        ("DUMPFILE", dumpfile),
        ("CPUS", str(t.cpus)),
        ("DATE", format_date(t.crash_time) if t.crash_time else "-"),
        ("UPTIME", format_uptime(t.uptime_s) if t.uptime_s is not None else "-"),
        ("NODENAME", t.nodename or "-"),
        ("RELEASE", t.release or "-"),
        ("VERSION", t.version or "-"),
        ("MACHINE", t.machine or "-"),
        ("MEMORY", format_memory(t.memory_bytes) if t.memory_bytes is not None else "-"),
        ("PANIC", t.panic.crash_panic or "-"),
        ("PID", "-" if t.panic.pid is None else str(t.panic.pid)),
        ("COMMAND", "-" if t.panic.comm is None else f'"{t.panic.comm}"'),
        ("CPU", "-" if t.panic.cpu is None else str(t.panic.cpu)),
    ]
    return fields


def _signature(t: Triage) -> str:
    if t.panic.signature is None:
        return f"- ({t.no_signature_reason})"
    return f"{t.panic.signature_id}  {t.panic.signature}"


def summary_block(t: Triage, *, extra: bool = True) -> str:
    """The block ``kdiag analyze`` prints; ``extra`` adds format, class and signature lines."""
    fields = summary_fields(t)
    if extra:
        fmt = f"{t.format} ({t.compression}"
        if t.dump_level is not None:
            fmt += f", dump level {t.dump_level}"
        if t.header_version is not None:
            fmt += f", header v{t.header_version}"
        fmt += ")"
        fields += [
            ("FORMAT", fmt),
            ("COMPLETE", "yes" if t.complete else f"no: {t.incomplete_reason or 'unknown'}"),
            ("CLASS", t.panic.klass),
            ("SIGNATURE", _signature(t)),
        ]
        if t.log_error:
            fields.append(("LOG", f"unreadable: {t.log_error}"))
        if t.eraseinfo:
            fields.append(("ERASEINFO", t.eraseinfo.strip().replace("\n", "; ")))
    width = max(12, *(len(label) for label, _ in fields))
    return "".join(f"{label:>{width}}: {value}\n" for label, value in fields)
