"""Running a playbook over an operator's inventory, through ansible-runner and ansible-core.

kdiag does no SSH fan-out of its own: the operator's inventory (a static file, a directory,
a dynamic inventory plugin's YAML, or ``host1,host2,``) and connection settings
(``ansible.cfg``, ``~/.ssh/config``, host variables) are used exactly as ``ansible-playbook``
uses them.  Each run gets a private data directory (mode 0700, removed afterwards) holding
the playbook kdiag ships and the files it sends; per-host task results come back as
ansible-runner events while hosts answer.

Host key checking stays on unless the operator's environment turns it off
(``ANSIBLE_HOST_KEY_CHECKING``): ansible-runner alone would disable it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kdiag.errors import BackendUnavailable, ConfigError

__all__ = (
    "EXTRA",
    "PlaybookRun",
    "TaskResult",
    "check_inventory",
    "list_hosts",
    "run_playbook",
)

#: the extra that installs what this module needs
EXTRA = "pip install 'kdiag[fleet]'"
#: seconds ``ansible-inventory`` may take (a dynamic inventory plugin calls a cloud API)
_INVENTORY_SECONDS = 300.0
#: bytes of ``ansible-inventory`` output read at most
_INVENTORY_MAX = 256 * 1024 * 1024
_OUTCOMES = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
    # one per loop item (the task's own event follows with every item's result)
    "runner_item_on_ok": "ok",
    "runner_item_on_failed": "failed",
    "runner_item_on_skipped": "skipped",
}
#: host names that can name a host_vars file
_SAFE_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,254}")
#: per-host task output kept at most (stdout and stderr each)
MAX_OUTPUT = 4 * 1024 * 1024


@dataclass(frozen=True)
class TaskResult:
    """One task's result on one host."""

    host: str
    task: str
    outcome: str  # ok | failed | unreachable | skipped
    changed: bool
    rc: int | None
    stdout: str
    stderr: str
    msg: str
    diff: tuple[Mapping[str, Any], ...] = ()
    #: for one loop item: the item (its ``path`` for kdiag's file tasks); None otherwise
    item: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PlaybookRun:
    """What a playbook run gave: every task result, in arrival order, and ansible's status."""

    results: tuple[TaskResult, ...]
    status: str
    rc: int
    stderr_tail: str = ""
    by_host: Mapping[str, tuple[TaskResult, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[str, list[TaskResult]] = {}
        for result in self.results:
            grouped.setdefault(result.host, []).append(result)
        object.__setattr__(
            self, "by_host", MappingProxyType({h: tuple(r) for h, r in grouped.items()})
        )


def _bin_path() -> str:
    """PATH with this interpreter's scripts directory first (a venv's ansible-playbook)."""
    here = str(Path(sys.executable).parent)
    return os.pathsep.join([here, os.environ.get("PATH", os.defpath)])


def _which(name: str) -> str:
    path = shutil.which(name, path=_bin_path())
    if path is None:
        raise BackendUnavailable(f"{name} is not installed (ansible-core: {EXTRA})")
    return path


def check_inventory(inventory: str) -> str:
    """An inventory argument as ``ansible-playbook -i`` takes it: an existing file or
    directory (made absolute), or a comma-separated host list (``web1,web2,``).

    :raises ConfigError: neither.
    """
    if not inventory or "\0" in inventory or "\n" in inventory:
        raise ConfigError("-i: give an inventory file, directory or host list")
    if "," in inventory:
        return inventory
    path = Path(inventory).expanduser()
    if not path.exists():
        raise ConfigError(f"-i {inventory}: no such inventory file or directory")
    return str(path.resolve())


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": _bin_path(),
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
        "ANSIBLE_SSH_USETTY": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_SYSTEM_WARNINGS": "False",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def list_hosts(inventory: str, limit: str | None = None) -> dict[str, dict[str, Any]]:
    """Every host of the inventory (matching ``limit``) with its variables, through
    ``ansible-inventory --list``: the same parsing and plugins as the playbook run.

    :raises ConfigError: the inventory cannot be parsed.
    :raises BackendUnavailable: ansible-core is not installed.
    """
    inv = check_inventory(inventory)
    args = [_which("ansible-inventory"), "-i", inv, "--list"]
    if limit:
        args += ["--limit", limit]
    env = {**os.environ, **_env()}
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=_INVENTORY_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"ansible-inventory -i {inventory} took over {_INVENTORY_SECONDS:.0f} s"
        ) from None
    if proc.returncode != 0 or len(proc.stdout) > _INVENTORY_MAX:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"ansible-inventory -i {inventory} failed: {tail[0][:300]}")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise ConfigError(f"ansible-inventory -i {inventory}: not JSON ({exc})") from exc
    hostvars = data.get("_meta", {}).get("hostvars", {}) if isinstance(data, dict) else {}
    hosts: dict[str, dict[str, Any]] = {}
    for name, group in data.items() if isinstance(data, dict) else ():
        if name == "_meta" or not isinstance(group, dict):
            continue
        for host in group.get("hosts", ()):
            if isinstance(host, str):
                value = hostvars.get(host, {})
                hosts[host] = value if isinstance(value, dict) else {}
    if limit and not hosts:
        raise ConfigError(f"--limit {limit}: no host of {inventory} matches")
    return dict(sorted(hosts.items()))


def play_order(
    inventory: str, hosts: Mapping[str, dict[str, Any]], limit: str | None = None
) -> dict[str, dict[str, Any]]:
    """``hosts`` (from :func:`list_hosts`, sorted by name) in the order Ansible plays them:
    the inventory's own order, as ``ansible all --list-hosts`` prints it (what a canary
    first, then batches, must follow).

    :raises ConfigError: the inventory cannot be listed.
    """
    args = [_which("ansible"), "all", "-i", check_inventory(inventory), "--list-hosts"]
    if limit:
        args += ["--limit", limit]
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **_env()},
            timeout=_INVENTORY_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"ansible --list-hosts -i {inventory} took over {_INVENTORY_SECONDS:.0f} s"
        ) from None
    if proc.returncode != 0 or len(proc.stdout) > _INVENTORY_MAX:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"ansible --list-hosts -i {inventory} failed: {tail[0][:300]}")
    order = [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]
    ordered = {h: hosts[h] for h in order if h in hosts}
    ordered.update((h, v) for h, v in hosts.items() if h not in ordered)
    return ordered


def _text(value: object) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return text[:MAX_OUTPUT]


def _result(event: Mapping[str, Any]) -> TaskResult | None:
    outcome = _OUTCOMES.get(str(event.get("event", "")))
    data = event.get("event_data")
    if outcome is None or not isinstance(data, dict):
        return None
    res = data.get("res") if isinstance(data.get("res"), dict) else {}
    assert isinstance(res, dict)
    rc = res.get("rc")
    diff = res.get("diff")
    diffs = tuple(d for d in (diff if isinstance(diff, list) else [diff]) if isinstance(d, dict))
    return TaskResult(
        host=str(data.get("host", "?")),
        task=str(data.get("task", "")),
        outcome=outcome,
        changed=bool(res.get("changed")),
        rc=rc if isinstance(rc, int) and not isinstance(rc, bool) else None,
        stdout=_text(res.get("stdout")),
        stderr=_text(res.get("stderr")),
        msg=_text(res.get("msg"))[:2000],
        diff=diffs,
        item=_item(event, res),
    )


def _item(event: Mapping[str, Any], res: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not str(event.get("event", "")).startswith("runner_item_"):
        return None
    item = res.get("item")
    return MappingProxyType(dict(item)) if isinstance(item, dict) else MappingProxyType({})


def run_playbook(
    playbook: str,
    inventory: str,
    *,
    files: Mapping[str, str] | None = None,
    limit: str | None = None,
    forks: int = 5,
    check: bool = False,
    diff: bool = False,
    extravars: Mapping[str, Any] | None = None,
    host_vars: Mapping[str, str] | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
) -> PlaybookRun:
    """Run ``playbook`` (YAML text) with ``files`` beside it, over ``inventory``.

    ``on_result`` is called for each task result as it arrives (from the calling thread).
    ``host_vars`` maps a host to a YAML document of its variables, put in ``host_vars/``
    beside the playbook (where Ansible reads them with the inventory's own).

    :raises ConfigError: a bad inventory or forks count.
    :raises BackendUnavailable: ansible-runner or ansible-core is not installed.
    """
    if isinstance(forks, bool) or not 1 <= forks <= 1000:
        raise ConfigError(f"--forks must be 1 to 1000, not {forks!r}")
    inv = check_inventory(inventory)
    _which("ansible-playbook")
    try:
        import ansible_runner  # type: ignore[import-untyped]  # noqa: PLC0415 - optional extra
    except ImportError:
        raise BackendUnavailable(f"ansible-runner is not installed ({EXTRA})") from None
    results: list[TaskResult] = []

    def handler(event: dict[str, Any]) -> bool:
        result = _result(event)
        if result is not None:
            results.append(result)
            if on_result is not None:
                on_result(result)
        return True

    cmdline: list[str] = []
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    with tempfile.TemporaryDirectory(prefix="kdiag-fleet-") as tmp:
        pdd = Path(tmp)
        os.chmod(pdd, 0o700)
        project = pdd / "project"
        project.mkdir()
        (project / "kdiag.yml").write_text(playbook)
        for name, text in (files or {}).items():
            if "/" in name or name.startswith("."):
                raise ConfigError(f"bad playbook file name {name!r}")
            (project / name).write_text(text)
        if host_vars:
            (project / "host_vars").mkdir()
        for host, text in (host_vars or {}).items():
            if not _SAFE_HOST.fullmatch(host):
                raise ConfigError(f"host name {host[:80]!r} cannot name a host_vars file")
            (project / "host_vars" / f"{host}.yml").write_text(text)
        (pdd / "tmp").mkdir()
        env = _env({"ANSIBLE_LOCAL_TEMP": str(pdd / "tmp")})
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            playbook="kdiag.yml",
            inventory=inv,
            limit=limit or None,
            forks=forks,
            extravars=dict(extravars or {}),
            cmdline=" ".join(cmdline) or None,
            envvars=env,
            event_handler=handler,
            quiet=True,
            rotate_artifacts=1,
        )
        stderr_tail = ""
        if runner.rc not in (0, 2, 4):
            with runner.stdout as stdout_file:  # ansible-runner opens the file on access
                stderr_tail = _tail(stdout_file.read().splitlines())
    return PlaybookRun(tuple(results), str(runner.status), int(runner.rc or 0), stderr_tail)


def _tail(lines: Iterable[str]) -> str:
    useful = [ln.strip() for ln in lines if ln.strip()]
    return " ".join(useful[-3:])[:500]
