"""The drill's report: steps with their times, the evidence, the diagnosis, the dumps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kdiag.drill.diagnosis import Diagnosis
from kdiag.drill.evidence import DumpFindings, Evidence
from kdiag.drill.steps import StepResult

__all__ = ("DrillReport", "format_report")


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DrillReport:
    """One drill, whole.  ``drill_id`` is the store's id once recorded."""

    instance_id: str
    account_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    steps: tuple[StepResult, ...]
    evidence: Evidence
    diagnosis: Diagnosis
    endpoint: str = ""
    notes: tuple[str, ...] = ()
    drill_id: int | None = None

    @property
    def passed(self) -> bool:
        return self.diagnosis.verdict == "pass"

    def to_json(self) -> dict[str, Any]:
        return {
            "drill_id": self.drill_id,
            "instance_id": self.instance_id,
            "account_id": self.account_id,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "verdict": self.diagnosis.verdict,
            "diagnosis": self.diagnosis.to_json(),
            "steps": [s.to_json() for s in self.steps],
            "evidence": self.evidence.to_json(),
            "endpoint": self.endpoint,
            "notes": list(self.notes),
        }


def _dump_lines(label: str, dump: DumpFindings) -> list[str]:
    out = [f"{label}: {dump.path}"]
    if dump.error:
        out.append(f"    unreadable: {dump.error}")
        return out
    crash = dump.crash_time.isoformat(timespec="seconds") if dump.crash_time else "unknown"
    out.append(
        f"    {dump.format}, {dump.size or 0:,} bytes, class {dump.panic_class}, "
        f"release {dump.release}, crash time {crash}"
        + ("" if dump.complete is not False else f", INCOMPLETE ({dump.incomplete_reason})")
    )
    if dump.panic_message:
        out.append(f"    panic: {dump.panic_message}")
    if dump.catalog_id:
        out.append(f"    catalog: {dump.catalog_id}")
    return out


def format_report(report: DrillReport) -> str:
    """The closing report, for people: steps, verdict, cause, fix, and which dump is which."""
    out = [f"drill of {report.instance_id} ({_iso(report.started_at)})", ""]
    for step in report.steps:
        secs = "-" if step.seconds is None else f"{step.seconds:6.1f} s"
        out.append(f"  {step.status:7} {step.name:9} {secs:>8}  {step.detail}".rstrip())
    d = report.diagnosis
    out += ["", f"verdict: {d.verdict.upper()} ({d.code})", f"cause:   {d.summary}"]
    if d.fix:
        out.append(f"fix:     {d.fix}")
    for line in d.evidence:
        out.append(f"  - {line}")
    ev = report.evidence
    if ev.dump is not None:
        out += ["", *_dump_lines("the machine's own dump (kdump)", ev.dump)]
    if ev.host_dump is not None:
        out += [
            "",
            *_dump_lines("host-side dump (QEMU dump-guest-memory, kdump-zlib)", ev.host_dump),
        ]
        out.append("    taken by the host because the guest's own capture failed")
    elif ev.host_dump_error:
        out += ["", f"host-side dump: not taken: {ev.host_dump_error}"]
    for note in report.notes:
        out.append(f"note: {note}")
    if report.drill_id is not None:
        out += [
            "",
            f"recorded as drill {report.drill_id} (kdiag drill history {report.instance_id})",
        ]
    return "\n".join(out) + "\n"
