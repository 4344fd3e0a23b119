"""The verdict and the cause, from the evidence alone (a pure function: no I/O).

Codes, in the order they are considered:

==========================  ======================================================
``send-denied``             the API refused the drill's request (policy, credentials)
``send-failed``             the API or the backend could not deliver the NMI
``dump-unreadable``         a new dump appeared but is not a readable crash dump
``dump-truncated``          the dump is readable but incomplete
``dump-not-ours``           another panic than our NMI, older than our send, or
                            another kernel release than the facts said
``no-reboot-after-dump``    the dump was saved but the machine never came back
``ok``                      every step passed
``nmi-ignored``             the kernel logged "NMI received for unknown reason" and
                            carried on (``kernel.unknown_nmi_panic`` off)
``no-effect``               nothing at all was observed after the NMI
``no-reboot-capture-hang``  the capture kernel started and never finished
``capture-failed``          the capture kernel ran but saved no dump
``no-reboot-panic-0``       the kernel panicked, no capture kernel ran, and the
                            machine stayed down (``kernel.panic=0``)
``no-dump-no-reservation``  panic and reboot, no dump: no ``crashkernel=`` memory
``no-dump-no-capture-kernel``  panic and reboot, no dump: memory reserved but no
                            capture kernel loaded
``no-dump``                 panic, no dump, and no better explanation
``timeout``                 the drill ran out of time before a conclusion
==========================  ======================================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kdiag.drill.evidence import DumpFindings, Evidence

__all__ = ("CODES", "Diagnosis", "check_dump", "diagnose")

CODES = (
    "ok",
    "send-denied",
    "send-failed",
    "dump-unreadable",
    "dump-truncated",
    "dump-not-ours",
    "no-reboot-after-dump",
    "nmi-ignored",
    "no-effect",
    "no-reboot-capture-hang",
    "capture-failed",
    "no-reboot-panic-0",
    "no-dump-no-reservation",
    "no-dump-no-capture-kernel",
    "no-dump",
    "timeout",
)

_DENIED = frozenset(
    {
        "UnauthorizedOperation",
        "AuthFailure",
        "AccessDenied",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "DrillNotSetUp",
    }
)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """``verdict`` is pass or fail; ``summary`` names the cause in one sentence; ``fix``
    says what to do; ``evidence`` lists the observations it rests on."""

    code: str
    verdict: str
    summary: str
    fix: str = ""
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "verdict": self.verdict,
            "summary": self.summary,
            "fix": self.fix,
            "evidence": list(self.evidence),
        }


def _fail(code: str, summary: str, fix: str, *evidence: str | None) -> Diagnosis:
    return Diagnosis(code, "fail", summary, fix, tuple(e for e in evidence if e))


def check_dump(dump: DumpFindings, ev: Evidence) -> Diagnosis | None:
    """The failure a dump shows by itself (unreadable, truncated, not ours), or None."""
    where = f"dump {dump.path}"
    if dump.error is not None:
        return _fail(
            "dump-unreadable",
            f"the new dump is not a readable crash dump ({dump.error_code or 'error'})",
            "check the dump target's free space and the core collector (makedumpfile) options",
            f"{where}: {dump.error}",
        )
    if dump.complete is False:
        return _fail(
            "dump-truncated",
            "the new dump is incomplete: "
            + (dump.incomplete_reason or "the capture stopped before the end"),
            "give the dump target room for a dump (doctor: dump-target-space) and let the "
            "capture finish before the machine is reset",
            where,
        )
    if dump.panic_class != "nmi":
        return _fail(
            "dump-not-ours",
            f"the new dump is of another panic (class {dump.panic_class}), not the NMI we sent",
            "look at that crash: something else took the machine down first",
            f"{where}: {dump.panic_message or 'no panic message'}",
        )
    skew = dt.timedelta(seconds=ev.clock_skew_s)
    if (
        dump.crash_time is not None
        and ev.sent_at is not None
        and dump.crash_time < ev.sent_at - skew
    ):
        return _fail(
            "dump-not-ours",
            "the new dump's crash time is before our send: it is an older crash",
            "clear old dumps out of the dump directory, or check the machine's clock",
            f"{where}: crashed {dump.crash_time.isoformat()}, sent {ev.sent_at.isoformat()}",
        )
    expected = ev.readiness.release
    if expected and dump.release and dump.release != expected:
        return _fail(
            "dump-not-ours",
            f"the new dump is of kernel {dump.release}, the facts said {expected}",
            "collect the facts again (the machine runs another kernel) and repeat the drill",
            where,
        )
    return None


def diagnose(ev: Evidence) -> Diagnosis:
    """The verdict and its cause (see the module docstring for the codes)."""
    if not ev.sent:
        return _send_failure(ev)
    if ev.dump is not None:
        return _with_dump(ev, ev.dump)
    return _without_dump(ev)


def _send_failure(ev: Evidence) -> Diagnosis:
    if ev.send_error_code == "NoSendSeen":
        return _fail(
            "send-failed",
            "no NMI was sent to the instance through the API while the drill watched",
            "send it (aws ec2 send-diagnostic-interrupt, kdiag send) while kdiag drill "
            "--watch runs, or run the drill without --watch",
            ev.send_error,
        )
    if ev.send_error_code in _DENIED:
        return _fail(
            "send-denied",
            f"the API refused the drill's SendDiagnosticInterrupt ({ev.send_error_code})",
            f"create the drill's user and policy: kdiag drill --setup {ev.instance_id}",
            ev.send_error,
        )
    return _fail(
        "send-failed",
        f"the NMI could not be sent ({ev.send_error_code or 'error'})",
        "check that the instance is running and its backend reachable (kdiag instances)",
        ev.send_error,
    )


def _with_dump(ev: Evidence, dump: DumpFindings) -> Diagnosis:
    bad = check_dump(dump, ev)
    if bad is not None:
        return bad
    if ev.observer == "lab" and not ev.rebooted and not ev.ready_again:
        return _fail(
            "no-reboot-after-dump",
            "the dump was saved but the machine did not come back",
            "the capture kernel must reboot when done (kdump's final action)",
            dump.path,
        )
    return Diagnosis(
        "ok",
        "pass",
        "the NMI panicked the kernel, kdump saved a dump of it and the machine came back",
        "",
        (f"dump {dump.path}", f"panic: {dump.panic_message}"),
    )


def _crash_event(ev: Evidence) -> str | None:
    """The hypervisor's crash event as evidence: the lab's is a QMP event name, the
    hypervisor watches' already say where they come from (``QMP event ...``)."""
    if ev.crash_event is None:
        return None
    return ev.crash_event if ev.observer != "lab" else f"QMP event {ev.crash_event}"


def _capture_line(ev: Evidence) -> str | None:
    if not ev.capture_started:
        return None
    if ev.observer == "lab":
        return "console: the capture kernel started"
    return "a capture kernel was loaded at the panic (pvpanic: crash loaded)"


def _without_dump(ev: Evidence) -> Diagnosis:
    r = ev.readiness
    panic_0 = (r.panic_timeout or "").strip() == "0"
    if ev.nmi_unknown and not ev.panic_seen:
        return _fail(
            "nmi-ignored",
            "the kernel logged the NMI as unknown and carried on: kernel.unknown_nmi_panic "
            f"is {r.unknown_nmi_panic if r.unknown_nmi_panic is not None else 'off'}",
            "sysctl -w kernel.unknown_nmi_panic=1 (and persist it: kdiag configure)",
            "console: NMI received for unknown reason",
            "console: Dazed and confused, but trying to continue" if ev.nmi_continued else None,
        )
    if ev.capture_hang or (ev.capture_started and not ev.rebooted and not ev.capture_failed):
        return _fail(
            "no-reboot-capture-hang",
            "the capture kernel started but never finished: no dump, no reboot",
            "the capture kernel lacks a driver for the dump target or hangs on a device "
            "(Hyper-V: add the storage drivers to the kdump initramfs); doctor: "
            "hyperv-capture-drivers",
            _crash_event(ev),
            _capture_line(ev),
            "console: LAB-CAPTURE-HANG" if ev.capture_hang else None,
        )
    if ev.capture_failed:
        return _fail(
            "capture-failed",
            "the capture kernel ran but saved no dump",
            "read the capture kernel's log: the core collector failed or the dump target "
            "was full or unreachable (doctor: dump-target-space)",
            ev.capture_failed,
        )
    if not ev.panic_seen and not ev.capture_started:
        if ev.timed_out and ev.observer != "lab":
            return _fail(
                "timeout",
                f"no dump appeared before the drill's time ran out (step {ev.timed_out})",
                "give the drill more time (--timeout) or check the dump directory",
            )
        return _fail(
            "no-effect",
            "nothing was observed after the NMI: no log line, no panic, no reboot",
            "check that the backend really delivers NMIs to this machine",
            f"sent {ev.sends} time(s)",
        )
    if not ev.capture_started and not ev.rebooted:
        reason = (
            "kernel.panic=0: the kernel waits forever after a panic"
            if panic_0
            else "the machine did not reboot after the panic"
        )
        code = "no-reboot-panic-0" if panic_0 or r.kdump_loaded is False else "no-dump"
        summary = (
            f"the kernel panicked, no capture kernel ran, and the machine stayed down ({reason})"
        )
        return _fail(
            code,
            summary,
            "load a capture kernel (kdump) and set kernel.panic to a timeout (kdiag configure)",
            ev.panic_line and f"console: {ev.panic_line}",
            _crash_event(ev),
            f"facts: kernel.panic={r.panic_timeout}" if r.panic_timeout is not None else None,
        )
    if not ev.capture_started:
        if r.crashkernel_reserved is False:
            return _fail(
                "no-dump-no-reservation",
                "the kernel panicked and rebooted without a dump: no crashkernel= memory "
                "is reserved, so no capture kernel can be loaded",
                "add crashkernel= to the kernel command line and reboot (kdiag configure)",
                ev.panic_line and f"console: {ev.panic_line}",
                "facts: /sys/kernel/kexec_crash_size is 0",
            )
        if r.kdump_loaded is False or r.kdump_loaded is None:
            return _fail(
                "no-dump-no-capture-kernel",
                "the kernel panicked and rebooted without a dump: memory is reserved but "
                "no capture kernel is loaded",
                "enable and start the kdump service (it runs kexec -p)",
                ev.panic_line and f"console: {ev.panic_line}",
                "facts: /sys/kernel/kexec_crash_loaded is 0",
            )
    return _fail(
        "no-dump",
        "the kernel panicked but no new dump was found",
        "check where the capture kernel writes (--dump-dir) and its log",
        ev.panic_line and f"console: {ev.panic_line}",
        f"timed out in {ev.timed_out}" if ev.timed_out else None,
    )
