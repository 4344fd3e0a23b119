"""``kdiag fleet doctor``: the readiness collector on every host of an inventory, judged here.

The collector (:mod:`kdiag.readiness` ``collect.sh``, POSIX sh) goes to each host with
Ansible's ``script`` module, so a target needs only a POSIX shell (busybox works, no Python).
Its JSON comes back in the task's stdout and is judged locally by the same checks as
``kdiag doctor --facts``.  A host that cannot be reached, or whose collector fails or prints
something that is not a facts document, is a finding of its own, never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kdiag.errors import ConfigError
from kdiag.fleet.ansible import PlaybookRun, TaskResult, list_hosts, run_playbook
from kdiag.readiness import facts as facts_mod
from kdiag.readiness.checks import PURPOSES, run_checks
from kdiag.store._base import StoreBase
from kdiag.store.fleet import FleetHost, FleetRun, record_fleet_run

__all__ = (
    "COLLECTOR_FAILED",
    "COLLECT_PLAYBOOK",
    "TIMED_OUT",
    "UNREACHABLE",
    "FleetReport",
    "HostVerdict",
    "collect_playbook",
    "evaluate",
    "fleet_doctor",
    "record_report",
)

UNREACHABLE = "unreachable"
COLLECTOR_FAILED = "collector-failed"
TIMED_OUT = "timed-out"
#: seconds one host's collect task may take by default.  Ansible counts them on the
#: controller's clock, from the connection on (transfer, run, clean-up), so they include the
#: time the host waits for the controller's CPU among the other forks: on a loaded
#: controller at 40 forks that alone was over 120 s a host (bench/fleet.py)
COLLECT_TIMEOUT = 600
#: the largest --timeout accepted
MAX_COLLECT_TIMEOUT = 86_400
#: how ansible-core words a task that reached its ``timeout`` (2.19; before 2.19)
_TIMEOUT_MESSAGES = ("Timed out after", "failed to execute in the expected time frame")

#: paths whose existence ``kdiag configure``'s planner looks at besides the collected files
PROBE_PATHS = (
    "/etc/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/systemd",
    "/usr/lib/systemd",
    "/etc/rc.d/init.d",
    *(
        f"{d}/{s}.service"
        for d in ("/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system")
        for s in ("kdump", "kdump-tools")
    ),
    "/usr/bin/dnf",
    "/usr/bin/yum",
)
#: the oldest Python that ansible-core's modules run on (a target with an older one is
#: treated as having none)
MIN_TARGET_PYTHON = (3, 8)
#: Jinja + POSIX sh run through ``raw``: prints ``kdiag-python PATH`` for the interpreter
#: Ansible's modules would use, or ``kdiag-no-python``.  An explicit
#: ``ansible_python_interpreter`` is the only candidate (Ansible would use no other);
#: otherwise the usual places Ansible's interpreter discovery looks.
PYTHON_PROBE = (
    "for py in {% if ansible_python_interpreter is defined and not "
    "(ansible_python_interpreter is match('auto')) %}{{ ansible_python_interpreter | quote }}"
    "{% else %}python3 /usr/bin/python3 /usr/libexec/platform-python /usr/bin/python"
    '{% endif %}; do command -v "$py" >/dev/null 2>&1 && "$py" -c '
    f"'import sys; sys.exit(sys.version_info < {MIN_TARGET_PYTHON})' >/dev/null 2>&1 "
    '&& { echo "kdiag-python $py"; exit 0; }; done; echo kdiag-no-python'
)
_PROBE_TASK = f"""\
    - name: kdiag probe
      ansible.builtin.raw: >-
        R={{{{ kdiag_collect_root | default('') | quote }}}};
        for p in {" ".join(PROBE_PATHS)};
        do [ -e "$R$p" ] && echo "kdiag-present $p"; done;
        {PYTHON_PROBE}
      changed_when: false
      check_mode: false
"""


def python_found(stdout: str) -> bool | None:
    """Whether a probe's output (:data:`PYTHON_PROBE`) found a usable Python; None: the
    output does not say (the probe did not run to its end)."""
    lines = {ln.strip().split(" ", 1)[0] for ln in stdout.splitlines()}
    if "kdiag-python" in lines:
        return True
    if "kdiag-no-python" in lines:
        return False
    return None


def collect_playbook(timeout: int = COLLECT_TIMEOUT) -> str:
    """The collect playbook, each host's task bounded to ``timeout`` seconds."""
    return _COLLECT_PLAYBOOK.replace("@TIMEOUT@", str(int(timeout)))


_COLLECT_PLAYBOOK = """\
# kdiag fleet doctor: run the readiness collector (POSIX sh) on every host; no Python needed
- name: kdiag readiness facts
  hosts: all
  gather_facts: false
  tasks:
    - name: kdiag collect
      ansible.builtin.script:
        cmd: collect.sh
        executable: /bin/sh
      changed_when: false
      check_mode: false
      timeout: @TIMEOUT@
      # a host variable kdiag_collect_root judges a tree on the host (an image, a chroot)
      environment:
        KDIAG_ROOT: "{{ kdiag_collect_root | default('') }}"
"""
COLLECT_PLAYBOOK = collect_playbook()


@dataclass(frozen=True)
class HostVerdict:
    """One host: pass, fail (checks failed), unreachable or error (the collector did not
    give a facts document)."""

    host: str
    status: str
    failing: tuple[str, ...]
    warnings: tuple[str, ...]
    checks: tuple[Mapping[str, str], ...]
    facts: Mapping[str, Any] | None
    message: str | None
    answered_at: dt.datetime
    #: of :data:`PROBE_PATHS`, those that exist on the host (``probe=True`` runs only)
    present: tuple[str, ...] = ()
    #: whether Ansible's modules can run there (a usable Python); None: not probed
    python: bool | None = None
    #: the collect task reached its time limit (status ``error``)
    timed_out: bool = False

    @property
    def findings(self) -> tuple[str, ...]:
        """What to group this host under: its failing check ids, or why it has none."""
        if self.status == "unreachable":
            return (UNREACHABLE,)
        if self.status == "error":
            return (TIMED_OUT,) if self.timed_out else (COLLECTOR_FAILED,)
        return self.failing

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "failing": list(self.failing),
            "warnings": list(self.warnings),
            "message": self.message,
            "checks": [dict(c) for c in self.checks],
        }


@dataclass(frozen=True)
class FleetReport:
    """Every host's verdict, in inventory order."""

    inventory: str
    limit: str | None
    purpose: str
    hosts: tuple[HostVerdict, ...]
    started_at: dt.datetime
    finished_at: dt.datetime

    @property
    def failed(self) -> bool:
        return any(h.status != "pass" for h in self.hosts)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("pass", "fail", "unreachable", "error"), 0)
        for host in self.hosts:
            out[host.status] += 1
        return out

    def findings(self) -> dict[str, list[str]]:
        """Finding -> the hosts that have it; the most widespread first, then by name."""
        grouped: dict[str, list[str]] = {}
        for host in self.hosts:
            for finding in host.findings:
                grouped.setdefault(finding, []).append(host.host)
        return dict(sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def to_json(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "limit": self.limit,
            "purpose": self.purpose,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "counts": self.counts(),
            "findings": self.findings(),
            "hosts": [h.to_json() for h in self.hosts],
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _document(stdout: str) -> dict[str, Any]:
    """The facts JSON in a task's stdout (a login banner or a shell's noise may surround it)."""
    start, end = stdout.find("{"), stdout.rfind("}")
    if start < 0 or end < start:
        raise ConfigError("the collector printed no JSON document")
    try:
        data = json.loads(stdout[start : end + 1])
    except ValueError as exc:
        raise ConfigError(f"the collector's output is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("the collector's output is not a JSON object")
    return data


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def evaluate(
    host: str, result: TaskResult | None, purpose: str, *, timeout: int = COLLECT_TIMEOUT
) -> HostVerdict:
    """One host's verdict from its collect task result (None: it never answered)."""
    now = _now()

    def broken(status: str, message: str) -> HostVerdict:
        return HostVerdict(host, status, (), (), (), None, message, now)

    if result is None:
        return broken("error", "no answer: the playbook run ended before this host answered")
    if result.outcome == "unreachable":
        return broken("unreachable", result.msg or "unreachable")
    if result.outcome == "failed" and any(m in result.msg for m in _TIMEOUT_MESSAGES):
        why = (
            f"no answer within {timeout} s (--timeout; counted on this machine from the "
            "connection on, so waiting for its CPU counts too): the host hangs, or this "
            "machine runs too many forks for its CPUs"
        )
        return replace(broken("error", why), timed_out=True)
    if result.outcome != "ok":
        why = result.msg or _first_line(result.stderr) or _first_line(result.stdout)
        return broken("error", f"collector failed (rc {result.rc}): {why}")
    try:
        data = _document(result.stdout)
        facts = facts_mod.from_json(data, origin=host)
    except ConfigError as exc:
        return broken("error", str(exc))
    report = run_checks(facts, purpose)
    failing = tuple(c.id for c in report.checks if c.status == "fail")
    warnings = tuple(c.id for c in report.checks if c.status == "warn")
    return HostVerdict(
        host=host,
        status="fail" if failing else "pass",
        failing=failing,
        warnings=warnings,
        checks=tuple(c.to_json() for c in report.checks),
        facts=data,
        message=None,
        answered_at=now,
    )


Progress = Callable[[HostVerdict, int, int], None]


def fleet_doctor(
    inventory: str,
    *,
    limit: str | None = None,
    forks: int = 5,
    purpose: str = "nmi",
    progress: Progress | None = None,
    hosts: list[str] | None = None,
    probe: bool = False,
    timeout: int = COLLECT_TIMEOUT,
) -> FleetReport:
    """Collect and judge every host of ``inventory`` (matching ``limit``).

    ``progress(verdict, done, total)`` is called as each host answers.  ``hosts`` (the
    inventory's host names) saves an ``ansible-inventory`` call when the caller has them.
    ``probe`` also lists which of :data:`PROBE_PATHS` exist on each host (for the planner).

    :raises ConfigError: a bad inventory, limit, forks count or purpose.
    :raises BackendUnavailable: ansible-core or ansible-runner is not installed.
    """
    if purpose not in PURPOSES:
        raise ConfigError(f"--for must be one of {', '.join(PURPOSES)}")
    if isinstance(timeout, bool) or not 1 <= timeout <= MAX_COLLECT_TIMEOUT:
        raise ConfigError(f"--timeout must be 1 to {MAX_COLLECT_TIMEOUT} seconds")
    names = hosts if hosts is not None else list(list_hosts(inventory, limit))
    if not names:
        raise ConfigError(f"-i {inventory}: the inventory has no hosts")
    started = _now()
    verdicts: dict[str, HostVerdict] = {}

    present: dict[str, tuple[str, ...]] = {}
    python: dict[str, bool | None] = {}

    def on_result(result: TaskResult) -> None:
        if result.task == "kdiag probe":
            lines = result.stdout.splitlines()
            found = (ln.split(" ", 1)[1] for ln in lines if ln.startswith("kdiag-present "))
            present[result.host] = tuple(p.strip() for p in found if p.strip() in PROBE_PATHS)
            if result.outcome == "ok":
                python[result.host] = python_found(result.stdout)
            return
        if result.host in verdicts or result.outcome == "skipped" or result.item is not None:
            return
        verdict = evaluate(result.host, result, purpose, timeout=timeout)
        verdicts[result.host] = verdict
        if progress is not None:
            progress(verdict, len(verdicts), len(names))

    run: PlaybookRun = run_playbook(
        collect_playbook(timeout) + (_PROBE_TASK if probe else ""),
        inventory,
        files={"collect.sh": facts_mod.collector_source()},
        limit=limit,
        forks=forks,
        on_result=on_result,
    )
    if not run.results and run.rc not in (0, 2, 4):
        raise ConfigError(f"ansible-playbook failed (rc {run.rc}): {run.stderr_tail}")
    for host, paths in present.items():
        if host in verdicts:
            verdicts[host] = replace(verdicts[host], present=paths, python=python.get(host))
    ordered = tuple(verdicts.get(h) or evaluate(h, None, purpose) for h in names)
    extra = tuple(v for h, v in verdicts.items() if h not in set(names))
    return FleetReport(inventory, limit, purpose, ordered + extra, started, _now())


def record_report(
    store: StoreBase, report: FleetReport, *, account_id: str | None = None
) -> FleetRun:
    """Keep the run and every host's facts and verdicts in the store (one transaction)."""
    account = store._account_id(account_id)
    run = FleetRun(
        account_id=account,
        kind="doctor",
        inventory=report.inventory,
        limit_pattern=report.limit,
        purpose=report.purpose,
        started_at=report.started_at,
        finished_at=report.finished_at,
        hosts=len(report.hosts),
        failed=sum(h.status != "pass" for h in report.hosts),
    )
    rows = [
        FleetHost(
            host=h.host,
            status=h.status,
            answered_at=h.answered_at,
            failing=h.failing,
            checks=h.checks,
            facts=h.facts,
            message=h.message,
        )
        for h in report.hosts
    ]
    recorded, _ = record_fleet_run(store, run, rows)
    return recorded
