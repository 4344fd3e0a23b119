from __future__ import annotations

from pathlib import Path

import pytest

from kdiag.lab.qemu import ACCEL_OPTIONS, GuestFiles, choose_accel, command_line
from tests.conftest import require_tool


def _files(tmp_path: Path) -> GuestFiles:
    return GuestFiles(
        directory=tmp_path / "g1",
        vmlinuz=tmp_path / "vmlinuz",
        initrd=tmp_path / "main.img",
        disk=tmp_path / "disk.img",
        console=tmp_path / "console.log",
        qmp=tmp_path / "qmp.sock",
        events=tmp_path / "events.sock",
        commands=tmp_path / "cmd.sock",
    )


def test_command_line_has_what_the_capture_path_needs(tmp_path: Path) -> None:
    require_tool("qemu-system-x86_64")
    args = command_line(_files(tmp_path), accel="tcg", memory_mib=512, cpus=2, append="x")
    joined = " ".join(args)
    assert "-accel tcg,thread=multi -cpu max" in joined
    assert "-device vmcoreinfo" in joined
    assert "-device pvpanic -action panic=none" in joined
    assert f"unix:{tmp_path / 'qmp.sock'},server=on,wait=off" in joined
    assert "virtio-blk-pci,drive=d0" in joined
    assert "-no-reboot" not in args  # the capture kernel's reboot must restart the guest
    assert args[args.index("-m") + 1] == "512"
    assert args[args.index("-smp") + 1] == "2"


def test_kvm_options() -> None:
    assert ACCEL_OPTIONS["kvm"] == ("-accel", "kvm", "-cpu", "host,-arch-capabilities")


@pytest.mark.parametrize("forced", ["tcg", "kvm"])
def test_accel_can_be_forced(forced: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDIAG_LAB_ACCEL", forced)
    choice = choose_accel(tmp_path / "vmlinuz", tmp_path)
    assert choice.accel == forced
    assert "KDIAG_LAB_ACCEL" in choice.reason
