"""`kdiag drill` on real lab guests: one guest per profile, all booted and drilled at once.

The default guest is drilled through the CLI (`kdiag drill ID --json`, the API served by the
drill itself on loopback); the failure profiles through :func:`kdiag.drill.run_drill`
against a `kdiag serve`-equivalent server thread, each with tight waits.  Every drill goes
through SigV4 and the drill user's policy; each must end with the diagnosis that names its
profile's cause (docs/lab.md's profile table is the oracle).  capture-hang runs with
--host-dump: QEMU's dump-guest-memory must give a readable dump of the NMI panic.
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

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

BOOT = 400.0
PROFILES = ("default", "unprepared", "no-crashkernel", "panic-hang", "capture-hang")
EXPECTED = {
    "default": "ok",
    "unprepared": "nmi-ignored",
    "no-crashkernel": "no-dump-no-reservation",
    "panic-hang": "no-reboot-panic-0",
    "capture-hang": "no-reboot-capture-hang",
}


def _kdiag_drill(state: Path, instance_id: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KDIAG_"))}
    env["KDIAG_STATE_DIR"] = str(state)
    return subprocess.run(
        [str(Path(sys.executable).parent / "kdiag"), "drill", instance_id, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
        check=False,
    )


def _in_threads(work: Any, items: tuple[str, ...]) -> None:
    """Run ``work(item)`` for every item at once; the first failure is raised after all end."""
    errors: list[Exception] = []

    def one(item: str) -> None:
        try:
            work(item)
        except Exception as exc:  # noqa: BLE001 - raised below, once every thread is done
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def drills(module_lab_root: Path) -> Iterator[dict[str, Any]]:
    """Boot every profile's guest in parallel, then drill them all in parallel."""
    from kdiag.backends.base import BackendPool
    from kdiag.drill import DrillLimits, run_drill, setup
    from kdiag.lab import Lab
    from kdiag.service import ServiceContext, create_app
    from kdiag.service.server import ServerThread
    from kdiag.store import Store

    t0 = time.monotonic()
    lab = Lab(module_lab_root)
    # Lab.up returns once QEMU runs (a few seconds each); the boots then run concurrently
    guests = {p: lab.up(name=f"dr-{p}", profile=p, memory="512M", cpus=1) for p in PROFILES}
    _in_threads(lambda p: guests[p].wait_ready(BOOT), PROFILES)
    booted = time.monotonic() - t0

    state = module_lab_root / "state"
    state.mkdir(mode=0o700)
    store = Store.open(f"sqlite:///{state}/kdiag.db", key_file=state / "kdiag.key")
    instances = {
        p: store.add_instance(backend="qmp", target={"address": str(g.qmp_socket)})
        for p, g in guests.items()
    }
    for instance in instances.values():
        setup(store, instance)
    reports: dict[str, Any] = {}
    progress: dict[str, list[Any]] = {p: [] for p in PROFILES}
    ctx = ServiceContext(store, regions=("us-east-1",), backends=BackendPool())

    def drill(profile: str) -> None:
        if profile == "default":
            reports[profile] = _kdiag_drill(state, instances[profile].id)
            return
        reports[profile] = run_drill(
            store,
            instances[profile].id,
            endpoint=server.url,
            timeout=240,
            limits=DrillLimits(quiet=20, settle=8, hang=15),
            host_dump=profile == "capture-hang",
            host_dump_dir=module_lab_root / "host-dumps",
            progress=progress[profile].append,
        )

    try:
        with ServerThread(create_app(ctx)) as server:
            _in_threads(drill, PROFILES)
        yield {
            "reports": reports,
            "progress": progress,
            "instances": instances,
            "store": store,
        }
    finally:
        ctx.close()
        store.close()
        print(
            f"\ndrill module: booted in {booted:.0f} s, all done in {time.monotonic() - t0:.0f} s"
        )


def test_default_passes_through_the_cli(drills: dict[str, Any]) -> None:
    done = drills["reports"]["default"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["verdict"] == "pass"
    assert report["diagnosis"]["code"] == "ok"
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["readiness", "send", "panic", "reboot", "dump", "triage"]
    assert all(s["status"] == "pass" and s["seconds"] is not None for s in steps.values())
    dump = report["evidence"]["dump"]
    assert dump["panic_class"] == "nmi"
    assert dump["release"] == report["evidence"]["readiness"]["release"]
    # the crash time is the guest's clock in whole seconds, which drifts from the host's under
    # TCG (a dump stamped 1.1 s before the send was seen): after our send, within that drift
    crashed = dt.datetime.fromisoformat(dump["crash_time"])
    sent = dt.datetime.fromisoformat(report["evidence"]["sent_at"])
    assert crashed >= sent - dt.timedelta(seconds=5), (crashed, sent)
    assert report["evidence"]["boot_after"] > report["evidence"]["boot_before"]
    assert Path(dump["path"]).stat().st_mode & 0o077 == 0
    # plain progress lines on stderr (not a terminal), the API served for the drill
    assert "serving the API for this drill" in done.stderr
    assert "reboot: pass" in done.stderr
    # the send went through the API as the drill's user: an audit row says so
    guest_rows = drills["store"].audit_rows(instance_id=drills["instances"]["default"].id)
    assert [(r.outcome, r.principal.rsplit("/", 1)[-1]) for r in guest_rows] == [
        ("sent", "kdiag-drill")
    ]


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "default"])
def test_each_failure_profile_gets_its_diagnosis(drills: dict[str, Any], profile: str) -> None:
    report = drills["reports"][profile]
    text = json.dumps(report.to_json(), indent=1)[:4000]
    assert report.diagnosis.code == EXPECTED[profile], text
    assert report.diagnosis.verdict == "fail"
    assert not report.passed
    steps = {s.name: s for s in report.steps}
    assert steps["send"].status == "pass"
    assert report.evidence.dump is None
    # the progress callback saw every step start and end
    events = drills["progress"][profile]
    assert [e.step for e in events if e.kind == "done"] == [s.name for s in report.steps]


def test_unprepared_evidence(drills: dict[str, Any]) -> None:
    ev = drills["reports"]["unprepared"].evidence
    assert ev.nmi_unknown
    assert not ev.panic_seen
    assert ev.readiness.unknown_nmi_panic == "0"
    assert "unknown_nmi_panic" in drills["reports"]["unprepared"].diagnosis.summary


def test_capture_hang_host_dump_is_readable_and_labelled(drills: dict[str, Any]) -> None:
    from kdiag import vmcore
    from kdiag.drill import format_report
    from kdiag.vmcore.triage import triage

    report = drills["reports"]["capture-hang"]
    host = report.evidence.host_dump
    assert host is not None, report.evidence.host_dump_error
    assert host.origin == "host"
    assert host.error is None
    path = Path(host.path)
    assert path.stat().st_mode & 0o777 == 0o600
    # an independent read of the file: the first kernel's NMI panic, the facts' release
    with vmcore.open(path) as dump:
        t = triage(dump)
    assert t.format == "qemu-kdump"
    assert t.panic.klass == "nmi"
    assert t.release == report.evidence.readiness.release
    text = format_report(report)
    assert "host-side dump (QEMU dump-guest-memory, kdump-zlib)" in text
    assert "the machine's own dump" not in text


def test_every_drill_is_in_the_history(drills: dict[str, Any]) -> None:
    from kdiag.drill import history

    records = history(drills["store"])
    by_instance = {r.instance_id: r for r in records}
    for profile, instance in drills["instances"].items():
        rec = by_instance[instance.id]
        assert rec.diagnosis == EXPECTED[profile]
        assert rec.verdict == ("pass" if profile == "default" else "fail")
        assert [s.name for s in rec.steps][:2] == ["readiness", "send"]
    assert by_instance[drills["instances"]["capture-hang"].id].host_dump_path
