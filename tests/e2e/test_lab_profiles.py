"""One guest per failure profile, booted together; each shows the symptom it reproduces
after the same QMP NMI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

BOOT = 400.0
FAILURES = ("unprepared", "no-crashkernel", "panic-hang", "capture-hang")


@pytest.fixture(scope="module")
def nmi_guests(module_lab_root: Path) -> dict[str, Any]:
    """Every failure profile booted in parallel (1 vCPU each), all sent an NMI once ready."""
    from kdiag.lab import Lab

    lab = Lab(module_lab_root)
    guests = {p: lab.up(name=f"e2e-{p}", profile=p, memory="512M", cpus=1) for p in FAILURES}
    for guest in guests.values():
        guest.wait_ready(BOOT)
    offsets = {}
    for profile, guest in guests.items():
        offsets[profile] = guest.console_path.stat().st_size
        guest.inject_nmi()
    return {"guests": guests, "offsets": offsets}


def _events(guest: Any) -> list[str]:
    path = guest.directory / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_unprepared_logs_the_nmi_and_carries_on(nmi_guests: dict[str, Any]) -> None:
    guest = nmi_guests["guests"]["unprepared"]
    start = nmi_guests["offsets"]["unprepared"]
    # an NMI can be swallowed as a back-to-back NMI on x86; send another if none was logged
    for _ in range(3):
        try:
            guest.wait_console(r"NMI received for unknown reason", 60, start=start)
            break
        except TimeoutError:
            guest.inject_nmi()
    guest.wait_console(r"NMI received for unknown reason", 60, start=start)
    guest.wait_console(r"Dazed and confused, but trying to continue", 60, start=start)
    status = guest.status()
    assert status["phase"] == "ready"
    assert status["crashes"] == 0
    assert status["kdump_loaded"] is True
    assert guest.dumps() == []


def test_no_crashkernel_panics_without_a_dump(nmi_guests: dict[str, Any]) -> None:
    guest = nmi_guests["guests"]["no-crashkernel"]
    start = nmi_guests["offsets"]["no-crashkernel"]
    guest.wait_console(r"Kernel panic - not syncing: NMI: Not continuing", 120, start=start)
    assert "GUEST_PANICKED" in _events(guest)
    # panic=10 reboots it; it comes back, still without kdump, and nothing was saved
    guest.wait_ready(BOOT)
    status = guest.status()
    assert status["boots"] == 2
    assert status["kdump_loaded"] is False
    assert guest.dumps() == []
    assert "crashkernel=" not in guest.config["append"]


def test_panic_hang_stays_dead(nmi_guests: dict[str, Any]) -> None:
    guest = nmi_guests["guests"]["panic-hang"]
    start = nmi_guests["offsets"]["panic-hang"]
    guest.wait_console(r"Kernel panic - not syncing: NMI: Not continuing", 120, start=start)
    assert "GUEST_PANICKED" in _events(guest)
    # a machine with kernel.panic=10 would have rebooted within this wait; this one must not
    with pytest.raises(TimeoutError):
        guest.wait_console(r"LAB: first kernel", 30, start=start)
    status = guest.status()
    assert status["phase"] == "crashed"
    assert status["boots"] == 1
    assert guest.running
    assert guest.dumps() == []


def test_capture_hang_starts_the_capture_kernel_but_writes_nothing(
    nmi_guests: dict[str, Any],
) -> None:
    guest = nmi_guests["guests"]["capture-hang"]
    assert guest.wait_phase({"capture-hang"}, 240) == "capture-hang"
    assert "GUEST_CRASHLOADED" in _events(guest)
    with pytest.raises(TimeoutError):
        guest.wait_dump(20)
    assert guest.status()["phase"] == "capture-hang"
    assert guest.dumps() == []
