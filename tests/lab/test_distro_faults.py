"""The Debian guest's failure variants, written into a disk copy with debugfs before the boot
(no image rebuild): what each one changes in the image, and nothing else."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kdiag.errors import ConfigError
from kdiag.lab.distro import (
    FAULT_SYSCTL_FILE,
    FAULTS,
    GUEST_VARIANTS,
    UNREACHABLE_NFS,
    _break,
)
from tests.conftest import require_tool

DEFAULTS = 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\n#NFS="hanging-host:/var/nfs"\n'


def _image(tmp_path: Path) -> Path:
    require_tool("mkfs.ext4")
    require_tool("debugfs")
    tree = tmp_path / "tree"
    (tree / "etc/default").mkdir(parents=True)
    (tree / "etc/sysctl.d").mkdir(parents=True)
    (tree / "etc/default/kdump-tools").write_text(DEFAULTS)
    (tree / "etc/sysctl.d/99-kdiag-kdump.conf").write_text("kernel.panic = 10\n")
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(disk)], check=True)
    return disk


def _cat(disk: Path, path: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(disk)], capture_output=True, text=True, check=True
    ).stdout


def test_panic_0_switches_kdump_tools_off_and_sets_kernel_panic_last(tmp_path: Path) -> None:
    disk = _image(tmp_path)
    _break(disk, tmp_path, "panic-0")
    assert (
        _cat(disk, "/etc/default/kdump-tools")
        == DEFAULTS.replace("USE_KDUMP=1\n", "") + 'USE_KDUMP="0"\n'
    )
    assert _cat(disk, FAULT_SYSCTL_FILE) == "kernel.panic = 0\n"
    # systemd-sysctl applies files in name order: the fault's comes after configure's
    assert Path(FAULT_SYSCTL_FILE).name > "99-kdiag-kdump.conf"
    assert _cat(disk, "/etc/sysctl.d/99-kdiag-kdump.conf") == "kernel.panic = 10\n"
    assert not list(tmp_path.glob("*.tmp"))


def test_unreachable_target_points_kdump_tools_at_an_nfs_export(tmp_path: Path) -> None:
    disk = _image(tmp_path)
    _break(disk, tmp_path, "unreachable-target")
    text = _cat(disk, "/etc/default/kdump-tools")
    assert text == DEFAULTS + f'NFS="{UNREACHABLE_NFS}"\n'
    assert UNREACHABLE_NFS.startswith("192.0.2.")  # RFC 5737: never routed
    assert _cat(disk, FAULT_SYSCTL_FILE) == ""  # nothing else changed


def test_variants_and_refusals(tmp_path: Path) -> None:
    assert GUEST_VARIANTS == ("fresh", "configured", "panic-0", "unreachable-target")
    assert set(FAULTS) == {"panic-0", "unreachable-target"}
    with pytest.raises(ConfigError, match="unknown fault"):
        _break(tmp_path / "none.img", tmp_path, "configured")


def test_debian_up_refuses_an_unknown_variant_before_building(tmp_path: Path) -> None:
    from kdiag.lab import Lab
    from kdiag.lab.distro import debian_up

    with pytest.raises(ConfigError, match="known: fresh, configured, panic-0, unreachable-target"):
        debian_up(Lab(tmp_path), "d", "panic-1")
    assert not (tmp_path / "d").exists()
    assert json.dumps(FAULTS)  # plain strings: shown by docs and listings
