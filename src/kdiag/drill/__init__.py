"""The fire drill: prove, end to end and on a schedule, that an NMI gives a usable dump.

``kdiag drill INSTANCE_ID`` sends a diagnostic interrupt through kdiag's own API (as the
drill's IAM user, so authorization and the audit trail are part of what is proved), watches
the machine panic, capture and come back, finds the new vmcore and triages it.  Each step is
timed; the verdict is pass or fail with a diagnosis that names the cause.

Library API (what ``kdiag drill`` and a server or console use)::

    from kdiag.drill import run_drill, history, setup, format_report

    setup(store, instance)                     # the drill's user, policy and key (once)
    report = run_drill(store, "i-0123456789abcdef0", endpoint="http://127.0.0.1:8787",
                       timeout=600, progress=print)   # progress: one ProgressEvent per call
    report.passed, report.diagnosis.code, report.diagnosis.summary
    report.steps                               # StepResult(name, status, seconds, detail)
    report.to_json()                           # what ``kdiag drill --json`` prints
    for rec in history(store, "i-0123456789abcdef0", account="123456789012"):
        rec.verdict, rec.diagnosis, rec.steps, rec.started_at   # frozen DrillRecord

``run_drill`` blocks for the drill's duration (minutes): a server runs it in a worker thread
and forwards the ``progress`` events (frozen :class:`ProgressEvent` values: ``step``,
``kind`` = start/note/done, ``message``, ``result``).  It records the drill in the store
(``record=False`` does not) and adds the dumps it finds to the dump catalog.

Modules: :mod:`~kdiag.drill.steps` (the steps, timing, progress events),
:mod:`~kdiag.drill.evidence` (what was observed), :mod:`~kdiag.drill.diagnosis` (the cause,
a pure function of the evidence), :mod:`~kdiag.drill.observe` (watching a lab guest or a
dump directory), :mod:`~kdiag.drill.api` (the signed API call), :mod:`~kdiag.drill.identity`
(the drill's user), :mod:`~kdiag.drill.hostdump` (QEMU ``dump-guest-memory``),
:mod:`~kdiag.drill.timers` (systemd and cron), :mod:`~kdiag.drill.record` (history and
catalog), :mod:`~kdiag.drill.report` and :mod:`~kdiag.drill.runner`.
"""

from kdiag.drill.diagnosis import CODES, Diagnosis, diagnose
from kdiag.drill.evidence import DumpFindings, Evidence, ReadinessFindings
from kdiag.drill.identity import DRILL_POLICY, DRILL_USER, setup
from kdiag.drill.record import history
from kdiag.drill.report import DrillReport, format_report
from kdiag.drill.runner import DrillLimits, run_drill
from kdiag.drill.steps import STEPS, ProgressEvent, StepResult
from kdiag.drill.timers import cron_line, systemd_units
from kdiag.store.drills import DrillRecord, StepTiming

__all__ = (
    "CODES",
    "DRILL_POLICY",
    "DRILL_USER",
    "STEPS",
    "Diagnosis",
    "DrillLimits",
    "DrillRecord",
    "DrillReport",
    "DumpFindings",
    "Evidence",
    "ProgressEvent",
    "ReadinessFindings",
    "StepResult",
    "StepTiming",
    "cron_line",
    "diagnose",
    "format_report",
    "history",
    "run_drill",
    "setup",
    "systemd_units",
)
