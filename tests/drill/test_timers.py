"""The schedule: systemd units that systemd-analyze accepts, and a crontab line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.drill.timers import cron_line, systemd_units
from kdiag.errors import InvalidInstanceIDMalformed
from tests.conftest import REPO, require_tool

IID = "i-0123456789abcdef0"
KDIAG = str(REPO / ".venv" / "bin" / "kdiag")


def _verify(directory: Path, *names: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    return subprocess.run(
        [tool, "verify", *(str(directory / n) for n in names)],
        capture_output=True,
        text=True,
        check=False,
        env={"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = systemd_units(
        IID,
        KDIAG,
        ["--timeout=600", "--dump-dir=/srv/crash dumps/%h"],
        env={"KDIAG_DB": "sqlite:////var/lib/kdiag/kdiag.db", "HOME": "/root"},
    )
    (tmp_path / f"{units.name}.service").write_text(units.service)
    (tmp_path / f"{units.name}.timer").write_text(units.timer)
    done = _verify(tmp_path, f"{units.name}.timer", f"{units.name}.service")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert "OnCalendar=weekly" in units.timer
    assert f"Unit={units.name}.service" in units.timer
    # the space and the % survive systemd's quoting and specifier expansion
    assert '"--dump-dir=/srv/crash dumps/%%h"' in units.service
    assert "Environment=KDIAG_DB=sqlite:////var/lib/kdiag/kdiag.db" in units.service
    assert "HOME" not in units.service  # only kdiag's own variables are carried


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The oracle can fail: a unit pointing at a missing program is refused."""
    units = systemd_units(IID, "/nonexistent/kdiag")
    (tmp_path / f"{units.name}.service").write_text(units.service)
    (tmp_path / f"{units.name}.timer").write_text(units.timer)
    done = _verify(tmp_path, f"{units.name}.timer", f"{units.name}.service")
    assert done.returncode != 0 or "nonexistent" in done.stderr


def test_cron_line_is_weekly_stable_and_escaped() -> None:
    line = cron_line(IID, KDIAG, ["--dump-dir=/srv/%d"], env={"KDIAG_DB": "/var/lib/k.db"})
    assert line == cron_line(IID, KDIAG, ["--dump-dir=/srv/%d"], env={"KDIAG_DB": "/var/lib/k.db"})
    fields = line.split(" ", 5)
    minute, hour, dom, month, weekday = fields[:5]
    assert 0 <= int(minute) < 60
    assert 0 <= int(hour) < 24
    assert 0 <= int(weekday) < 7
    assert (dom, month) == ("*", "*")
    assert fields[5].startswith("KDIAG_DB=/var/lib/k.db ")
    assert "/srv/\\%d" in line
    assert line.endswith("\n")
    assert line.count("\n") == 1
    slots = {tuple(cron_line(f"i-0123456789abcde{n:02x}", KDIAG).split()[:5]) for n in range(8)}
    assert len(slots) > 1  # instances are spread over the week, not all at one minute


def test_malformed_instance_is_refused() -> None:
    with pytest.raises(InvalidInstanceIDMalformed):
        systemd_units("i-x; rm -rf /", KDIAG)


def test_cli_prints_the_pair_and_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["drill", "--print-timer", IID, "--timeout", "300", "--host-dump"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^# /etc/systemd/system/kdiag-drill-{IID}\.service$", out, re.M)
    assert re.search(rf"^# /etc/systemd/system/kdiag-drill-{IID}\.timer$", out, re.M)
    assert re.search(rf"^ExecStart=/\S+/kdiag drill {IID} --timeout=300 --host-dump$", out, re.M)
    assert run(["drill", "--cron", IID]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(rf"\d+ \d+ \* \* \d /\S+/kdiag drill {IID} --timeout=600\n", out)
    assert run(["drill", "--cron", "not-an-id"]) == 2
