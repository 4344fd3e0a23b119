"""``kdiag fleet configure`` and ``kdiag configure --ansible``: kdump fixes as a playbook.

The fixes are the ones ``kdiag configure`` computes (:func:`kdiag.readiness.configure.plan`),
for each host from its own files: the collector's facts hold the content of every file the
planner edits, so the planner runs here on a private copy of them and each host gets its
plan as host variables of one playbook that kdiag ships (:data:`PLAYBOOK`):

- each file is first compared with what was collected (a host changed since: the play fails
  for that host rather than overwrite it), then written whole with ``copy`` (backup kept);
- the follow-up commands (``sysctl -p``, ``kdump-config reload``, ``update-grub``) run only
  when a file changed, and never under ``--check``;
- a reboot is never done: the hosts whose change takes effect at the next boot are listed.

Running it again changes nothing (``copy`` compares content; the plan of a fixed host is
empty).  ``--check --diff`` is Ansible's own dry run.  The file tasks use Ansible modules, so
they need Python on the targets; a host without a usable Python (found by a ``raw`` probe:
the collection's own probe in ``fleet configure``, a first task of the playbook otherwise) gets
the same edits through ``raw`` shell commands instead, and the host variable ``kdiag_raw``
(true or false) overrides the probe (a POSIX shell with ``sha1sum``, ``base64 -d``,
``cp``, ``mv``: busybox is enough): the sha1 comparison, the write (backup kept, ``mv`` into
place), the follow-up commands (``sysctl --system``, which busybox lacks, falls back to
``sysctl -p`` of each file in order); ``--check`` runs only the comparison, and ``--diff`` is
computed here from the plan (the raw module gives none).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdiag.errors import ConfigError
from kdiag.fleet.ansible import TaskResult, run_playbook
from kdiag.fleet.doctor import COLLECT_TIMEOUT, PYTHON_PROBE, HostVerdict, fleet_doctor
from kdiag.readiness import configure as cfg
from kdiag.readiness import facts as facts_mod

__all__ = (
    "PLAYBOOK",
    "ConfigureReport",
    "HostChange",
    "fleet_configure",
    "host_plan",
    "host_vars",
    "playbook_for",
)

_TASKS = (
    """\
  tasks:
    - name: kdiag python probe
      when: kdiag_raw is not defined and kdiag_raw_detected is not defined
      ansible.builtin.raw: >-
        """
    + PYTHON_PROBE
    + """
      changed_when: false
      check_mode: false
      register: kdiag_python_probe
    - name: kdiag mode (raw without a usable Python; kdiag_raw overrides)
      ansible.builtin.set_fact:
        kdiag_use_raw: >-
          {{ (kdiag_raw if kdiag_raw is defined else kdiag_raw_detected
          if kdiag_raw_detected is defined
          else ('kdiag-python' not in kdiag_python_probe.stdout)) | bool }}
    - name: kdiag files unchanged since collected
      when: not (kdiag_use_raw | bool)
      ansible.builtin.stat:
        path: "{{ (kdiag_collect_root | default('')) ~ item.path }}"
        checksum_algorithm: sha1
      loop: "{{ kdiag_files | default([]) }}"
      loop_control:
        label: "{{ item.path }}"
      register: kdiag_stat
    - name: kdiag refuse files changed since the plan
      when: not (kdiag_use_raw | bool)
      ansible.builtin.assert:
        that: >-
          (item.stat.checksum | default('absent')) in
          [item.item.old_sha1, item.item.new_sha1]
        fail_msg: "{{ item.item.path }} changed since kdiag read it; run again"
        quiet: true
      loop: "{{ kdiag_stat.results | default([]) }}"
      loop_control:
        label: "{{ item.item.path }}"
    - name: kdiag directories
      when: not (kdiag_use_raw | bool)
      ansible.builtin.file:
        path: "{{ ((kdiag_collect_root | default('')) ~ item.path) | dirname }}"
        state: directory
      loop: "{{ kdiag_files | default([]) }}"
      loop_control:
        label: "{{ item.path }}"
    - name: kdiag files
      when: not (kdiag_use_raw | bool)
      ansible.builtin.copy:
        dest: "{{ (kdiag_collect_root | default('')) ~ item.path }}"
        content: "{{ item.content }}"
        mode: "{{ item.mode | default(omit) }}"
        backup: true
      loop: "{{ kdiag_files | default([]) }}"
      loop_control:
        label: "{{ item.path }}"
      register: kdiag_written
    - name: kdiag follow-up commands (never a reboot)
      ansible.builtin.shell: "{{ item }}"
      loop: "{{ kdiag_commands | default([]) }}"
      when: >-
        not (kdiag_use_raw | bool) and kdiag_written is changed
        and not (kdiag_collect_root | default(''))
    - name: kdiag files (raw)
      when: kdiag_use_raw | bool
      check_mode: false
      ansible.builtin.raw: >-
        p={{ ((kdiag_collect_root | default('')) ~ item.path) | quote }};
        if [ -e "$p" ]; then cur=$(sha1sum "$p" | cut -d' ' -f1); else cur=absent; fi;
        if [ "$cur" = {{ item.new_sha1 | quote }} ]; then echo kdiag-unchanged; exit 0; fi;
        if [ "$cur" != {{ item.old_sha1 | quote }} ]; then
        echo "$p changed since kdiag read it; run again"; exit 3; fi;
        if [ {{ ansible_check_mode | ternary('1', '0') }} = 1 ]; then
        echo kdiag-changed; exit 0; fi;
        mkdir -p "$(dirname "$p")" &&
        if [ -e "$p" ]; then cp -p "$p" "$p.kdiag-backup" && cp -p "$p" "$p.kdiag-new";
        else : > "$p.kdiag-new" && chmod {{ item.mode | default('0644') }} "$p.kdiag-new"; fi &&
        printf %s {{ item.content | b64encode | quote }} | base64 -d > "$p.kdiag-new" &&
        mv -f "$p.kdiag-new" "$p" && echo kdiag-changed
      changed_when: "'kdiag-changed' in kdiag_raw_written.stdout"
      loop: "{{ kdiag_files | default([]) }}"
      loop_control:
        label: "{{ item.path }}"
      register: kdiag_raw_written
    - name: kdiag follow-up commands (raw, never a reboot)
      ansible.builtin.raw: >-
        {{ (item == 'sysctl --system') | ternary(kdiag_sysctl_each, item) }}
      vars:
        kdiag_sysctl_each: >-
          sysctl --system 2>/dev/null || for f in /usr/lib/sysctl.d/*.conf
          /etc/sysctl.d/*.conf /etc/sysctl.conf; do [ ! -f "$f" ] || sysctl -p "$f" || exit 1;
          done
      loop: "{{ kdiag_commands | default([]) }}"
      when: >-
        (kdiag_use_raw | bool) and kdiag_raw_written is changed
        and not ansible_check_mode and not (kdiag_collect_root | default(''))
"""
)

#: the playbook ``kdiag fleet configure`` runs; each host's plan comes in its host variables
PLAYBOOK = (
    "# kdiag fleet configure: write the files kdiag planned for each host (host vars\n"
    "# kdiag_files, kdiag_commands); idempotent; never reboots\n"
    "- name: kdiag kdump configuration\n"
    "  hosts: all\n"
    "  gather_facts: false\n" + _TASKS
)


def _sha1(text: str | None) -> str:
    if text is None:
        return "absent"
    return hashlib.sha1(text.encode("utf-8", errors="surrogateescape")).hexdigest()  # noqa: S324 - Ansible's stat checksum


def _safe_path(path: object) -> str:
    """A remote absolute path, normalised; refused when it climbs out of / or is odd."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ConfigError(f"facts list a bad file path {str(path)[:80]!r}")
    norm = posixpath.normpath(path)
    if norm != path or norm.startswith("//") or "/../" in f"{norm}/":
        raise ConfigError(f"facts list a bad file path {path[:80]!r}")
    return norm


def _materialize(files: Mapping[str, Any], into: Path, present: Iterable[str] = ()) -> None:
    """Write the collected files into ``into`` (their absolute paths under it), and stand-ins
    for the ``present`` paths (directories, or empty files for ``*.service`` and tools)."""
    for raw in present:
        path = _safe_path(raw)
        dest = into / path.lstrip("/")
        if path.endswith(".service") or path.startswith("/usr/bin/"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.touch()
        else:
            dest.mkdir(parents=True, exist_ok=True)
    for raw, text in files.items():
        path = _safe_path(raw)
        if not isinstance(text, str):
            raise ConfigError(f"facts: {path} is not text")
        dest = into / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(text.encode("utf-8", errors="surrogateescape"))


def host_plan(
    document: Mapping[str, Any],
    *,
    purpose: str = "nmi",
    panic_timeout: int = 10,
    crashkernel_size: str | None = None,
    present: Iterable[str] = (),
) -> cfg.Plan:
    """What ``kdiag configure`` would change on the host that ``document`` (its collector's
    JSON) describes; ``present`` lists which of the probed paths exist there
    (:data:`kdiag.fleet.doctor.PROBE_PATHS`).

    :raises ConfigError: not a facts document, or one whose distribution is unknown.
    """
    facts = facts_mod.from_json(document)
    with tempfile.TemporaryDirectory(prefix="kdiag-plan-") as tmp:
        _materialize(facts.files, Path(tmp), present)
        return cfg.plan(
            tmp,
            panic_timeout=panic_timeout,
            crashkernel_size=crashkernel_size,
            purpose=purpose,
            facts=facts,
        )


def _plan_vars(plan: cfg.Plan) -> dict[str, Any]:
    files = []
    for change in plan.changes:
        entry: dict[str, Any] = {
            "path": change.path,
            "content": change.new,
            "old_sha1": _sha1(change.old),
            "new_sha1": _sha1(change.new),
        }
        if change.old is None:
            entry["mode"] = "0644"
        files.append(entry)
    return {
        "kdiag_files": files,
        "kdiag_commands": list(plan.commands),
        "kdiag_reboot": list(plan.needs_reboot),
    }


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return "!unsafe " + json.dumps(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    """YAML for kdiag's vars: every string is ``!unsafe`` (never templated by Ansible) and
    JSON-quoted (a valid YAML double-quoted scalar)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines += _yaml_lines(item, indent + 2)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                sub = _yaml_lines(item, indent + 2)
                sub[0] = f"{pad}- {sub[0].lstrip()}"
                lines += sub
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [pad + _scalar(value)]


def host_vars(plan: cfg.Plan, *, python: bool | None = None) -> str:
    """The host variables document (YAML) carrying ``plan`` to the playbook; ``python``:
    whether the collection's probe found a usable Python there (then the playbook does
    not probe again), None when it does not know."""
    values = _plan_vars(plan)
    if python is not None:
        values["kdiag_raw_detected"] = not python
    return "\n".join(_yaml_lines(values, 0)) + "\n"


def playbook_for(plan: cfg.Plan, hosts: str = "all") -> str:
    """A self-contained playbook applying ``plan`` (``kdiag configure --ansible``)."""
    reboot = f"; reboot after: {', '.join(plan.needs_reboot)}" if plan.needs_reboot else ""
    head = [
        f"# kdiag configure --ansible: the kdump fixes kdiag computed for {plan.root} "
        f"({plan.family} family)",
        f"# idempotent (a second run changes nothing); never reboots{reboot}",
        "- name: kdiag kdump configuration",
        f"  hosts: {json.dumps(hosts)}",
        "  gather_facts: false",
        "  vars:",
        *_yaml_lines(_plan_vars(plan), 4),
    ]
    return "\n".join(head) + "\n" + _TASKS


@dataclass(frozen=True)
class HostChange:
    """One host: its plan's files, what changed (or would, under --check), and notes."""

    host: str
    status: str  # changed | unchanged | failed | skipped
    planned: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    reboot: tuple[str, ...] = ()
    diffs: tuple[str, ...] = ()
    message: str | None = None
    #: how the plan went to the host: ``modules`` (Ansible's, Python there) or ``raw``
    #: (shell commands); None when no file task ran
    mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "mode": self.mode,
            "planned": list(self.planned),
            "changed": list(self.changed),
            "reboot": list(self.reboot),
            "message": self.message,
        }


@dataclass(frozen=True)
class ConfigureReport:
    """Every host's outcome; ``check`` when it was a dry run."""

    check: bool
    hosts: tuple[HostChange, ...]
    started_at: dt.datetime
    finished_at: dt.datetime
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(h.status in ("failed", "skipped") for h in self.hosts)

    @property
    def reboot(self) -> dict[str, tuple[str, ...]]:
        return {h.host: h.reboot for h in self.hosts if h.reboot and h.changed}

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "hosts": [h.to_json() for h in self.hosts],
            "reboot_needed": {k: list(v) for k, v in self.reboot.items()},
        }


def _unified(diff: Mapping[str, Any]) -> str:
    import difflib  # noqa: PLC0415 - only with --diff

    before, after = diff.get("before"), diff.get("after")
    if not isinstance(before, str) or not isinstance(after, str):
        return ""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(diff.get("before_header", "before")),
            tofile=str(diff.get("after_header", "after")),
        )
    )


def fleet_configure(
    inventory: str,
    *,
    limit: str | None = None,
    forks: int = 5,
    check: bool = False,
    diff: bool = False,
    purpose: str = "nmi",
    panic_timeout: int = 10,
    progress: Callable[[HostVerdict, int, int], None] | None = None,
    timeout: int = COLLECT_TIMEOUT,
) -> ConfigureReport:
    """Collect every host's facts, plan each host's fixes here, apply them with one playbook.

    :raises ConfigError: a bad inventory, limit or option.
    :raises BackendUnavailable: ansible-core or ansible-runner is not installed.
    """
    started = dt.datetime.now(dt.UTC)
    collected = fleet_doctor(
        inventory,
        limit=limit,
        forks=forks,
        purpose=purpose,
        progress=progress,
        probe=True,
        timeout=timeout,
    )
    plans: dict[str, cfg.Plan] = {}
    outcome: dict[str, HostChange] = {}
    python = {v.host: v.python for v in collected.hosts}
    for verdict in collected.hosts:
        if verdict.facts is None:
            outcome[verdict.host] = HostChange(verdict.host, "skipped", message=verdict.message)
            continue
        try:
            plan = host_plan(
                verdict.facts,
                purpose=purpose,
                panic_timeout=panic_timeout,
                present=verdict.present,
            )
        except ConfigError as exc:
            outcome[verdict.host] = HostChange(verdict.host, "skipped", message=str(exc))
            continue
        if plan.changes:
            plans[verdict.host] = plan
        else:
            outcome[verdict.host] = HostChange(verdict.host, "unchanged")
    if plans:
        results = run_playbook(
            PLAYBOOK,
            inventory,
            limit=",".join(plans),
            forks=forks,
            check=check,
            diff=diff,
            host_vars={h: host_vars(p, python=python.get(h)) for h, p in plans.items()},
        )
        for host, plan in plans.items():
            outcome[host] = _host_outcome(host, plan, results.by_host.get(host, ()), diff=diff)
    ordered = tuple(outcome[v.host] for v in collected.hosts)
    notes = {h: p.notes for h, p in plans.items() if p.notes}
    return ConfigureReport(check, ordered, started, dt.datetime.now(dt.UTC), notes)


def _raw_diff(plan: cfg.Plan, path: str) -> str:
    """The diff of a file the raw task wrote (or would): the raw module gives none, and
    the task only writes when the host's file is still what was planned from."""
    for change in plan.changes:
        if change.path == path:
            return _unified(
                {
                    "before": change.old or "",
                    "after": change.new,
                    "before_header": f"{path} (before)",
                    "after_header": f"{path} (after)",
                }
            )
    return ""


_MODULE_TASKS = frozenset(
    ("kdiag files unchanged since collected", "kdiag directories", "kdiag files")
)


def _mode(results: tuple[TaskResult, ...]) -> str | None:
    ran = {r.task for r in results if r.outcome != "skipped"}
    if "kdiag files (raw)" in ran:
        return "raw"
    return "modules" if ran & _MODULE_TASKS else None


def _host_outcome(
    host: str, plan: cfg.Plan, results: tuple[TaskResult, ...], *, diff: bool = False
) -> HostChange:
    planned = tuple(c.path for c in plan.changes)
    mode = _mode(results)
    failed = [r for r in results if r.outcome in ("failed", "unreachable")]
    changed: list[str] = []
    diffs: list[str] = []
    for result in results:
        if result.item is None or result.task not in ("kdiag files", "kdiag files (raw)"):
            continue
        if result.outcome == "skipped":
            continue
        if result.changed:
            changed.append(str(result.item.get("path", "?")))
            if diff and result.task == "kdiag files (raw)":
                diffs.append(_raw_diff(plan, str(result.item.get("path", ""))))
        diffs += [text for d in result.diff if (text := _unified(d))]
    if failed:
        first = failed[0]
        why = first.msg or first.stderr.strip()[-300:] or first.outcome
        if first.stdout.strip():
            why = first.stdout.strip().splitlines()[-1][:300]
        return HostChange(
            host, "failed", planned, tuple(changed), message=f"{first.task}: {why}", mode=mode
        )
    if not results:
        return HostChange(host, "failed", planned, message="no answer from the playbook")
    reboot = tuple(p for p in plan.needs_reboot if p in changed)
    status = "changed" if changed else "unchanged"
    return HostChange(host, status, planned, tuple(changed), reboot, tuple(diffs), mode=mode)
