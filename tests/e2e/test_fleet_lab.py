"""``kdiag fleet doctor`` over real SSH to real lab guests: Debian's dropbear in each guest,
QEMU forwarding a loopback port, real ansible-core driving the script module (the guests have
busybox and no Python).

Guests of three profiles boot at once; each must show exactly the failures that its own
boot-time collector run (facts sent over the serial console, a different path) gets from the
same checks, and each profile's defining failure must be there or absent.  A fourth inventory
host has no SSH server: it is the unreachable finding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kdiag.cli.main import run
from kdiag.lab.ssh import ansible_inventory
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks
from tests.conftest import require_tool
from tests.dbfixtures import state_dir

__all__ = ("state_dir",)  # the fixture: a private state dir (store) per test

pytestmark = pytest.mark.e2e

BOOT = 400.0
PROFILES = ("default", "unprepared", "no-crashkernel")


@pytest.fixture(scope="module")
def guests(module_lab_root: Path) -> dict[str, Any]:
    """The three guests, booted concurrently and left running for the module."""
    require_tool("ssh")
    from kdiag.lab import Lab

    lab = Lab(module_lab_root)
    started = {p: lab.up(name=f"fl-{p}", profile=p, memory="512M", cpus=1) for p in PROFILES}
    for guest in started.values():
        guest.wait_ready(BOOT)
    return started


@pytest.fixture(scope="module")
def inventory(guests: dict[str, Any], module_lab_root: Path) -> Path:
    hosts = [(g.name, g.ssh) for g in guests.values()]
    text = ansible_inventory(hosts)
    text += "[gone]\nfl-dead ansible_host=127.0.0.1 ansible_port=1 ansible_user=root\n"
    path = module_lab_root / "inventory.ini"
    path.write_text(text)
    return path


def boot_failing(guest: Any) -> list[str]:
    report = run_checks(facts.load(guest.facts_path), "nmi")
    return [c.id for c in report.checks if c.status == "fail"]


def test_fleet_doctor_over_ssh_finds_each_profiles_failures(
    guests: dict[str, Any],
    inventory: Path,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run(["fleet", "doctor", "-i", str(inventory), "--forks", "4", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {*(g.name for g in guests.values()), "fl-dead"}
    for profile, guest in guests.items():
        got = hosts[guest.name]
        assert got["status"] in ("pass", "fail"), got["message"]
        assert got["failing"] == boot_failing(guest), profile
    default = set(hosts["fl-default"]["failing"])
    unprepared = set(hosts["fl-unprepared"]["failing"])
    nocrash = set(hosts["fl-no-crashkernel"]["failing"])
    assert "unknown-nmi-panic" in unprepared - default
    assert {"crashkernel-reserved", "capture-kernel-loaded"} <= nocrash - default
    assert not {"unknown-nmi-panic", "crashkernel-reserved", "capture-kernel-loaded"} & default
    assert hosts["fl-dead"]["status"] == "unreachable"
    assert report["findings"]["unreachable"] == ["fl-dead"]
    assert report["findings"]["unknown-nmi-panic"] == ["fl-unprepared"]
    assert captured.err.count("/4 ") == 4
    with_facts = [h for h in report["hosts"] if h["host"] != "fl-dead"]
    assert all(h["checks"] for h in with_facts)


def test_lab_ssh_runs_a_command_with_the_pinned_host_key(
    guests: dict[str, Any], module_lab_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    guest = guests["unprepared"]
    out = subprocess.run(
        guest.ssh.argv(["cat", "/proc/sys/kernel/unknown_nmi_panic", "/proc/sys/kernel/hostname"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out == ["0", guest.name]
    # a different host key at that port is refused (the pin is checked, not trusted on first use)
    other = module_lab_root / "other_known_hosts"
    other.write_text("[127.0.0.1]:* ssh-ed25519 " + "A" * 68 + "\n")
    argv = guest.ssh.argv(["true"])
    argv = [a.replace(str(guest.ssh.known_hosts), str(other)) for a in argv]
    refused = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert refused.returncode == 255


def test_fleet_drill_passes_the_canary_and_stops_at_the_first_broken_guest(
    guests: dict[str, Any],
    module_lab_root: Path,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Last in the module: the default guest crashes and reboots, no-crashkernel is spared.

    The inventory registers each guest as a qmp instance (``kdiag instances import``); the
    canary (ready) passes, batch 1 (unprepared) fails with nmi-ignored, batch 2 is not
    drilled, and ``kdiag drill history`` holds exactly the two drills that ran."""
    order = ("default", "unprepared", "no-crashkernel")
    lines = ["[lab]"]
    for p in order:
        g = guests[p]
        lines.append(f"{g.name} kdiag_backend=qmp kdiag_target={g.qmp_socket}")
    inv = module_lab_root / "drill-inventory.ini"
    inv.write_text("\n".join(lines) + "\n")
    assert run(["instances", "import", "-i", str(inv)]) == 0
    capsys.readouterr()
    boots_before = guests["default"].status().get("boots", 0)
    code = run(
        ["fleet", "drill", "-i", str(inv), "--canary", "1", "--batch", "1", "--setup", "--json"]
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1, captured.err[-3000:]
    hosts = {h["host"]: h for h in report["hosts"]}
    assert [h["host"] for h in report["hosts"]] == [guests[p].name for p in order]
    ready, broken, spared = (hosts[guests[p].name] for p in order)
    assert (ready["phase"], ready["status"], ready["diagnosis"]) == ("canary", "pass", "ok")
    assert (broken["phase"], broken["status"], broken["diagnosis"]) == (
        "batch 1",
        "fail",
        "nmi-ignored",
    )
    assert broken["fix"]
    assert (spared["status"], spared["drill_id"]) == ("not-drilled", None)
    assert report["passed"] is False
    assert report["stopped_at"]["host"] == broken["host"]
    # the ready guest really crashed and came back (an independent look: the lab's own status)
    assert guests["default"].status().get("boots", 0) > boots_before
    assert guests["no-crashkernel"].status().get("crashes", 0) == 0
    assert run(["drill", "history", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["Drills"]
    got = {(r["id"], r["instance_id"], r["verdict"]) for r in rows}
    assert got == {
        (ready["drill_id"], ready["instance_id"], "pass"),
        (broken["drill_id"], broken["instance_id"], "fail"),
    }


def _ssh(guest: Any, *argv: str) -> str:
    """The output of a command line run by the guest's shell (ssh joins the words)."""
    import subprocess

    done = subprocess.run(
        guest.ssh.argv(list(argv)), capture_output=True, text=True, check=False, timeout=60
    )
    return done.stdout


def test_fleet_configure_raw_fixes_a_guest_without_python(
    guests: dict[str, Any],
    module_lab_root: Path,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The unprepared guest (busybox, no Python; NMI-ignored by the drill above, so still up)
    configured through raw, which fleet configure picks by itself (no kdiag_raw): --check
    --diff shows the sysctl fix and writes nothing, apply writes it and runs the follow-up
    (the kernel's own value is the oracle), again: nothing."""
    guest = guests["unprepared"]
    assert _ssh(guest, "command -v python3 python || echo none").strip() == "none"
    inv = module_lab_root / "configure-inventory.ini"
    head, line = ansible_inventory([(guest.name, guest.ssh)]).splitlines()
    inv.write_text(f"{head}\n{line}\n")  # no kdiag_raw: fleet configure finds no Python
    # the lab's busybox image has no /etc/os-release, and kdiag configure's planner refuses
    # a host whose distribution family it cannot tell: give the guest a Fedora-family one
    # (a plan of the panic sysctls alone; crashkernel is already reserved on this profile)
    _ssh(guest, "printf 'ID=fedora\\nVERSION_ID=40\\n' > /etc/os-release")
    listing = "ls /etc/sysctl.d/ /etc/sysctl.conf 2>&1; cat /proc/sys/kernel/unknown_nmi_panic"
    before = _ssh(guest, listing)
    code = run(["fleet", "configure", "-i", str(inv), "--check", "--diff"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [x for x in out.splitlines() if x.startswith(f"{guest.name}: would change ")]
    assert len(lines) == 1, out
    target = next(p for p in lines[0].split(" ", 3)[3].split(", ") if "sysctl" in p)
    assert "+kernel.unknown_nmi_panic = 1" in out, out
    assert _ssh(guest, listing) == before
    assert before.split()[-1] == "0"
    code = run(["fleet", "configure", "-i", str(inv), "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0, captured
    host = report["hosts"][0]
    assert (host["host"], host["status"], host["mode"]) == (guest.name, "changed", "raw"), host
    assert target in host["changed"]
    assert "kernel.unknown_nmi_panic = 1" in _ssh(guest, "cat", target)
    assert _ssh(guest, "cat", "/proc/sys/kernel/unknown_nmi_panic").strip() == "1"
    # the fixed host: doctor's defining failure is gone, and configure has nothing left
    code = run(["fleet", "doctor", "-i", str(inv), "--json"])
    doctor = json.loads(capsys.readouterr().out)
    assert "unknown-nmi-panic" not in doctor["hosts"][0]["failing"]
    after = _ssh(guest, f"cat {target}; ls /etc/sysctl.d/")
    code = run(["fleet", "configure", "-i", str(inv)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "nothing to change" in out, out
    assert _ssh(guest, f"cat {target}; ls /etc/sysctl.d/") == after
