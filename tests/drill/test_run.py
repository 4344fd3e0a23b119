"""run_drill without QEMU: a real kdiag API on loopback (SigV4, policy, audit), the fake
backend standing in for the machine, and real crash dumps from the fixtures appearing in a
--dump-dir.  Each case must end with the diagnosis its evidence calls for."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from kdiag.backends.base import BackendPool
from kdiag.backends.fake import FakeBackend
from kdiag.drill import DrillLimits, history, run_drill, setup
from kdiag.errors import InvalidInstanceIDMalformed, InvalidInstanceIDNotFound
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import Instance, Store
from tests.conftest import fixtures_root

FAST = DrillLimits(quiet=2, settle=1, hang=1, poll=0.05, stable=0.5)
ANY_TIME = DrillLimits(quiet=2, settle=1, hang=1, poll=0.05, stable=0.5, clock_skew=10.0**10)


class Machine:
    """What the fake backend's NMI does: after a moment, a dump file appears."""

    def __init__(self, dump_dir: Path) -> None:
        self.dump_dir = dump_dir
        self.source: Path | None = None
        self.truncate: int | None = None
        self.nmis = 0

    def __call__(self, _target: Any) -> None:
        self.nmis += 1
        if self.source is not None:
            threading.Timer(0.3, self._write).start()

    def _write(self) -> None:
        assert self.source is not None
        out = self.dump_dir / f"127.0.0.1-{self.nmis}" / "vmcore"
        out.parent.mkdir()
        if self.truncate is None:
            shutil.copyfile(self.source, out)
        else:
            with open(self.source, "rb") as src:
                out.write_bytes(src.read(self.truncate))


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    dump_dir = tmp_path / "crash"
    dump_dir.mkdir()
    (dump_dir / "old").mkdir()
    shutil.copyfile(fixtures_root() / "sysrq-zlib" / "vmcore", dump_dir / "old" / "vmcore")
    machine = Machine(dump_dir)
    store = Store.open(f"sqlite:///{tmp_path}/kdiag.db", key_file=tmp_path / "kdiag.key")
    ctx = ServiceContext(store, backends=BackendPool({"fake": FakeBackend(handler=machine)}))
    try:
        with ServerThread(create_app(ctx)) as server:
            instance = store.add_instance(backend="fake", target={"address": "m1"})
            yield {
                "store": store,
                "url": server.url,
                "instance": instance,
                "machine": machine,
                "dump_dir": dump_dir,
            }
    finally:
        ctx.close()
        store.close()


def _drill(lab: dict[str, Any], limits: DrillLimits = FAST, **kw: Any) -> Any:
    return run_drill(
        lab["store"],
        lab["instance"].id,
        endpoint=lab["url"],
        timeout=kw.pop("timeout", 60),  # cases with a dump end when it is read
        dump_dir=lab["dump_dir"],
        limits=limits,
        **kw,
    )


def test_not_set_up_is_denied_and_sends_nothing(lab: dict[str, Any]) -> None:
    report = _drill(lab)
    assert report.diagnosis.code == "send-denied"
    assert "--setup" in report.diagnosis.fix
    assert lab["machine"].nmis == 0
    assert [s.status for s in report.steps] == ["warn", "fail", *["skipped"] * 4]


def test_policy_limits_the_drill_user_to_its_instances(lab: dict[str, Any]) -> None:
    store = lab["store"]
    setup(store, lab["instance"])
    other = store.add_instance(backend="fake", target={"address": "m2"})
    report = run_drill(store, other.id, endpoint=lab["url"], timeout=10, limits=FAST)
    assert report.diagnosis.code == "send-denied"
    assert report.evidence.send_error_code == "UnauthorizedOperation"
    assert lab["machine"].nmis == 0
    (row,) = store.audit_rows(instance_id=other.id)
    assert (row.outcome, row.principal.rsplit("/", 1)[-1]) == ("denied", "kdiag-drill")


def test_a_dump_in_the_dump_dir_passes(lab: dict[str, Any]) -> None:
    setup(lab["store"], lab["instance"])
    lab["machine"].source = fixtures_root() / "nmi-zlib" / "vmcore"
    report = _drill(lab, ANY_TIME)  # the fixture crashed long ago: any crash time is ours
    assert report.diagnosis.code == "ok", json.dumps(report.to_json(), indent=1)[:3000]
    steps = {s.name: s.status for s in report.steps}
    assert steps == {
        "readiness": "warn",
        "send": "pass",
        "panic": "skipped",
        "reboot": "skipped",
        "dump": "pass",
        "triage": "pass",
    }
    assert report.evidence.dump.path.endswith("127.0.0.1-1/vmcore")  # not the old one
    assert lab["machine"].nmis == 1
    (rec,) = history(lab["store"], lab["instance"].id)
    assert (rec.id, rec.verdict, rec.diagnosis) == (report.drill_id, "pass", "ok")
    # the drill's dump is in the dump catalog, with the drill as its source
    from kdiag.catalog import list_dumps

    (entry,) = list_dumps(lab["store"])
    assert entry.id == report.evidence.dump.catalog_id == rec.dump_id
    assert entry.klass == "nmi"
    assert report.evidence.dump.path in entry.paths


@pytest.mark.parametrize(
    ("fixture", "truncate", "limits", "code"),
    [
        ("nmi-zlib", None, FAST, "dump-not-ours"),  # crashed long before our send
        ("oops-null-zlib", None, ANY_TIME, "dump-not-ours"),  # another panic
        ("nmi-zlib", 300_000, ANY_TIME, "dump-truncated"),
        ("nmi-zlib", 100, ANY_TIME, "dump-unreadable"),
    ],
)
def test_bad_dumps_are_named(
    lab: dict[str, Any], fixture: str, truncate: int | None, limits: DrillLimits, code: str
) -> None:
    setup(lab["store"], lab["instance"])
    lab["machine"].source = fixtures_root() / fixture / "vmcore"
    lab["machine"].truncate = truncate
    report = _drill(lab, limits)
    assert report.diagnosis.code == code, report.diagnosis
    assert {s.name: s.status for s in report.steps}["triage"] == "fail"


def test_no_dump_times_out(lab: dict[str, Any]) -> None:
    setup(lab["store"], lab["instance"])
    t0 = time.monotonic()
    report = _drill(lab, timeout=2)
    assert time.monotonic() - t0 < 60  # the 2 s timeout, not the default 600 s (4.7 s here)
    assert report.diagnosis.code == "timeout"
    assert report.evidence.timed_out == "dump"


def test_send_failure_is_named(lab: dict[str, Any]) -> None:
    store = lab["store"]
    broken = store.add_instance(backend="fake", target={"address": "m3", "fail": "unavailable"})
    setup(store, broken)
    report = run_drill(store, broken.id, endpoint=lab["url"], timeout=10, limits=FAST)
    assert report.diagnosis.code == "send-failed"


def test_watch_follows_someone_elses_nmi(lab: dict[str, Any]) -> None:
    store = lab["store"]
    instance: Instance = lab["instance"]
    lab["machine"].source = fixtures_root() / "nmi-zlib" / "vmcore"
    oncall = store.create_user("oncall")
    store.put_user_policy(
        oncall,
        "nmi",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}
            ],
        },
    )
    key, secret = store.create_access_key(oncall)

    def send_later() -> None:
        time.sleep(1.0)
        boto3.session.Session().client(
            "ec2",
            endpoint_url=lab["url"],
            region_name="us-east-1",
            aws_access_key_id=key.id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
        ).send_diagnostic_interrupt(InstanceId=instance.id)

    sender = threading.Thread(target=send_later)
    sender.start()
    report = _drill(lab, ANY_TIME, watch_api=True)
    sender.join()
    assert report.diagnosis.code == "ok"
    send = report.steps[1]
    assert send.status == "pass"
    assert "sent by oncall" in send.detail
    assert lab["machine"].nmis == 1  # the drill itself sent nothing


def test_bad_instance_ids(lab: dict[str, Any]) -> None:
    with pytest.raises(InvalidInstanceIDMalformed):
        run_drill(lab["store"], "i-nope", endpoint=lab["url"])
    with pytest.raises(InvalidInstanceIDNotFound):
        run_drill(lab["store"], "i-0123456789abcdef0", endpoint=lab["url"])
    with pytest.raises(InvalidInstanceIDNotFound):  # another account's instance
        run_drill(lab["store"], lab["instance"].id, endpoint=lab["url"], account_id="999999999999")


def test_a_broken_progress_callback_does_not_break_the_drill(lab: dict[str, Any]) -> None:
    def explode(_event: Any) -> None:
        raise RuntimeError("display gone")

    report = _drill(lab, progress=explode)
    assert report.diagnosis.code == "send-denied"


def test_host_dump_through_libvirt_is_attempted_and_its_refusal_reported(
    lab: dict[str, Any], tmp_path: Path
) -> None:
    """A libvirt instance whose dump never appears: with --host-dump the drill asks libvirt
    for a kdump-zlib core dump.  libvirt's test driver refuses the memory-only flag, and
    that refusal must come back as the report's reason, typed, not as a crash."""
    from kdiag.backends.libvirt import LibvirtBackend

    store = lab["store"]
    ctx = ServiceContext(store, backends=BackendPool({"libvirt": LibvirtBackend()}))
    instance = store.add_instance(
        backend="libvirt", target={"uri": "test:///default", "domain": "test"}
    )
    setup(store, instance)
    with ServerThread(create_app(ctx)) as server:
        report = run_drill(
            store,
            instance.id,
            endpoint=server.url,
            timeout=2,
            dump_dir=lab["dump_dir"],
            limits=FAST,
            host_dump=True,
            host_dump_dir=tmp_path / "hd",
        )
    ctx.close()
    assert report.steps[1].status == "pass"  # the NMI went out through libvirt
    assert report.evidence.host_dump is None
    assert "unsupported flags" in (report.evidence.host_dump_error or "")
    from kdiag.drill import format_report

    assert "host-side dump: not taken: " in format_report(report)
