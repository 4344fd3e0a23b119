"""kdiag doctor on facts collected inside real lab guests: collect.sh runs under the guest's
busybox at boot, and doctor judges each profile the way its failure deserves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kdiag.cli.main import run
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks

pytestmark = pytest.mark.e2e

BOOT = 400.0
PROFILES = ("default", "unprepared", "no-crashkernel", "panic-hang")
#: the checks that decide whether an NMI produces a dump and the machine comes back
NMI_CHECKS = (
    "kdump-supported",
    "crashkernel-reserved",
    "capture-kernel-loaded",
    "unknown-nmi-panic",
    "panic-reboot",
)


@pytest.fixture(scope="module")
def guest_facts(module_lab_root: Path) -> dict[str, Path]:
    """Every profile booted in parallel; the facts file each guest's collector produced."""
    from kdiag.lab import Lab

    lab = Lab(module_lab_root)
    guests = {p: lab.up(name=f"doc-{p}", profile=p, memory="512M", cpus=1) for p in PROFILES}
    out = {}
    try:
        for profile, guest in guests.items():
            guest.wait_ready(BOOT)
            assert guest.facts_path.is_file(), f"{profile}: the guest wrote no facts"
            out[profile] = guest.facts_path
    finally:
        for guest in guests.values():
            guest.down()
    return out


def statuses(path: Path) -> dict[str, str]:
    return {c.id: c.status for c in run_checks(facts.load(path), "nmi").checks}


def test_collector_output_is_a_facts_document(guest_facts: dict[str, Path]) -> None:
    for profile, path in guest_facts.items():
        data: dict[str, Any] = json.loads(path.read_text())
        assert data["schema"] == 1, profile
        assert data["kernel_release"], profile
        assert data["cpus"] == 1, profile
        assert data["mem_total_kb"] > 300_000, profile
        report = run_checks(facts.load(path))
        assert report.platform.hypervisor in ("kvm", "qemu"), report.platform


def test_default_passes_the_nmi_checks(
    guest_facts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    got = statuses(guest_facts["default"])
    assert {k: got[k] for k in NMI_CHECKS} == dict.fromkeys(NMI_CHECKS, "pass")
    run(["doctor", "--facts", str(guest_facts["default"]), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["platform"]["nmi_path"]


def test_unprepared_fails_unknown_nmi_panic(guest_facts: dict[str, Path]) -> None:
    got = statuses(guest_facts["unprepared"])
    assert got["unknown-nmi-panic"] == "fail"
    assert got["capture-kernel-loaded"] == "pass"
    assert got["panic-reboot"] == "pass"


def test_no_crashkernel_fails_crashkernel_reserved(
    guest_facts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    got = statuses(guest_facts["no-crashkernel"])
    assert got["crashkernel-reserved"] == "fail"
    assert got["capture-kernel-loaded"] == "fail"
    assert got["unknown-nmi-panic"] == "pass"
    assert run(["doctor", "--facts", str(guest_facts["no-crashkernel"])]) == 1
    capsys.readouterr()


def test_panic_hang_fails_panic_reboot(guest_facts: dict[str, Path]) -> None:
    got = statuses(guest_facts["panic-hang"])
    assert got["panic-reboot"] == "fail"
    assert got["unknown-nmi-panic"] == "pass"
