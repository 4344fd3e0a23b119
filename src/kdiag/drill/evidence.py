"""What a drill saw: the readiness facts it relied on and every observation after the send.

:class:`Evidence` is the one input of the diagnosis (:func:`kdiag.drill.diagnosis.diagnose`),
so a diagnosis can be tested on evidence alone, without a machine.  ``Evidence.readiness``
comes from the instance's facts (:func:`from_facts`); the rest from the observer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdiag.readiness.facts import Facts
    from kdiag.readiness.report import Report

__all__ = ("CHAIN_CHECKS", "DumpFindings", "Evidence", "ReadinessFindings", "from_facts")

#: The doctor's checks that decide whether an NMI becomes a dump (the others, such as a
#: distribution's kdump service, matter for a real machine's set-up but not for the chain).
CHAIN_CHECKS = (
    "kdump-supported",
    "crashkernel-reserved",
    "capture-kernel-loaded",
    "unknown-nmi-panic",
    "panic-reboot",
    "dump-target-space",
    "kexec-text-symbol",
    "hyperv-capture-drivers",
)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ReadinessFindings:
    """What the facts said before the send (``None``: the facts do not say)."""

    release: str | None = None
    kdump_loaded: bool | None = None
    crashkernel_reserved: bool | None = None
    unknown_nmi_panic: str | None = None
    panic_timeout: str | None = None
    failed_checks: tuple[str, ...] = ()
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "failed_checks": list(self.failed_checks)}


def _loaded(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip() == "1"


def from_facts(facts: Facts, report: Report, source: str) -> ReadinessFindings:
    """The findings the diagnosis needs, from the facts and the doctor's report on them."""
    reserved: bool | None = None
    if facts.kexec_crash_size is not None:
        reserved = facts.kexec_crash_size.strip() not in ("", "0")
    elif facts.booted:
        reserved = bool(facts.iomem_crash_kernel)
    failed = tuple(c.id for c in report.checks if c.status == "fail")
    return ReadinessFindings(
        release=facts.kernel_release,
        kdump_loaded=_loaded(facts.kexec_crash_loaded),
        crashkernel_reserved=reserved,
        unknown_nmi_panic=facts.sysctl.get("kernel.unknown_nmi_panic"),
        panic_timeout=facts.sysctl.get("kernel.panic"),
        failed_checks=failed,
        source=source,
    )


@dataclass(frozen=True, slots=True)
class DumpFindings:
    """One dump and what triage said of it; ``error`` when it could not be read at all."""

    path: str
    origin: str  # "guest" (the machine's own kdump) | "host" (dump-guest-memory)
    format: str | None = None
    size: int | None = None
    complete: bool | None = None
    incomplete_reason: str | None = None
    panic_class: str | None = None
    panic_message: str | None = None
    signature_id: str | None = None
    crash_time: dt.datetime | None = None
    release: str | None = None
    error: str | None = None
    error_code: str | None = None
    catalog_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["crash_time"] = _iso(self.crash_time)
        return data


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything observed, for the diagnosis and the report.

    ``observer`` says what could be watched: ``lab`` (console, QMP events, boot counter,
    crash tree), ``dump-dir`` (only a directory where dumps appear), ``none``.
    """

    instance_id: str
    observer: str
    readiness: ReadinessFindings = field(default_factory=ReadinessFindings)
    sent: bool = False
    sent_at: dt.datetime | None = None
    send_error_code: str | None = None
    send_error: str | None = None
    sends: int = 0
    nmi_unknown: bool = False
    nmi_continued: bool = False
    panic_seen: bool = False
    panic_line: str | None = None
    crash_event: str | None = None
    capture_started: bool = False
    capture_hang: bool = False
    capture_failed: str | None = None
    boot_before: int | None = None
    boot_after: int | None = None
    ready_again: bool = False
    dump: DumpFindings | None = None
    host_dump: DumpFindings | None = None
    host_dump_error: str | None = None
    timed_out: str | None = None
    clock_skew_s: float = 120.0
    console: tuple[str, ...] = ()

    @property
    def rebooted(self) -> bool:
        return (
            self.boot_before is not None
            and self.boot_after is not None
            and self.boot_after > self.boot_before
        )

    def to_json(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("readiness", "dump", "host_dump", "console", "sent_at")
        }
        data["readiness"] = self.readiness.to_json()
        data["sent_at"] = _iso(self.sent_at)
        data["rebooted"] = self.rebooted
        data["dump"] = None if self.dump is None else self.dump.to_json()
        data["host_dump"] = None if self.host_dump is None else self.host_dump.to_json()
        data["console"] = list(self.console)
        return data
