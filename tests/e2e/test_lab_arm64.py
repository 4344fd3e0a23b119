"""An arm64 guest made by the suite itself: Debian's arm64 kernel under
``qemu-system-aarch64 -M virt`` (TCG), kdump armed through the ``_text`` workaround, QEMU
refusing ``inject-nmi`` (the qmp backend says UnsupportedOperation), SysRq-c panicking it and
the capture kernel saving a vmcore that kdiag.vmcore reads as an arm64 sysrq crash.

Independent of the x86_64 guests: its own build (``--arch arm64``) and lab root. Measured
times are printed (``-s`` shows them): about 13 s to ready and 23 s from SysRq-c to the
saved dump on the 2-core reference machine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.cli import main as cli_main
from kdiag.errors import BackendError, NMINotSupported
from kdiag.lab import Lab
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks
from kdiag.vmcore.triage import triage
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

BOOT = 240.0
DUMP = 240.0


@pytest.fixture(scope="module")
def arm64_root() -> Iterator[Path]:
    for tool in ("qemu-system-aarch64", "apt-get", "dpkg-deb", "depmod", "mkfs.ext4", "debugfs"):
        require_tool(tool)
    root = Path(tempfile.mkdtemp(prefix="kdl-a-", dir="/tmp"))
    Lab(root).build(arch="arm64")
    yield root
    for guest in Lab(root).list():
        guest.down()
    shutil.rmtree(root, ignore_errors=True)


def test_arm64_guest_sysrq_to_vmcore(arm64_root: Path, capsys: pytest.CaptureFixture[str]) -> None:

    lab = Lab(arm64_root)
    started = time.monotonic()
    guest = lab.up(name="e2e-arm64", profile="default", memory="1G", cpus=2, arch="arm64")
    guest.wait_ready(BOOT)
    ready_s = time.monotonic() - started
    assert (guest.arch, guest.accel) == ("arm64", "tcg")
    assert guest.config["kernel_release"].endswith("-arm64")
    assert guest.status()["kdump_loaded"] is True
    console = guest.console_path.read_text(errors="replace")
    # the guest's /init gave kexec -p the _text Debian's arm64 kallsyms lacks
    assert "T _text (_stext=" in console
    assert "Can't get the symbol of _text" not in console
    # the copy stays mounted, so the guest's own facts show _text and doctor passes the check
    armed = run_checks(facts.load(guest.facts_path), "nmi").get("kexec-text-symbol")
    assert armed.status == "pass", armed

    # QEMU 7.2 refuses inject-nmi on -M virt: the backend says so, nothing is pretended
    with pytest.raises(NMINotSupported) as refused:
        guest.inject_nmi()
    assert refused.value.code == "UnsupportedOperation"
    assert guest.phase == "ready"

    triggered = time.monotonic()
    guest.trigger("sysrq-c")
    vmcore = guest.wait_dump(DUMP)
    dump_s = time.monotonic() - triggered
    with capsys.disabled():  # shown with -s: the numbers docs/lab.md quotes
        print(f"\narm64 guest: ready in {ready_s:.1f} s, sysrq-c to saved dump {dump_s:.1f} s")

    assert vmcore.read_bytes()[:8] == b"KDUMP   "
    with kdiag.vmcore.open(vmcore) as dump:
        result = triage(dump)
        log = kdiag.vmcore.format_dmesg(dump.kernel_log())
    assert (result.arch, result.machine) == ("arm64", "aarch64")
    assert result.release == guest.config["kernel_release"]
    assert result.nodename == "e2e-arm64"
    assert result.cpus == 2
    assert result.complete
    assert result.panic.klass == "sysrq"
    assert result.panic.message == "Kernel panic - not syncing: sysrq triggered crash"
    # the reader's log equals the one makedumpfile wrote in the capture kernel
    assert log == (vmcore.parent / "dmesg.txt").read_text(errors="replace")
    # and what a user runs says the same
    capsys.readouterr()
    assert cli_main.run(["analyze", str(vmcore), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["arch"], report["release"]) == ("arm64", guest.config["kernel_release"])
    assert report["panic"]["class"] == "sysrq"


def test_arm64_text_trap_loads_kdump_and_saves_no_dump(arm64_root: Path) -> None:
    """Without the workaround (profile text-trap) the machine looks armed (kexec -p exits 0,
    kexec_crash_loaded = 1, in the facts too) and a crash saves nothing: the lab says so
    rather than counting a dump."""
    guest = Lab(arm64_root).up(
        name="e2e-arm64-trap", profile="text-trap", memory="1G", cpus=2, arch="arm64"
    )
    guest.wait_ready(BOOT)
    assert guest.status()["kdump_loaded"] is True
    assert str(json.loads(guest.facts_path.read_text())["kexec_crash_loaded"]) == "1"
    console = guest.console_path.read_text(errors="replace")
    assert "LAB: kexec -p rc=0" in console
    assert "Can't get the symbol of _text" in console
    # doctor on the guest's published facts recognises the trap
    trap = run_checks(facts.load(guest.facts_path), "nmi").get("kexec-text-symbol")
    assert trap.status == "fail", trap
    assert "no _text" in trap.evidence
    assert "mount --bind" in trap.fix

    guest.trigger("sysrq-c")
    with pytest.raises(BackendError, match="saved no dump"):
        guest.wait_dump(DUMP)
    status = guest.status()
    assert (status["dumps"], status["capture_failures"]) == (0, 1)
    evidence = Path(status["last_failed_capture"])
    assert json.loads((evidence / "capture.json").read_text())["dumps"][0]["rc"] != 0
    assert guest.dumps() == []
    assert "makedumpfile Failed" in guest.console_path.read_text(errors="replace")
