"""A lab guest as a libvirt domain: the same kernel, initramfs, command line and dump disk
as ``kdiag lab up``, described in libvirt's domain XML instead of a QEMU command line.

:func:`prepare` lays out a guest directory (``disk.img``, ``crash/``; the console and the
command channel socket are created by QEMU) and :func:`domain_xml` describes the domain:
x86_64 ``-M pc`` under TCG (or KVM), the serial console written to ``console.log`` (ttyS0),
the lab's command channel on a listening unix socket (ttyS1), the dump disk on virtio, the
``vmcoreinfo`` device, no network, no balloon, no USB.  There is deliberately no pvpanic
device: with one, libvirt applies ``on_crash`` (destroy, by default) when the guest reports
a panic, and the capture kernel would never run.

:func:`define` does it all against a libvirtd (``kdiag lab define``): the kernel and
initramfs are hard-linked (or copied) into the guest directory, so the daemon's QEMU user
needs to reach only that directory, and the domain is defined (and started).

The console shows the same ``LAB:`` marks as a QEMU lab guest, so :func:`wait_console` (or
:class:`~kdiag.lab.console.ConsoleFollower`) follows the boot, and after
``LAB: LAB-DUMP-DONE`` :func:`~kdiag.lab.supervisor.extract_dump` copies the dump out of
``disk.img`` as the supervisor does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdiag.backends.libvirt import import_libvirt
from kdiag.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    IncorrectState,
)
from kdiag.lab.build import BuildInfo
from kdiag.lab.guest import GuestSpec, _kernel_command_line, _make_disk
from kdiag.lab.qemu import qemu_binary

__all__ = (
    "DefinedDomain",
    "DomainFiles",
    "check_daemon",
    "define",
    "domain_xml",
    "prepare",
    "wait_console",
)


@dataclass(frozen=True, slots=True)
class DomainFiles:
    """Where a lab domain's files live (``directory`` must be reachable by the daemon's
    QEMU user: it writes the console and the dump disk)."""

    directory: Path
    vmlinuz: Path
    initrd: Path

    @property
    def disk(self) -> Path:
        return self.directory / "disk.img"

    @property
    def console(self) -> Path:
        return self.directory / "console.log"

    @property
    def commands(self) -> Path:
        return self.directory / "cmd.sock"

    @property
    def crash_dir(self) -> Path:
        return self.directory / "crash"


def prepare(
    directory: Path,
    info: BuildInfo,
    spec: GuestSpec,
    *,
    vmlinuz: Path | None = None,
    initrd: Path | None = None,
) -> DomainFiles:
    """Create ``directory`` with a fresh dump disk and an empty crash tree.

    ``vmlinuz`` / ``initrd`` override the build's paths (a daemon that runs QEMU as another
    user may not reach the build cache: the caller links or copies them somewhere it can).

    :raises ConfigError: not an x86_64 build (the domain is ``-M pc``), or mkfs failed.
    """
    if info.arch != "x86_64" or spec.arch.name != "x86_64":
        raise ConfigError("a lab guest runs as a libvirt domain on x86_64 only")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "crash").mkdir(exist_ok=True, mode=0o700)
    files = DomainFiles(directory, vmlinuz or info.vmlinuz, initrd or info.main_initrd)
    files.console.unlink(missing_ok=True)
    files.commands.unlink(missing_ok=True)
    _make_disk(files.disk, spec.memory_mib, spec.profile.dumps)
    return files


def domain_xml(spec: GuestSpec, files: DomainFiles, *, accel: str = "tcg") -> str:
    """The domain XML of lab guest ``spec`` (domain name = guest name)."""
    if accel not in ("tcg", "kvm"):
        raise ConfigError(f"accelerator must be tcg or kvm, not {accel!r}")
    append, _crashkernel = _kernel_command_line(spec)
    root = ET.Element("domain", type="kvm" if accel == "kvm" else "qemu")
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "description").text = f"kdiag lab guest (profile {spec.profile.name})"
    ET.SubElement(root, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(root, "vcpu").text = str(spec.cpus)
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(files.vmlinuz)
    ET.SubElement(os_el, "initrd").text = str(files.initrd)
    ET.SubElement(os_el, "cmdline").text = " ".join(append)
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "vmcoreinfo", state="on")
    if accel == "kvm":
        ET.SubElement(root, "cpu", mode="host-passthrough", check="none")
    else:
        ET.SubElement(root, "cpu", mode="maximum", check="none")
    ET.SubElement(root, "clock", offset="utc")
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "restart"
    devices = ET.SubElement(root, "devices")
    ET.SubElement(devices, "emulator").text = qemu_binary("x86_64")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw", cache="writeback")
    ET.SubElement(disk, "source", file=str(files.disk))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    console = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(console, "source", path=str(files.console))
    ET.SubElement(console, "target", port="0")
    channel = ET.SubElement(devices, "serial", type="unix")
    ET.SubElement(channel, "source", mode="bind", path=str(files.commands))
    ET.SubElement(channel, "target", port="1")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def wait_console(path: Path, pattern: str, timeout: float, *, start: int = 0) -> str:
    """The first console line after byte ``start`` that matches ``pattern``.

    :raises BackendTimeout: none within ``timeout`` seconds.
    """
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = path.read_bytes()[start:].decode(errors="replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            if rx.search(line):
                return line
        if time.monotonic() > deadline:
            raise BackendTimeout(f"no {pattern!r} on the console {path} within {timeout:.0f} s")
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class DefinedDomain:
    """A lab guest defined in a libvirtd by :func:`define`."""

    uri: str
    name: str
    files: DomainFiles
    started: bool

    @property
    def target(self) -> dict[str, str]:
        """The libvirt backend's target settings (``kdiag instances add --target``)."""
        return {"uri": self.uri, "domain": self.name}


def _link_or_copy(source: Path, dest: Path) -> Path:
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
    return dest


def _connect(uri: str) -> Any:
    libvirt = import_libvirt()
    try:
        return libvirt.openAuth(uri, [[], None, None], 0)
    except libvirt.libvirtError as exc:
        raise BackendUnavailable(f"libvirt {uri}: {exc.get_error_message()}") from exc


def _refuse_running(conn: Any, uri: str, name: str) -> None:
    libvirt = import_libvirt()
    with contextlib.suppress(libvirt.libvirtError):  # no such domain: fine
        if conn.lookupByName(name).isActive():
            raise IncorrectState(
                f"libvirt {uri}: domain {name} is running; stop it first "
                f"(virsh -c '{uri}' destroy {name})"
            )


def check_daemon(uri: str, name: str) -> None:
    """Before a build: the daemon at ``uri`` answers and runs no domain called ``name``.

    :raises BackendUnavailable: libvirt-python missing, or the daemon cannot be reached.
    :raises IncorrectState: a domain of that name is running there.
    """
    conn = _connect(uri)
    try:
        _refuse_running(conn, uri, name)
    finally:
        conn.close()


def define(
    uri: str,
    root: Path,
    spec: GuestSpec,
    info: BuildInfo,
    *,
    accel: str = "tcg",
    start: bool = True,
) -> DefinedDomain:
    """Define lab guest ``spec`` as a domain of the libvirtd at ``uri``, its files in
    ``root/<name>/`` (kernel and initramfs linked in, a fresh dump disk), and start it.

    :raises IncorrectState: a domain of that name is running in that daemon.
    :raises BackendUnavailable: libvirt-python missing, or the daemon cannot be reached.
    :raises BackendError: libvirt refused the definition or the start (its message).
    """
    libvirt = import_libvirt()
    where = f"libvirt {uri}"
    conn = _connect(uri)
    try:
        _refuse_running(conn, uri, spec.name)
        directory = root / spec.name
        if (directory / "guest.json").exists():
            raise ConfigError(
                f"{directory} holds a QEMU lab guest (kdiag lab up); "
                "give the domain another --name or another --root"
            )
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = prepare(
            directory,
            info,
            spec,
            vmlinuz=_link_or_copy(info.vmlinuz, directory / "vmlinuz"),
            initrd=_link_or_copy(info.main_initrd, directory / "initrd.img"),
        )
        try:
            dom = conn.defineXML(domain_xml(spec, files, accel=accel))
            if start:
                dom.create()
        except libvirt.libvirtError as exc:
            raise BackendError(f"{where}: {exc.get_error_message()}") from exc
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    return DefinedDomain(uri, spec.name, files, start)
