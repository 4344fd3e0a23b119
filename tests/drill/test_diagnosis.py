"""The diagnosis is a pure function of the evidence: each cause from the evidence that
names it, with an oracle of what each lab failure profile shows (docs/lab.md's table)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from kdiag.drill import CODES, DumpFindings, Evidence, ReadinessFindings, diagnose

SENT = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)
READY = ReadinessFindings(
    release="6.1.0-56-amd64",
    kdump_loaded=True,
    crashkernel_reserved=True,
    unknown_nmi_panic="1",
    panic_timeout="10",
)


def _ev(**changes: object) -> Evidence:
    base = Evidence(
        instance_id="i-0123456789abcdef0",
        observer="lab",
        readiness=READY,
        sent=True,
        sent_at=SENT,
        sends=1,
        boot_before=1,
        boot_after=1,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _dump(**changes: object) -> DumpFindings:
    base = DumpFindings(
        path="/crash/x/vmcore",
        origin="guest",
        format="kdump",
        size=16_000_000,
        complete=True,
        panic_class="nmi",
        panic_message="Kernel panic - not syncing: NMI: Not continuing",
        crash_time=SENT + dt.timedelta(seconds=2),
        release="6.1.0-56-amd64",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


PANICKED = {"panic_seen": True, "crash_event": "GUEST_CRASHLOADED"}


def test_default_profile_passes() -> None:
    ev = _ev(**PANICKED, capture_started=True, boot_after=2, ready_again=True, dump=_dump())
    d = diagnose(ev)
    assert (d.code, d.verdict) == ("ok", "pass")


@pytest.mark.parametrize(
    ("evidence", "code"),
    [
        # unprepared: the NMI logged as unknown, the kernel carried on
        (
            {
                "readiness": dataclasses.replace(READY, unknown_nmi_panic="0"),
                "nmi_unknown": True,
                "nmi_continued": True,
            },
            "nmi-ignored",
        ),
        # no-crashkernel: panic, reboot after kernel.panic, nothing reserved
        (
            {
                **PANICKED,
                "crash_event": "GUEST_PANICKED",
                "readiness": dataclasses.replace(
                    READY, kdump_loaded=False, crashkernel_reserved=False
                ),
                "boot_after": 2,
                "ready_again": True,
            },
            "no-dump-no-reservation",
        ),
        # reserved memory but no capture kernel loaded
        (
            {
                **PANICKED,
                "readiness": dataclasses.replace(READY, kdump_loaded=False),
                "boot_after": 2,
                "ready_again": True,
            },
            "no-dump-no-capture-kernel",
        ),
        # panic-hang: kernel.panic=0, no capture kernel, the machine stays down
        (
            {
                **PANICKED,
                "readiness": dataclasses.replace(READY, kdump_loaded=False, panic_timeout="0"),
            },
            "no-reboot-panic-0",
        ),
        # capture-hang: the capture kernel started and never finished
        ({**PANICKED, "capture_started": True, "capture_hang": True}, "no-reboot-capture-hang"),
        # the same seen only as a capture kernel that never rebooted (no lab marker)
        ({**PANICKED, "capture_started": True, "timed_out": "reboot"}, "no-reboot-capture-hang"),
        # the capture kernel ran and rebooted but saved nothing (text-trap, a full target)
        (
            {
                **PANICKED,
                "capture_started": True,
                "capture_failed": "makedumpfile failed",
                "boot_after": 2,
            },
            "capture-failed",
        ),
        ({"sent": False, "send_error_code": "UnauthorizedOperation"}, "send-denied"),
        ({"sent": False, "send_error_code": "DrillNotSetUp"}, "send-denied"),
        ({"sent": False, "send_error_code": "IncorrectInstanceState"}, "send-failed"),
        ({"sent": False, "send_error_code": "NoSendSeen"}, "send-failed"),
        ({"sends": 2}, "no-effect"),
    ],
)
def test_each_failure_names_its_cause(evidence: dict[str, object], code: str) -> None:
    d = diagnose(_ev(**evidence))
    assert d.code == code
    assert d.verdict == "fail"
    assert d.summary
    assert d.fix


@pytest.mark.parametrize(
    ("dump", "word"),
    [
        ({"error": "not a crash dump", "error_code": "NotACrashDump", "format": None}, "readable"),
        ({"complete": False, "incomplete_reason": "ends at page 9 of 100"}, "incomplete"),
        ({"panic_class": "oops", "panic_message": "BUG: kernel NULL pointer"}, "another panic"),
        ({"crash_time": SENT - dt.timedelta(hours=3)}, "before our send"),
        ({"release": "5.10.0-9-amd64"}, "5.10.0-9-amd64"),
    ],
)
def test_a_bad_dump_fails_even_after_a_clean_run(dump: dict[str, object], word: str) -> None:
    ev = _ev(**PANICKED, capture_started=True, boot_after=2, ready_again=True, dump=_dump(**dump))
    d = diagnose(ev)
    assert d.verdict == "fail"
    assert d.code in {"dump-unreadable", "dump-truncated", "dump-not-ours"}
    assert word in d.summary


def test_crash_time_within_the_clock_skew_is_ours() -> None:
    ev = _ev(
        **PANICKED,
        boot_after=2,
        ready_again=True,
        dump=_dump(crash_time=SENT - dt.timedelta(seconds=30)),
    )
    assert diagnose(ev).code == "ok"
    strict = dataclasses.replace(ev, clock_skew_s=5.0)
    assert diagnose(strict).code == "dump-not-ours"


def test_a_host_dump_does_not_make_a_pass() -> None:
    ev = _ev(**PANICKED, capture_started=True, capture_hang=True, host_dump=_dump(origin="host"))
    assert diagnose(ev).code == "no-reboot-capture-hang"


def test_every_code_is_documented() -> None:
    import kdiag.drill.diagnosis as mod

    assert mod.__doc__ is not None
    for code in CODES:
        assert f"``{code}``" in mod.__doc__


def test_evidence_round_trips_to_json() -> None:
    ev = _ev(**PANICKED, dump=_dump(), console=("a", "b"))
    data = ev.to_json()
    assert data["dump"]["crash_time"] == "2026-12-06T12:00:02Z"
    assert data["sent_at"] == "2026-12-06T12:00:00Z"
    assert data["console"] == ["a", "b"]
    assert data["rebooted"] is False
