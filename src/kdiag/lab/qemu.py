"""QEMU for the lab: the accelerator probe and the command line.

KVM is used only when a probe proves it runs an unmodified Debian kernel: ``/dev/kvm``
opening is not enough (on PVM-based nested hosts QEMU aborts on MSR 0x10a or stops with
"KVM internal error"). Otherwise TCG with one host thread per vCPU. An arm64 guest
(``qemu-system-aarch64 -M virt``, device tree boot, no firmware) always runs under TCG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import BackendUnavailable
from kdiag.lab.arches import get_arch
from kdiag.lab.ssh import FW_CFG_HOST_KEY

__all__ = (
    "ACCEL_OPTIONS",
    "AccelChoice",
    "GuestFiles",
    "choose_accel",
    "command_line",
    "qemu_binary",
)

ACCEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "kvm": ("-accel", "kvm", "-cpu", "host,-arch-capabilities"),
    "tcg": ("-accel", "tcg,thread=multi", "-cpu", "max"),
}
_PROBE_SECONDS = 40.0


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # "kvm" | "tcg"
    reason: str


@dataclass(frozen=True)
class GuestFiles:
    """Paths a guest's QEMU uses."""

    directory: Path
    vmlinuz: Path
    initrd: Path
    disk: Path
    console: Path
    qmp: Path
    events: Path
    commands: Path


def qemu_binary(arch: str = "x86_64") -> str:
    spec = get_arch(arch)
    path = shutil.which(spec.qemu_binary)
    if path is None:
        raise BackendUnavailable(
            f"{spec.qemu_binary} is not installed (apt-get install {spec.qemu_package})"
        )
    return path


def _probe_kvm(vmlinuz: Path) -> tuple[bool, str]:
    """Boot the kernel under KVM without an initramfs: it must print its banner and reach
    the root mount panic, without QEMU aborting or reporting a KVM internal error."""
    with tempfile.TemporaryDirectory(prefix="kdiag-kvm-probe-") as tmp:
        console = Path(tmp) / "console"
        args = [
            qemu_binary(),
            "-machine",
            "pc",
            *ACCEL_OPTIONS["kvm"],
            "-m",
            "256",
            "-display",
            "none",
            "-nic",
            "none",
            "-no-reboot",
            "-kernel",
            str(vmlinuz),
            "-append",
            "console=ttyS0 panic=-1",
            "-serial",
            f"file:{console}",
        ]
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _PROBE_SECONDS
        text = ""
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.25)
            text = console.read_text(errors="replace") if console.exists() else ""
            if "VFS: Unable to mount root" in text or "end Kernel panic" in text:
                break
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0].decode(errors="replace")
        text = console.read_text(errors="replace") if console.exists() else ""
    if "KVM internal error" in out or "KVM internal error" in text:
        return False, "KVM internal error (emulation failure) in the probe guest"
    if "Linux version" not in text:
        reason = out.strip().splitlines()[-1] if out.strip() else "no kernel banner"
        return False, f"probe guest did not boot under KVM: {reason[:200]}"
    if "Unable to mount root" not in text and "Kernel panic" not in text:
        return False, "probe guest under KVM did not finish booting in time"
    return True, "probe guest booted under KVM"


def choose_accel(vmlinuz: Path, cache: Path, arch: str = "x86_64") -> AccelChoice:
    """KVM when it demonstrably works here, else TCG. ``$KDIAG_LAB_ACCEL`` forces one."""
    if not get_arch(arch).kvm:
        return AccelChoice("tcg", f"an {arch} guest on this host runs under TCG")
    forced = os.environ.get("KDIAG_LAB_ACCEL")
    if forced in ACCEL_OPTIONS:
        return AccelChoice(forced, "forced by KDIAG_LAB_ACCEL")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelChoice("tcg", "/dev/kvm is not usable")
    if Path("/sys/module/kvm_pvm").exists():
        return AccelChoice("tcg", "host KVM is kvm_pvm, which cannot run a stock kernel")
    key = f"{os.uname().release}|{vmlinuz.stat().st_size}"
    record = cache / "accel.json"
    try:
        saved = json.loads(record.read_text())
        if saved.get("key") == key:
            return AccelChoice(saved["accel"], saved["reason"] + " (cached probe)")
    except (OSError, ValueError, KeyError):
        pass
    ok, reason = _probe_kvm(vmlinuz)
    choice = AccelChoice("kvm" if ok else "tcg", reason)
    record.write_text(json.dumps({"key": key, "accel": choice.accel, "reason": reason}))
    return choice


def command_line(
    files: GuestFiles,
    *,
    accel: str,
    memory_mib: int,
    cpus: int,
    append: str,
    arch: str = "x86_64",
    ssh_port: int | None = None,
    host_key: Path | None = None,
) -> list[str]:
    """The QEMU argument vector for one lab guest.

    x86_64 runs on ``-M pc`` with the command channel on a second UART and pvpanic; arm64
    runs on ``-M virt`` (TCG), which has one PL011 UART (the console), so the command channel
    is a virtio console, the dump disk is on virtio-mmio, and there is no pvpanic (no ISA bus).

    With ``ssh_port``, the guest gets a virtio NIC on QEMU's user-mode network (restricted:
    no way out) and ``127.0.0.1:ssh_port`` is forwarded to its port 22; ``host_key`` is
    passed through fw_cfg for the guest's dropbear. Without it, no NIC at all.
    """
    spec = get_arch(arch)
    pc = spec.name == "x86_64"
    commands = f"socket,id=cmd0,path={files.commands},server=on,wait=off"
    if pc:
        machine = ["-machine", "pc", *ACCEL_OPTIONS[accel]]
        channel = ["-chardev", commands, "-serial", "chardev:cmd0"]
        panic_device = ["-device", "pvpanic"]
        disk_device = "virtio-blk-pci,drive=d0"
        nic_device = "virtio-net-pci,netdev=n0"
    else:
        machine = ["-machine", spec.machine, "-accel", "tcg,thread=multi", "-cpu", spec.tcg_cpu]
        channel = ["-device", "virtio-serial-device", "-chardev", commands]
        channel += ["-device", "virtconsole,chardev=cmd0"]
        panic_device = []
        disk_device = "virtio-blk-device,drive=d0"
        nic_device = "virtio-net-device,netdev=n0"
    network = ["-nic", "none"]
    if ssh_port is not None:
        forward = f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
        network = ["-netdev", f"user,id=n0,restrict=on,{forward}", "-device", nic_device]
        if host_key is not None:
            network += ["-fw_cfg", f"name={FW_CFG_HOST_KEY},file={host_key}"]
    return [
        qemu_binary(spec.name),
        "-name",
        files.directory.name,
        *machine,
        "-smp",
        str(cpus),
        "-m",
        str(memory_mib),
        "-display",
        "none",
        *network,
        "-kernel",
        str(files.vmlinuz),
        "-initrd",
        str(files.initrd),
        "-append",
        append,
        "-chardev",
        f"file,id=ser0,path={files.console}",
        "-serial",
        "chardev:ser0",
        *channel,
        "-qmp",
        f"unix:{files.qmp},server=on,wait=off",
        "-chardev",
        f"socket,id=ev0,path={files.events},server=on,wait=off",
        "-mon",
        "chardev=ev0,mode=control",
        "-device",
        "vmcoreinfo",
        *panic_device,
        "-action",
        "panic=none",
        "-drive",
        f"file={files.disk},format=raw,if=none,id=d0,cache=writeback",
        "-device",
        disk_device,
    ]
