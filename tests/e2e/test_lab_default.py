"""The full cycle a cloud user sees, on a real kernel under QEMU: the guest is ready, a QMP
NMI panics it, kdump saves a vmcore into the crash tree, and the guest comes back ready."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

BOOT = 300.0
DUMP = 300.0


def _dmesg_with_makedumpfile(vmcore: Path, tmp_path: Path) -> str:
    out = tmp_path / "dmesg.txt"
    subprocess.run(
        [require_tool("makedumpfile"), "--dump-dmesg", str(vmcore), str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_text(errors="replace")


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from kdiag.cli import main as cli_main

    assert cli_main.run(list(args)) == 0
    return capsys.readouterr().out


def test_nmi_to_vmcore_and_back_to_ready(
    lab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kdiag.lab import Lab

    lab = Lab(lab_root)
    guest = lab.up(name="e2e-default", profile="default", memory="512M", cpus=2)
    assert guest.accel in {"kvm", "tcg"}
    guest.wait_ready(BOOT)
    assert guest.status()["kdump_loaded"] is True
    # the readiness collector ran in the guest and its JSON was published on the host
    facts = json.loads(guest.facts_path.read_text())
    assert facts["kernel_release"] == guest.config["kernel_release"]
    assert str(facts["kexec_crash_loaded"]) == "1"
    assert [g.name for g in lab.list()] == ["e2e-default"]

    guest.inject_nmi()
    vmcore = guest.wait_dump(DUMP)

    # the /var/crash-style tree: <crash dir>/<host>-<YYYY-MM-DD-HH:MM:SS>/vmcore, private files
    assert vmcore.parent.parent == guest.crash_dir
    assert vmcore.parent.name.startswith("e2e-default-")
    for path in vmcore.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert vmcore.read_bytes()[:8] == b"KDUMP   "
    capture = json.loads((vmcore.parent / "capture.json").read_text())
    assert capture["dumps"][0]["makedumpfile"] == "-c -d 31"
    assert capture["dumps"][0]["rc"] == 0

    log = _dmesg_with_makedumpfile(vmcore, tmp_path)
    assert "Kernel panic - not syncing: NMI: Not continuing" in log
    import kdiag.vmcore

    with kdiag.vmcore.open(vmcore) as dump:
        assert dump.format == "kdump"
        assert dump.compression == "zlib"
        assert dump.dump_level == 31
        assert dump.utsname is not None
        assert dump.utsname.nodename == "e2e-default"
        assert dump.nr_cpus == 2
        ours = kdiag.vmcore.format_dmesg(dump.kernel_log())
    assert "Kernel panic - not syncing: NMI: Not continuing" in ours
    assert ours == log
    assert "NMI: Not continuing" in (vmcore.parent / "dmesg.txt").read_text(errors="replace")

    events_text = (guest.directory / "events.jsonl").read_text()
    events = [json.loads(line)["event"] for line in events_text.splitlines()]
    assert "GUEST_CRASHLOADED" in events

    guest.wait_ready(BOOT)
    status = guest.status()
    assert status["boots"] == 2
    assert status["kdump_loaded"] is True
    assert guest.dumps() == [vmcore]

    # the CLI sees the same guest
    listed = json.loads(_cli(capsys, "lab", "list", "--root", str(lab_root), "--json"))
    assert [(g["name"], g["phase"], g["dumps"]) for g in listed] == [("e2e-default", "ready", 1)]
    status = json.loads(
        _cli(capsys, "lab", "status", "e2e-default", "--root", str(lab_root), "--json")
    )
    assert status["dumps_saved"] == [str(vmcore)]
    assert status["accel"] == guest.accel
    console = _cli(capsys, "lab", "console", "e2e-default", "--root", str(lab_root), "--no-follow")
    assert console.count("LAB: LAB-READY kdump_loaded=1") == 2

    assert "stopped" in _cli(capsys, "lab", "down", "e2e-default", "--root", str(lab_root))
    assert not guest.running
    assert guest.status()["phase"] == "stopped"
