"""End to end through libvirt, as a user would do it: ``kdiag lab define`` puts a lab guest
into a (private, session-mode) libvirtd, ``kdiag instances add --backend libvirt --check``
registers it, ``kdiag send`` asks ``kdiag serve`` for SendDiagnosticInterrupt, the libvirt
backend calls ``injectNMI``, the guest panics and kdump writes a vmcore.  Then the domain is
shut off: ``kdiag send`` must fail with IncorrectInstanceState, never a success, and
``kdiag instances check`` must say ``stopped``.

One guest boot for the module (~10-50 s under TCG, depending on the host's load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.backends.base import Target
from kdiag.backends.libvirt import LibvirtSettings
from kdiag.cli import main as cli_main
from kdiag.drill.hostdump import take_libvirt_dump
from kdiag.drill.hypervisor_events import LibvirtEventWatch
from kdiag.drill.runner import read_dump
from kdiag.lab.build import BuildInfo
from kdiag.lab.domain import DomainFiles
from tests.peers.libvirtd import LabDomain, Libvirtd, running_libvirtd

pytestmark = pytest.mark.e2e

BOOT = 300.0
DUMP = 300.0
REGION = "us-east-1"
NAME = "lv-e2e"


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[Libvirtd]:
    with running_libvirtd() as daemon:
        yield daemon


def _cli(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    rc = cli_main.run(list(args))
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    return out, err


def _define_and_boot(
    libvirtd: Libvirtd, lab_build: BuildInfo, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, str], LabDomain]:
    """``kdiag lab define`` into the daemon's directory, handed to the daemon's user (a
    user's own session daemon needs no chown), then started with the peer's ``virsh``."""
    root = libvirtd.root / "lab"
    root.mkdir(mode=0o700)
    out, err = _cli(
        capsys,
        "lab", "define", "--name", NAME, "--libvirt-uri", libvirtd.uri, "--root", str(root),
        "--memory", "512M", "--cpus", "1", "--no-start",
    )  # fmt: skip
    target = json.loads(out)
    assert target == {"uri": libvirtd.uri, "domain": NAME}
    assert f"{NAME}: defined in" in err
    for path in [root, *root.rglob("*")]:
        os.chown(path, libvirtd.uid, libvirtd.gid)
    started = libvirtd.virsh("start", NAME)
    assert started.returncode == 0, started.stderr
    directory = root / NAME
    files = DomainFiles(directory, directory / "vmlinuz", directory / "initrd.img")
    domain = LabDomain(libvirtd.uri, NAME, files)
    line = domain.wait_ready(BOOT)
    assert "kdump_loaded=1" in line
    return target, domain


def _kdiag_send(
    url: str, key: tuple[str, str], instance_id: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "AWS_ACCESS_KEY_ID": key[0],
        "AWS_SECRET_ACCESS_KEY": key[1],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "KDIAG_ENDPOINT": url,
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("kdiag")), "send", instance_id, "--verbose"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _events_and_host_dump(
    libvirtd: Libvirtd,
    watch: LibvirtEventWatch,
    settings: LibvirtSettings,
    instance_id: str,
    target: dict[str, str],
) -> None:
    """After the capture the guest reboots: libvirt's REBOOT event must reach the drill's
    watch (the lab domain has no pvpanic, so no CRASHED event: see kdiag.lab.domain); then
    ``--host-dump``'s libvirt path on this real domain must give a readable kdump file."""
    deadline = time.monotonic() + DUMP
    while watch.resets == 0 and time.monotonic() < deadline:
        watch.poll()
        time.sleep(0.2)
    assert watch.resets >= 1, watch.excerpt
    assert "libvirt event REBOOT" in watch.excerpt
    assert not watch.powered_off
    out_dir = libvirtd.root / "hostdump"
    out_dir.mkdir(mode=0o700)
    os.chown(out_dir, libvirtd.uid, libvirtd.gid)  # libvirtd (its user) writes the file
    path = take_libvirt_dump(settings, Target(instance_id, dict(target)), out_dir / "vmcore")
    assert path.stat().st_mode & 0o777 == 0o600
    found = read_dump(path, "host")
    assert found.error is None, found
    with open(path, "rb") as fh:  # libvirt writes kdump-zlib in makedumpfile's flat form
        assert fh.read(12) == b"makedumpfile"
    assert (found.format, found.complete) == ("qemu-kdump", True), found


def test_kdiag_send_through_libvirt_produces_a_vmcore_and_a_shut_off_domain_is_refused(
    libvirtd: Libvirtd,
    lab_build: BuildInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kdiag.backends.base import BackendPool
    from kdiag.service import ServiceContext, create_app
    from kdiag.service.server import ServerThread
    from kdiag.store import Store

    target, domain = _define_and_boot(libvirtd, lab_build, capsys)
    db = f"sqlite:///{tmp_path}/kdiag.db"
    out, err = _cli(
        capsys, "instances", "add", "--backend", "libvirt", "--target", json.dumps(target),
        "--check", "--tag", "lab=libvirt", "--db", db,
    )  # fmt: skip
    instance_id = out.strip()
    assert "checked: state running; NMI supported" in err

    with Store.open(db, key_file=tmp_path / "kdiag.key") as store:
        oncall = store.create_user("oncall")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}
            ],
        }
        store.put_user_policy(oncall, "nmi", json.dumps(policy))
        key, secret = store.create_access_key(oncall)
        ctx = ServiceContext(store, regions=(REGION,), backends=BackendPool())
        # the drill's libvirt event watch, riding along on this test's one NMI and boot
        settings = LibvirtSettings.parse(target)
        watch = LibvirtEventWatch(settings, Target(instance_id, dict(target)), None)
        watch.start()
        try:
            with ServerThread(create_app(ctx)) as server:
                sent = _kdiag_send(server.url, (key.id, secret), instance_id)
                assert sent.returncode == 0, sent.stderr
                assert "the hypervisor accepted a diagnostic interrupt" in sent.stderr
                vmcore = domain.wait_dump(DUMP)

                assert vmcore.read_bytes()[:8] == b"KDUMP   "
                dmesg = (vmcore.parent / "dmesg.txt").read_text(errors="replace")
                assert "Kernel panic - not syncing: NMI: Not continuing" in dmesg
                rows = store.audit_rows(instance_id=instance_id)
                assert [(r.outcome, r.backend) for r in rows] == [("sent", "libvirt")]
                _events_and_host_dump(libvirtd, watch, settings, instance_id, target)

                # the guest reboots after the dump: power it off and try again
                domain.destroy()
                refused = _kdiag_send(server.url, (key.id, secret), instance_id)
                assert refused.returncode == 4, refused.stderr
                assert "IncorrectInstanceState" in refused.stderr
                assert "stopped" in refused.stderr
            deadline = time.monotonic() + 30
            while not watch.powered_off and time.monotonic() < deadline:
                watch.poll()
                time.sleep(0.2)
            assert watch.powered_off, watch.excerpt  # the destroy: a STOPPED event
        finally:
            watch.close()
            ctx.close()
        outcomes = [r.outcome for r in store.audit_rows(instance_id=instance_id)]
        assert outcomes[0] == "sent"
        assert "sent" not in outcomes[1:]

    out, _ = _cli(capsys, "instances", "check", instance_id, "--db", db, code=1)
    assert out == f"{instance_id} (libvirt): state stopped; NMI supported\n"
