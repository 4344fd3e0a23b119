"""A real Debian 12 guest (systemd, linux-image-amd64, Debian's kdump-tools) in the lab.

Two guests boot at once from the cached images: ``fresh`` (as Debian leaves it after
``apt-get install kdump-tools``) and ``configured`` (``kdiag configure --root`` applied to
the tree before the image was made). Doctor judges the facts collect.sh gathered inside each
guest at boot. The NMI -> kdump-tools capture -> reboot cycle takes minutes under TCG here (two
more full systemd boots), so it is measured by bench/debian_lab.py rather than run by make test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdiag.cli.main import run
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

#: a Debian boot to multi-user under TCG on this loaded 2-core host takes minutes
BOOT = 900.0
NMI_CHECKS = (
    "kdump-supported",
    "crashkernel-reserved",
    "capture-kernel-loaded",
    "unknown-nmi-panic",
    "panic-reboot",
)
#: what doctor must fail on Debian 12 as it is left after installing kdump-tools: the
#: kernel ignores an unknown NMI (unknown_nmi_panic=0) and never reboots after a panic
#: (kernel.panic=0); the capture path itself (reservation, kdump-tools, makedumpfile) is set.
FRESH_FAILING = {"unknown-nmi-panic", "panic-reboot"}


@pytest.fixture(scope="module")
def debian_guests(module_lab_root: Path) -> Iterator[dict[str, Any]]:
    for tool in ("debootstrap", "mkfs.ext4", "debugfs", "qemu-system-x86_64"):
        require_tool(tool)
    from kdiag.lab import Lab
    from kdiag.lab.distro import build_debian, debian_up

    started = time.monotonic()
    info = build_debian()
    lab = Lab(module_lab_root)
    guests: dict[str, Any] = {}
    boot_seconds: dict[str, float] = {}
    errors: list[BaseException] = []

    def boot(variant: str) -> None:
        t0 = time.monotonic()
        try:
            guest = debian_up(lab, f"deb-{variant}", variant, memory=512, cpus=1)
            guests[variant] = guest
            guest.wait_ready(BOOT)
            boot_seconds[variant] = time.monotonic() - t0
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(v,)) for v in ("fresh", "configured")]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        print(f"debian build {info.seconds:.1f} s (cached={info.cached}); boots {boot_seconds}")
        yield {"info": info, "guests": guests, "boot": boot_seconds, "start": started}
    finally:
        for guest in guests.values():
            guest.down()


def statuses(path: Path) -> dict[str, str]:
    return {c.id: c.status for c in run_checks(facts.load(path), "nmi").checks}


def test_fresh_debian_doctor_names_exactly_what_is_missing(
    debian_guests: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    guest = debian_guests["guests"]["fresh"]
    data = json.loads(guest.facts_path.read_text())
    assert data["kernel_release"] == debian_guests["info"].kernel_release
    assert "crashkernel=384M-:128M" in data["cmdline"]  # kdump-tools' grub.d default
    got = statuses(guest.facts_path)
    assert {k for k, v in got.items() if v == "fail"} == FRESH_FAILING
    # the capture path Debian set up is really there: reserved, loaded by kdump-tools
    assert {k: got[k] for k in ("crashkernel-reserved", "capture-kernel-loaded")} == {
        "crashkernel-reserved": "pass",
        "capture-kernel-loaded": "pass",
    }
    assert run(["doctor", "--facts", str(guest.facts_path)]) == 1
    out = capsys.readouterr().out
    for check in FRESH_FAILING:
        assert check in out
    status = guest.status()
    assert status["kdump_loaded"] is True


def test_configured_debian_passes_the_nmi_checks_with_kdump_tools_active(
    debian_guests: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    guest = debian_guests["guests"]["configured"]
    data = json.loads(guest.facts_path.read_text())
    # the lab booted what update-grub would: kdump-tools' crashkernel= then kdiag's, last wins
    assert data["cmdline"].split()[-1].startswith("crashkernel=512M-2G:192M")
    got = statuses(guest.facts_path)
    assert {k: got[k] for k in NMI_CHECKS} == dict.fromkeys(NMI_CHECKS, "pass")
    assert got["kdump-service"] == "pass"
    assert "fail" not in got.values(), {k: v for k, v in got.items() if v == "fail"}
    # systemctl is-active inside the guest, not a file doctor read
    ready = [
        line
        for line in guest.console_path.read_text(errors="replace").splitlines()
        if "LAB: LAB-READY" in line
    ]
    assert ready
    assert "kdump_loaded=1 kdump_tools=active" in ready[-1]
    assert run(["doctor", "--facts", str(guest.facts_path)]) == 0
    capsys.readouterr()
