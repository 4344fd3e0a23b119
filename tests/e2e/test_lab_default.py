"""The full cycle a cloud user sees, on a real kernel under QEMU: the guest is ready, a QMP
NMI panics it, kdump saves a vmcore into the crash tree, and the guest comes back ready."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.cli import main as cli_main
from kdiag.lab import Guest, Lab
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

BOOT = 300.0
DUMP = 300.0
NAME = "e2e-default"
PANIC = "Kernel panic - not syncing: NMI: Not continuing"


def _dmesg_with_makedumpfile(vmcore: Path, tmp_path: Path) -> str:
    out = tmp_path / "dmesg.txt"
    subprocess.run(
        [require_tool("makedumpfile"), "--dump-dmesg", str(vmcore), str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_text(errors="replace")


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli_main.run(list(args)) == 0
    return capsys.readouterr().out


def _check_first_boot_ready(lab: Lab, guest: Guest) -> None:
    assert guest.accel in {"kvm", "tcg"}
    guest.wait_ready(BOOT)
    assert guest.status()["kdump_loaded"] is True
    # the readiness collector ran in the guest and its JSON was published on the host
    facts = json.loads(guest.facts_path.read_text())
    assert facts["kernel_release"] == guest.config["kernel_release"]
    assert str(facts["kexec_crash_loaded"]) == "1"
    assert [g.name for g in lab.list()] == [NAME]


def _check_crash_tree(guest: Guest, vmcore: Path) -> None:
    """The /var/crash-style tree: <crash dir>/<host>-<YYYY-MM-DD-HH:MM:SS>/vmcore, private
    files, a compressed kdump and the capture record."""
    assert vmcore.parent.parent == guest.crash_dir
    assert vmcore.parent.name.startswith(f"{NAME}-")
    for path in vmcore.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert vmcore.read_bytes()[:8] == b"KDUMP   "
    capture = json.loads((vmcore.parent / "capture.json").read_text())
    assert capture["dumps"][0]["makedumpfile"] == "-c -d 31"
    assert capture["dumps"][0]["rc"] == 0


def _check_vmcore_reads_like_makedumpfile(vmcore: Path, tmp_path: Path) -> None:
    """kdiag's reader sees the dump's header as written and the same kernel log as
    makedumpfile, which the guest also saved as dmesg.txt."""
    log = _dmesg_with_makedumpfile(vmcore, tmp_path)
    assert PANIC in log
    with kdiag.vmcore.open(vmcore) as dump:
        assert dump.format == "kdump"
        assert dump.compression == "zlib"
        assert dump.dump_level == 31
        assert dump.utsname is not None
        assert dump.utsname.nodename == NAME
        assert dump.nr_cpus == 2
        ours = kdiag.vmcore.format_dmesg(dump.kernel_log())
    assert PANIC in ours
    assert ours == log
    assert "NMI: Not continuing" in (vmcore.parent / "dmesg.txt").read_text(errors="replace")


def _check_back_ready(guest: Guest, vmcore: Path) -> None:
    events_text = (guest.directory / "events.jsonl").read_text()
    events = [json.loads(line)["event"] for line in events_text.splitlines()]
    assert "GUEST_CRASHLOADED" in events

    guest.wait_ready(BOOT)
    status = guest.status()
    assert status["boots"] == 2
    assert status["kdump_loaded"] is True
    assert guest.dumps() == [vmcore]


def _check_cli_sees_guest(
    capsys: pytest.CaptureFixture[str], lab_root: Path, guest: Guest, vmcore: Path
) -> None:
    root = ("--root", str(lab_root))
    listed = json.loads(_cli(capsys, "lab", "list", *root, "--json"))
    assert [(g["name"], g["phase"], g["dumps"]) for g in listed] == [(NAME, "ready", 1)]
    status = json.loads(_cli(capsys, "lab", "status", NAME, *root, "--json"))
    assert status["dumps_saved"] == [str(vmcore)]
    assert status["accel"] == guest.accel
    console = _cli(capsys, "lab", "console", NAME, *root, "--no-follow")
    assert console.count("LAB: LAB-READY kdump_loaded=1") == 2

    assert "stopped" in _cli(capsys, "lab", "down", NAME, *root)
    assert not guest.running
    assert guest.status()["phase"] == "stopped"


def test_nmi_to_vmcore_and_back_to_ready(
    lab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = Lab(lab_root)
    guest = lab.up(name=NAME, profile="default", memory="512M", cpus=2)
    _check_first_boot_ready(lab, guest)

    guest.inject_nmi()
    vmcore = guest.wait_dump(DUMP)
    _check_crash_tree(guest, vmcore)
    _check_vmcore_reads_like_makedumpfile(vmcore, tmp_path)
    _check_back_ready(guest, vmcore)
    _check_cli_sees_guest(capsys, lab_root, guest, vmcore)
