"""Drills on a schedule: a systemd timer + service pair, or a crontab line, weekly.

The units run ``kdiag drill INSTANCE_ID`` with the options given here, as the user who
installs them, against the same store (``KDIAG_DB`` / ``KDIAG_STATE_DIR`` are carried into
the service when set).  The minute and hour of the crontab line, like the timer's
``RandomizedDelaySec``, spread many instances' drills over the week instead of crashing
every machine at midnight on Monday; the crontab slot is derived from the instance id, so
printing it twice gives the same line.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kdiag.store.ids import check_instance_id

__all__ = ("TimerUnits", "cron_line", "drill_command", "systemd_units")

_ENV_KEYS = ("KDIAG_DB", "KDIAG_STATE_DIR", "KDIAG_KEY_FILE", "KDIAG_ENDPOINT")


@dataclass(frozen=True, slots=True)
class TimerUnits:
    """The two unit files: their names and contents."""

    name: str
    service: str
    timer: str

    def render(self) -> str:
        """Both files, each under a comment line naming where it goes."""
        return (
            f"# /etc/systemd/system/{self.name}.service\n{self.service}\n"
            f"# /etc/systemd/system/{self.name}.timer\n{self.timer}"
        )


def drill_command(instance_id: str, kdiag: str, options: Sequence[str] = ()) -> list[str]:
    """The command a schedule runs (``kdiag`` is the absolute path of the executable)."""
    check_instance_id(instance_id)
    return [kdiag, "drill", instance_id, *options]


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    source = os.environ if env is None else env
    return {k: source[k] for k in _ENV_KEYS if source.get(k)}


def _systemd_quote(word: str) -> str:
    if word and all(c.isalnum() or c in "-_./:=@+," for c in word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def systemd_units(
    instance_id: str,
    kdiag: str,
    options: Sequence[str] = (),
    *,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> TimerUnits:
    """The service (one drill, ``Type=oneshot``) and its weekly timer."""
    name = f"kdiag-drill-{instance_id}"
    command = drill_command(instance_id, kdiag, options)
    lines = [
        "[Unit]",
        f"Description=kdiag fire drill of {instance_id}: NMI, panic, kdump, vmcore, triage",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=" + " ".join(_systemd_quote(w) for w in command),
        f"TimeoutStartSec={int(timeout) + 300}",
        "UMask=0077",
    ]
    for key, value in sorted(_environment(env).items()):
        lines.append(f"Environment={_systemd_quote(f'{key}={value}')}")
    service = "\n".join(lines) + "\n"
    timer = "\n".join(
        [
            "[Unit]",
            f"Description=Weekly kdiag fire drill of {instance_id}",
            "",
            "[Timer]",
            "OnCalendar=weekly",
            "RandomizedDelaySec=6h",
            "Persistent=true",
            f"Unit={name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
        ]
    )
    return TimerUnits(name, service, timer + "\n")


def cron_line(
    instance_id: str,
    kdiag: str,
    options: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
) -> str:
    """One crontab line: weekly, at a minute, hour and weekday of the instance's own."""
    command = drill_command(instance_id, kdiag, options)
    slot = int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:4], "big")
    minute, hour, weekday = slot % 60, (slot // 60) % 24, (slot // 1440) % 7
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(_environment(env).items()))
    text = " ".join(shlex.quote(w) for w in command)
    run = (f"{prefix} {text}" if prefix else text).replace("%", "\\%")
    return f"{minute} {hour} * * {weekday} {run}\n"
