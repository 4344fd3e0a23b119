from __future__ import annotations

from pathlib import Path

import pytest

from kdiag.errors import ConfigError
from kdiag.lab.qemu import ACCEL_OPTIONS, GuestFiles, choose_accel, command_line
from tests.conftest import require_tool


def test_command_line_has_what_the_capture_path_needs(
    tmp_path: Path, guest_files: GuestFiles
) -> None:
    require_tool("qemu-system-x86_64")
    args = command_line(guest_files, accel="tcg", memory_mib=512, cpus=2, append="x")
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


def test_arm64_command_line_is_virt_with_a_virtio_command_channel(guest_files: GuestFiles) -> None:
    require_tool("qemu-system-aarch64")
    args = command_line(guest_files, accel="tcg", memory_mib=1024, cpus=2, append="x", arch="arm64")
    joined = " ".join(args)
    assert Path(args[0]).name == "qemu-system-aarch64"
    assert "-machine virt -accel tcg,thread=multi -cpu max,pauth-impdef=on" in joined
    # one PL011 on virt: the console; the command channel is a virtio console (hvc0)
    assert joined.count("-serial ") == 1
    assert "-device virtio-serial-device" in joined
    assert "-device virtconsole,chardev=cmd0" in joined
    assert "virtio-blk-device,drive=d0" in joined
    assert "-device vmcoreinfo" in joined
    assert "pvpanic" not in joined  # no ISA bus on virt
    assert args[args.index("-m") + 1] == "1024"


def test_arm64_never_probes_kvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDIAG_LAB_ACCEL", "kvm")
    choice = choose_accel(tmp_path / "vmlinuz", tmp_path, "arm64")
    assert choice.accel == "tcg"
    assert not (tmp_path / "accel.json").exists()


def test_unknown_arch_is_a_config_error(guest_files: GuestFiles) -> None:
    with pytest.raises(ConfigError, match="unknown lab architecture 'riscv64'"):
        command_line(guest_files, accel="tcg", memory_mib=512, cpus=1, append="", arch="riscv64")
