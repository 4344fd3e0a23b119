"""A real Debian 12 guest (systemd, linux-image-amd64, Debian's kdump-tools) in the lab:
doctor on the facts gathered inside it, and `kdiag drill` through the API on four guests.

Four guests from the cached images, at most two running at a time (two lanes, each guest
stopped before its lane starts the next):

- lane 1: ``configured`` (``kdiag configure --root`` applied before the image was made):
  doctor passes; ``kdiag drill`` (the CLI) passes: NMI, kdump-tools' capture, reboot, the new
  ``/var/crash/<stamp>/dump.<stamp>`` copied out of the running guest and triaged as our NMI.
  Then ``panic-0`` (configured, then kdump-tools off and ``kernel.panic=0`` in its disk copy):
  the drill says the machine stays down, from the evidence, long before its timeout.
- lane 2: ``fresh`` (as Debian leaves it after ``apt-get install kdump-tools``): doctor fails
  exactly what is missing; the drill fails with ``nmi-ignored``. Then ``unreachable-target``
  (configured, then kdump-tools' NFS target set to an address the capture kernel cannot
  reach): the drill says the capture failed and, with ``--host-dump``, still delivers a dump
  of the NMI panic, taken from the host while the capture kernel ran.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdiag.cli.main import run
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks
from tests.conftest import REPO, require_tool

pytestmark = pytest.mark.e2e

#: a Debian boot to multi-user under TCG on this loaded 2-core host takes minutes
BOOT = 900.0
#: a drill through a capture: NMI, the capture kernel's systemd boot, the save (or the
#: failure), the next systemd boot
DRILL_TIMEOUT = 900.0
#: how long a drill waits for a first sign before it sends the NMI again: with kdump loaded
#: the kernel jumps into the capture kernel at once, and nothing shows on the console until
#: that kernel's serial console is up (tens of seconds under TCG on a loaded host)
QUIET = 60.0
#: a drill that ends without a reboot (nmi-ignored, panic-0): it concludes from the evidence
#: within a minute of the send, so its time limit can be short
FAST_TIMEOUT = 300.0
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
LANES = (("configured", "panic-0"), ("fresh", "unreachable-target"))


def _kdiag_drill(state: Path, instance_id: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KDIAG_"))}
    env["KDIAG_STATE_DIR"] = str(state)
    kdiag = str(Path(sys.executable).parent / "kdiag")
    return subprocess.run(
        [kdiag, "drill", instance_id, "--json", "--timeout", str(DRILL_TIMEOUT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=DRILL_TIMEOUT + 120,
        check=False,
    )


class Lanes:
    """The four guests, two lanes of two; every result or error kept for the tests."""

    def __init__(self, root: Path, info: Any, store: Any, url: str) -> None:
        from kdiag.lab import Lab

        self.lab = Lab(root)
        self.info = info
        self.store = store
        self.url = url
        self.state = root / "state"
        self.host_dumps = root / "hd"
        self.guests: dict[str, Any] = {}
        self.instances: dict[str, Any] = {}
        self.reports: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.progress: dict[str, list[Any]] = {}
        self.seconds: dict[str, int] = {}

    def _api(self, variant: str, **kw: Any) -> Any:
        from kdiag.drill import DrillLimits, run_drill

        self.progress[variant] = []
        return run_drill(
            self.store,
            self.instances[variant].id,
            endpoint=self.url,
            timeout=FAST_TIMEOUT if variant in ("fresh", "panic-0") else DRILL_TIMEOUT,
            limits=DrillLimits(quiet=QUIET, settle=8, hang=15),
            progress=self.progress[variant].append,
            **kw,
        )

    def _drill(self, variant: str) -> Any:
        if variant == "configured":  # through the CLI, as a user would
            return _kdiag_drill(self.state, self.instances[variant].id)
        if variant == "unreachable-target":
            return self._api(variant, host_dump=True, host_dump_dir=self.host_dumps)
        return self._api(variant)

    def one(self, variant: str) -> None:
        from kdiag.drill import setup
        from kdiag.lab.distro import debian_up

        t0 = time.monotonic()
        guest = debian_up(self.lab, f"deb-{variant}", variant, memory=512, cpus=1, build=self.info)
        self.guests[variant] = guest
        try:
            guest.wait_ready(BOOT)
            self.seconds[f"{variant} boot"] = round(time.monotonic() - t0)
            address = str(guest.qmp_socket)
            self.instances[variant] = self.store.add_instance(
                backend="qmp", target={"address": address}
            )
            setup(self.store, self.instances[variant])
            t1 = time.monotonic()
            self.reports[variant] = self._drill(variant)
            self.seconds[f"{variant} drill"] = round(time.monotonic() - t1)
        finally:
            guest.down()

    def lane(self, variants: tuple[str, ...]) -> None:
        for variant in variants:
            try:
                self.one(variant)
            except Exception as exc:  # noqa: BLE001 - raised by the tests that need it
                self.errors[variant] = exc


@pytest.fixture(scope="module")
def debian(module_lab_root: Path) -> Iterator[Lanes]:
    for tool in ("debootstrap", "mkfs.ext4", "debugfs", "qemu-system-x86_64"):
        require_tool(tool)
    from kdiag.backends.base import BackendPool
    from kdiag.lab.distro import build_debian
    from kdiag.service import ServiceContext, create_app
    from kdiag.service.server import ServerThread
    from kdiag.store import Store

    info = build_debian()
    state = module_lab_root / "state"
    state.mkdir(mode=0o700)
    store = Store.open(f"sqlite:///{state}/kdiag.db", key_file=state / "kdiag.key")
    ctx = ServiceContext(store, regions=("us-east-1",), backends=BackendPool())
    t0 = time.monotonic()
    lanes = None
    try:
        with ServerThread(create_app(ctx)) as server:
            lanes = Lanes(module_lab_root, info, store, server.url)
            threads = [threading.Thread(target=lanes.lane, args=(v,)) for v in LANES]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        lanes.seconds["module"] = round(time.monotonic() - t0)
        print(f"\ndebian build {info.seconds:.1f} s (cached={info.cached}); {lanes.seconds}")
        yield lanes
    finally:
        for guest in lanes.guests.values() if lanes else ():
            guest.down()
        ctx.close()
        store.close()


def _report(debian: Lanes, variant: str) -> Any:
    if variant in debian.errors:
        raise debian.errors[variant]
    return debian.reports[variant]


def _text(report: Any) -> str:
    return json.dumps(report.to_json(), indent=1)[:6000]


def statuses(path: Path) -> dict[str, str]:
    return {c.id: c.status for c in run_checks(facts.load(path), "nmi").checks}


def test_fresh_debian_doctor_names_exactly_what_is_missing(
    debian: Lanes, capsys: pytest.CaptureFixture[str]
) -> None:
    _report(debian, "fresh")
    guest = debian.guests["fresh"]
    data = json.loads(guest.facts_path.read_text())
    assert data["kernel_release"] == debian.info.kernel_release
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


def test_configured_debian_passes_the_nmi_checks_with_kdump_tools_active(
    debian: Lanes, capsys: pytest.CaptureFixture[str]
) -> None:
    _report(debian, "configured")
    guest = debian.guests["configured"]
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
    assert "kdump_loaded=1 kdump_tools=active" in ready[0]
    assert run(["doctor", "--facts", str(guest.facts_path)]) == 0
    capsys.readouterr()


def test_configured_debian_passes_the_drill(debian: Lanes) -> None:
    done = _report(debian, "configured")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    text = done.stdout[-4000:] + done.stderr[-3000:]
    assert report["verdict"] == "pass", text
    assert report["diagnosis"]["code"] == "ok", text
    steps = {s["name"]: s["status"] for s in report["steps"]}
    assert steps == dict.fromkeys(
        ("readiness", "send", "panic", "reboot", "dump", "triage"), "pass"
    )
    ev = report["evidence"]
    assert ev["observer"] == "lab"
    assert ev["capture_started"], text  # the capture kernel booted (kdump-tools-dump)
    assert ev["boot_after"] > ev["boot_before"], text
    assert ev["ready_again"], text
    dump = ev["dump"]
    guest = debian.guests["configured"]
    # kdump-tools' own file, from the guest's /var/crash, copied into the crash tree
    path = Path(dump["path"])
    assert path.parent.parent == guest.crash_dir, text
    assert path.name == f"dump.{path.parent.name[-12:]}", text
    assert path.stat().st_mode & 0o077 == 0
    assert dump["panic_class"] == "nmi", text
    assert dump["complete"] is True, text
    assert dump["release"] == ev["readiness"]["release"] == debian.info.kernel_release
    # the crash time is the guest's clock in whole seconds (it drifts under TCG)
    crashed = dt.datetime.fromisoformat(dump["crash_time"])
    sent = dt.datetime.fromisoformat(ev["sent_at"])
    assert crashed >= sent - dt.timedelta(seconds=5), (crashed, sent)
    assert ev["host_dump"] is None
    assert "serving the API for this drill" in done.stderr


def test_fresh_debian_drill_fails_nmi_ignored(debian: Lanes) -> None:
    report = _report(debian, "fresh")
    text = _text(report)
    assert report.diagnosis.code == "nmi-ignored", text
    assert not report.passed
    ev = report.evidence
    assert ev.nmi_unknown, text
    assert not ev.panic_seen, text
    assert ev.readiness.unknown_nmi_panic == "0"
    assert "unknown_nmi_panic" in report.diagnosis.summary
    assert ev.timed_out is None, text


def test_panic_0_debian_drill_says_the_machine_stays_down(debian: Lanes) -> None:
    report = _report(debian, "panic-0")
    text = _text(report)
    assert report.diagnosis.code == "no-reboot-panic-0", text
    ev = report.evidence
    assert ev.readiness.panic_timeout == "0", text
    assert ev.readiness.kdump_loaded is False, text  # USE_KDUMP=0: nothing loaded
    assert ev.panic_seen, text
    assert not ev.capture_started, text
    assert not ev.rebooted, text
    steps = {s.name: s for s in report.steps}
    assert steps["reboot"].status == "fail", text
    assert "kernel.panic=0" in steps["reboot"].detail, text
    # concluded from the evidence (the hang limit), not by running out of time
    assert ev.timed_out is None, text
    assert "kernel.panic=0" in report.diagnosis.summary


def test_unreachable_target_debian_drill_says_capture_failed_and_has_a_host_dump(
    debian: Lanes,
) -> None:
    from kdiag import vmcore
    from kdiag.drill import format_report
    from kdiag.vmcore.triage import triage

    report = _report(debian, "unreachable-target")
    text = _text(report)
    assert report.diagnosis.code == "capture-failed", text
    ev = report.evidence
    assert ev.capture_started, text
    assert ev.rebooted, text  # kdump-tools reboots after the failed save
    assert ev.capture_failed is not None, text
    assert "192.0.2.1:/srv/crash" in ev.capture_failed, text  # kdump-tools' own line
    assert ev.dump is None, text
    host = ev.host_dump
    assert host is not None, ev.host_dump_error
    assert host.origin == "host"
    assert host.error is None, text
    path = Path(host.path)
    assert path.is_relative_to(debian.host_dumps)
    assert path.stat().st_mode & 0o777 == 0o600
    with vmcore.open(path) as dump:  # an independent read: the first kernel's NMI panic
        t = triage(dump)
    assert t.panic.klass == "nmi"
    assert t.release == ev.readiness.release == debian.info.kernel_release
    assert "host-side dump" in format_report(report)
