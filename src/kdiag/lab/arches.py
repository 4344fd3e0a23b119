"""The guest architectures the lab builds and boots: x86_64 (``-M pc``) and arm64 (``-M virt``).

Everything that differs between them lives here, so the build, the QEMU command line and the
guest ``/init`` stay one design: the Debian architecture the packages come from, the dynamic
loader, the kernel modules each kernel loads, the serial devices and the QEMU machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdiag.errors import ConfigError

__all__ = ("ARCHES", "GuestArch", "get_arch")


@dataclass(frozen=True)
class GuestArch:
    """One guest architecture."""

    name: str
    #: Debian's name for it (``apt-get download pkg:<deb_arch>``)
    deb_arch: str
    #: multiarch library directory name
    triplet: str
    #: the dynamic loader, relative to the guest root
    loader: str
    #: modules the first kernel loads (dependencies are added from modules.dep)
    first_modules: tuple[str, ...]
    #: modules the capture kernel loads to reach its dump disk
    capture_modules: tuple[str, ...]
    #: the console (kernel messages and the LAB: lines) and the command channel devices
    console: str
    command_tty: str
    qemu_binary: str
    qemu_package: str
    machine: str
    tcg_cpu: str
    #: the largest vCPU count the machine takes
    max_cpus: int
    #: whether the crashme module can be built on this host (same-arch kernel headers)
    crashme: bool
    #: whether QEMU can run it under KVM on this host (same architecture)
    kvm: bool


ARCHES: dict[str, GuestArch] = {
    a.name: a
    for a in (
        GuestArch(
            name="x86_64",
            deb_arch="amd64",
            triplet="x86_64-linux-gnu",
            loader="lib64/ld-linux-x86-64.so.2",
            # virtio_net (and the PCI transport it sits on): the guest's SSH NIC
            first_modules=(
                "qemu_fw_cfg",
                "pvpanic",
                "pvpanic-mmio",
                "virtio_ring",
                "virtio",
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_pci",
                "virtio_net",
            ),
            # load order matters: virtio_ring before virtio (see docs/lab.md)
            capture_modules=(
                "virtio_ring",
                "virtio",
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_pci",
                "virtio_blk",
                "crc16",
                "mbcache",
                "jbd2",
                "crc32c_generic",
                "ext4",
            ),
            console="ttyS0",
            command_tty="ttyS1",
            qemu_binary="qemu-system-x86_64",
            qemu_package="qemu-system-x86",
            machine="pc",
            tcg_cpu="max",
            max_cpus=255,
            crashme=True,
            kvm=True,
        ),
        GuestArch(
            name="arm64",
            deb_arch="arm64",
            triplet="aarch64-linux-gnu",
            loader="lib/ld-linux-aarch64.so.1",
            # -M virt has one UART: the command channel is a virtio console (/dev/hvc0)
            first_modules=("qemu_fw_cfg", "virtio_mmio", "virtio_console", "virtio_net"),
            capture_modules=("virtio_mmio", "virtio_blk", "crc32c_generic", "ext4"),
            console="ttyAMA0",
            command_tty="hvc0",
            qemu_binary="qemu-system-aarch64",
            qemu_package="qemu-system-arm",
            machine="virt",
            # pauth-impdef: QEMU's cheap pointer-authentication algorithm (TCG is slow with QARMA)
            tcg_cpu="max,pauth-impdef=on",
            # GICv2, the virt machine's default interrupt controller
            max_cpus=8,
            crashme=False,
            kvm=False,
        ),
    )
}

_ALIASES = {"amd64": "x86_64", "aarch64": "arm64"}


def get_arch(name: str) -> GuestArch:
    """The architecture called ``name`` (``aarch64`` and ``amd64`` are accepted too)."""
    try:
        return ARCHES[_ALIASES.get(name, name)]
    except KeyError:
        raise ConfigError(
            f"unknown lab architecture {name!r} (known: {', '.join(ARCHES)})"
        ) from None
