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
