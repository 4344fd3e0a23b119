"""A real Debian 12 guest for the lab: systemd, Debian's kernel and Debian's kdump-tools.

The busybox guests (:mod:`kdiag.lab.build`) capture with kdiag's own script; this one boots
a Debian 12 system built by ``debootstrap`` (``linux-image-amd64``, ``systemd-sysv``,
``kdump-tools``) from one raw ext4 image on a virtio disk, so the capture path is Debian's:
``kdump-tools.service`` loads the capture kernel with kdump-tools' own initramfs, the capture
kernel boots the system again with ``systemd.unit=kdump-tools-dump.service``, which saves
``/var/crash/<stamp>/dump.<stamp>`` with makedumpfile and reboots.

Two images are built from one tree: ``fresh`` (as Debian leaves it after installing
kdump-tools) and ``configured`` (``kdiag configure --root`` applied to the tree before the
image is made). The lab plays the boot loader: it boots the tree's ``/boot/vmlinuz`` and
``/boot/initrd.img`` with the command line ``update-grub`` would write, i.e. the
``GRUB_CMDLINE_LINUX`` and ``GRUB_CMDLINE_LINUX_DEFAULT`` of ``/etc/default/grub`` and
``/etc/default/grub.d/*.cfg`` sourced in order (kdump-tools' ``crashkernel=`` and kdiag's).

The guest runs under the lab's supervisor like any other: ``debian-ready.sh`` (a systemd
unit after ``kdump-tools.service``) prints the same console marks as the busybox ``/init``
(the boot, the facts block, ``LAB-READY``), so ``status.json``, ``facts.json`` and
``Guest.wait_ready`` work unchanged. Dumps stay in the guest's ``/var/crash``; after the
guest is stopped :func:`extract_crash` copies them out of its disk with ``debugfs``.

Cache layout under ``cache_dir()/"lab"/"debian"``::

    debs/                    debootstrap's package cache
    <hash>/                  fresh.img, configured.img, vmlinuz, initrd.img, build.json

The hash covers the suite, the package list, the guest scripts, the collector and the
readiness code ``configure`` runs, so changing any of them rebuilds (a few minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, QMPClient, QMPError

from kdiag.errors import BackendError, BackendUnavailable, ConfigError
from kdiag.lab.build import collector_path, lab_cache
from kdiag.lab.guest import Guest, GuestSpec, Lab, _start
from kdiag.lab.qemu import GuestFiles, choose_accel, command_line
from kdiag.readiness import configure

__all__ = (
    "FAULTS",
    "GUEST_VARIANTS",
    "IMAGE_VARIANTS",
    "PACKAGES",
    "SUITE",
    "DebianBuild",
    "build_debian",
    "copy_crash_live",
    "debian_mirror",
    "debian_up",
    "extract_crash",
    "from_record",
    "grub_cmdline",
    "vmcore_of",
)

SUITE = "bookworm"
#: what debootstrap --variant=minbase installs on top of the base system
PACKAGES = (
    "systemd-sysv",
    "udev",
    "linux-image-amd64",
    "initramfs-tools",
    "kdump-tools",
    "kexec-tools",
    "makedumpfile",
    "procps",
    "kmod",
    "dropbear-bin",
    "iproute2",
)
IMAGE_VARIANTS = ("fresh", "configured")
#: guests of the ``configured`` image with one thing broken in their own disk copy before the
#: boot (written with debugfs, so no image rebuild): the drill's failure modes on Debian
FAULTS = {
    "panic-0": "kernel.panic=0 and kdump-tools switched off (USE_KDUMP=0): a panic never ends",
    "unreachable-target": "kdump-tools dumps to an NFS export the capture kernel cannot reach",
}
GUEST_VARIANTS = (*IMAGE_VARIANTS, *FAULTS)
#: sorts after configure's 99-kdiag-kdump.conf, so systemd-sysctl applies it last
FAULT_SYSCTL_FILE = "/etc/sysctl.d/99-zz-kdiag-lab-fault.conf"
#: RFC 5737 TEST-NET-1: never routed (and the lab guest has no network at all)
UNREACHABLE_NFS = "192.0.2.1:/srv/crash"
#: bumped whenever the layout or the customisation of the image changes
DEBIAN_FORMAT = 1
#: size of the (sparse) root image; the tree takes about 700 MB, dumps go to /var/crash
_IMAGE_MIB = 3072
_HERE = Path(__file__).resolve().parent
_READY_SCRIPT = _HERE / "debian-ready.sh"
_READY_UNIT = """\
[Unit]
Description=kdiag lab: readiness marks on the serial console
After=kdump-tools.service multi-user.target
Wants=kdump-tools.service

[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/lib/kdiag/debian-ready.sh

[Install]
WantedBy=multi-user.target
"""
#: a mark when the capture kernel starts saving (Debian's dump unit, not kdiag's)
_DUMP_DROPIN = """\
[Service]
ExecStartPre=/bin/sh -c 'echo "LAB: capture kernel $(uname -r) up (kdump-tools-dump)" > /dev/ttyS0'
"""
_FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DebianBuild:
    """The cached Debian images and what boots them."""

    directory: Path
    kernel_release: str
    vmlinuz: Path
    initrd: Path
    images: dict[str, str]  # variant -> image file name
    cmdlines: dict[str, str]  # variant -> what update-grub would pass
    inputs_hash: str
    cached: bool
    seconds: float

    def image(self, variant: str) -> Path:
        if variant not in self.images:
            raise ConfigError(
                f"unknown Debian image {variant!r} (known: {', '.join(IMAGE_VARIANTS)})"
            )
        return self.directory / self.images[variant]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("directory", "vmlinuz", "initrd"):
            data[key] = str(data[key])
        return data


def _run(args: list[str], **kw: Any) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-1500:]
        raise ConfigError(f"{' '.join(map(str, args))} failed: {tail}")
    return str(proc.stdout)


def debian_mirror() -> str:
    """The Debian mirror apt uses here for ``bookworm`` (deb822 or one-line sources)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and path.suffix in (".list", ".sources", ""):
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, list[str]] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
            if SUITE in fields.get("suites", []) and fields.get("uris"):
                return fields["uris"][0]
    return "http://deb.debian.org/debian"


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    digest.update(f"{DEBIAN_FORMAT}|{SUITE}|{','.join(PACKAGES)}".encode())
    for text in (_READY_UNIT, _DUMP_DROPIN, _FSTAB):
        digest.update(text.encode())
    digest.update(_READY_SCRIPT.read_bytes())
    digest.update(collector_path().read_bytes())
    readiness = Path(configure.__file__).resolve().parent
    for path in sorted(readiness.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def grub_cmdline(root: Path) -> str:
    """What ``update-grub`` puts on the ``linux`` line from the tree's defaults: the files
    are sourced by ``sh`` in grub's order (``/etc/default/grub``, then ``grub.d/*.cfg``)."""
    script = (
        'GRUB_CMDLINE_LINUX=""; GRUB_CMDLINE_LINUX_DEFAULT=""\n'
        "[ -f etc/default/grub ] && . ./etc/default/grub\n"
        'for f in etc/default/grub.d/*.cfg; do [ -f "$f" ] && . "./$f"; done\n'
        'echo "$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT"\n'
    )
    out = _run(["sh", "-c", script], cwd=root, env={"PATH": "/usr/bin:/bin"})
    return " ".join(out.split())


def _customise(root: Path) -> str:
    """Make the tree bootable on the lab's virtio disk; return the kernel release."""
    releases = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if len(releases) != 1:
        raise ConfigError(f"expected one kernel in {root}/boot, found {releases}")
    kver = releases[0]
    (root / "etc/hostname").write_text("debian-lab\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 debian-lab\n")
    (root / "etc/fstab").write_text(_FSTAB)
    lib = root / "usr/local/lib/kdiag"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(collector_path(), lib / "collect.sh")
    shutil.copyfile(_READY_SCRIPT, lib / "debian-ready.sh")
    units = root / "etc/systemd/system"
    (units / "kdiag-lab-ready.service").write_text(_READY_UNIT)
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "kdiag-lab-ready.service"
    link.unlink(missing_ok=True)
    link.symlink_to("/etc/systemd/system/kdiag-lab-ready.service")
    dropin = units / "kdump-tools-dump.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "kdiag-lab.conf").write_text(_DUMP_DROPIN)
    # a root login on the serial console without a password (a lab machine, no network)
    _run(["chroot", str(root), "passwd", "-d", "root"])
    _kdump_initrd(root, kver)
    return kver


#: the modules kdump-tools' MODULES=dep finds on the lab's machine (root on virtio-blk, ext4)
KDUMP_INITRD_MODULES = ("virtio_pci", "virtio_blk", "ext4")


def _kdump_initrd(root: Path, kver: str) -> None:
    """kdump-tools' capture initramfs, made the way its kernel hook makes it (a copy of
    /etc/initramfs-tools with ``KDUMP=y``), except for the module set: the hook's
    ``MODULES=dep`` looks at the running machine, which in the build chroot is this host,
    so the modules ``dep`` finds in the guest are listed instead. Without it, kdump-config
    would build it at the guest's first boot, minutes under TCG, on every fresh copy."""
    script = f"""set -e
kd=/var/lib/kdump
rm -rf $kd/initramfs-tools
mkdir -p $kd
cp -pr /etc/initramfs-tools $kd/
mkdir -p $kd/initramfs-tools/conf.d
echo MODULES=list > $kd/initramfs-tools/conf.d/zzz-kdump
printf '%s\n' {" ".join(KDUMP_INITRD_MODULES)} >> $kd/initramfs-tools/modules
echo KDUMP=y >> $kd/initramfs-tools/initramfs.conf
mkinitramfs -d $kd/initramfs-tools -o $kd/initrd.img-{kver}.new {kver}
mv $kd/initrd.img-{kver}.new $kd/initrd.img-{kver}
# what kdump-config load compares to decide whether the initramfs must be made again
cp /etc/kdump/sysctl.conf $kd/latest_sysctls-{kver}
"""
    proc_dir = root / "proc"
    _run(["mount", "-t", "proc", "proc", str(proc_dir)])
    try:
        _run(["chroot", str(root), "/bin/sh", "-c", script])
    finally:
        subprocess.run(["umount", "-l", str(proc_dir)], check=False, capture_output=True)


def _make_image(tree: Path, image: Path) -> None:
    partial = image.with_name(image.name + ".partial")
    partial.unlink(missing_ok=True)
    with open(partial, "wb") as fh:
        fh.truncate(_IMAGE_MIB << 20)
    _run(["mkfs.ext4", "-q", "-F", "-L", "debian-root", "-d", str(tree), str(partial)])
    os.replace(partial, image)


def _debootstrap(cache: Path, target: Path, note: Progress) -> None:
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    tool = shutil.which("debootstrap")
    if tool is None:
        raise ConfigError("debootstrap is not installed (apt-get install debootstrap)")
    mirror = debian_mirror()
    note(f"debootstrap {SUITE} from {mirror}")
    proc = subprocess.run(
        [
            tool,
            "--variant=minbase",
            f"--cache-dir={debs}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(target),
            mirror,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        log = target / "debootstrap/debootstrap.log"
        detail = log.read_text(errors="replace")[-1500:] if log.exists() else proc.stderr[-1500:]
        raise ConfigError(f"debootstrap failed ({proc.returncode}): {detail}")


def build_debian(
    progress: Progress | None = None, *, force: bool = False, debootstrapped: Path | None = None
) -> DebianBuild:
    """The Debian images, built when the inputs changed (or ``force``), else the cache.

    ``debootstrapped``: a tree ``debootstrap --variant=minbase --include=PACKAGES`` already
    made (customised in place and removed), instead of running debootstrap here."""
    note = progress or (lambda _msg: None)
    start = time.monotonic()
    cache = lab_cache() / "debian"
    cache.mkdir(parents=True, exist_ok=True)
    key = _inputs_hash()
    directory = cache / key
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = directory / "build.json"
        if record.exists() and not force:
            data = json.loads(record.read_text())
            return from_record(directory, data, cached=True, seconds=time.monotonic() - start)
        shutil.rmtree(directory, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="tree-", dir=cache))
        try:
            tree = work / "root"
            if debootstrapped is not None:
                debootstrapped.rename(tree)
            else:
                _debootstrap(cache, tree, note)
            kver = _customise(tree)
            directory.mkdir()
            shutil.copyfile(tree / "boot" / f"vmlinuz-{kver}", directory / "vmlinuz")
            shutil.copyfile(tree / "boot" / f"initrd.img-{kver}", directory / "initrd.img")
            cmdlines = {}
            note("mkfs.ext4 -d: fresh.img")
            cmdlines["fresh"] = grub_cmdline(tree)
            _make_image(tree, directory / "fresh.img")
            note("kdiag configure --root, mkfs.ext4 -d: configured.img")
            configure.apply(configure.plan(tree))
            cmdlines["configured"] = grub_cmdline(tree)
            _make_image(tree, directory / "configured.img")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        data = {
            "kernel_release": kver,
            "cmdlines": cmdlines,
            "images": {v: f"{v}.img" for v in IMAGE_VARIANTS},
            "inputs_hash": key,
            "build_seconds": round(time.monotonic() - start, 1),
        }
        record.write_text(json.dumps(data, indent=2) + "\n")
        for old in cache.iterdir():
            if old.is_dir() and old.name not in (key, "debs") and (old / "build.json").exists():
                shutil.rmtree(old, ignore_errors=True)
        return from_record(directory, data, cached=False, seconds=time.monotonic() - start)


def from_record(
    directory: Path, data: dict[str, Any], *, cached: bool, seconds: float
) -> DebianBuild:
    """The build recorded in ``directory``'s ``build.json`` (``data``, already read)."""
    return DebianBuild(
        directory=directory,
        kernel_release=str(data["kernel_release"]),
        vmlinuz=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        images=dict(data["images"]),
        cmdlines=dict(data["cmdlines"]),
        inputs_hash=str(data["inputs_hash"]),
        cached=cached,
        seconds=round(seconds, 1),
    )


def debian_up(
    lab: Lab,
    name: str,
    variant: str = "fresh",
    *,
    memory: str | int = 512,
    cpus: int = 1,
    accel: str | None = None,
    progress: Progress | None = None,
    makedump_args: str | None = None,
    build: DebianBuild | None = None,
) -> Guest:
    """Start a Debian guest on a copy of the ``variant`` image under the lab supervisor.

    ``variant``: an image (``fresh``, ``configured``) or one of :data:`FAULTS`, the
    ``configured`` image with that fault written into the guest's copy before the boot.
    ``makedump_args`` replaces kdump-tools' ``MAKEDUMP_ARGS`` in the copy (written with
    debugfs before the boot), to compare capture options on Debian's own capture path.
    ``build``: the images to boot (default: :func:`build_debian`, which rebuilds them when
    the inputs changed since); a long benchmark passes the build it started with."""
    if makedump_args is not None and not re.fullmatch(r"[-A-Za-z0-9 ]{1,64}", makedump_args):
        raise ConfigError(f"bad makedumpfile options {makedump_args!r}")
    if variant not in GUEST_VARIANTS:
        raise ConfigError(f"unknown Debian image {variant!r} (known: {', '.join(GUEST_VARIANTS)})")
    image = "configured" if variant in FAULTS else variant
    spec = GuestSpec.check(name, "default", memory, cpus)
    info = build if build is not None else build_debian(progress)
    lab.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory = lab.root / spec.name
    if (directory / "guest.json").exists() and Guest(directory).running:
        raise ConfigError(f"lab guest {spec.name} is already running")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "crash").mkdir(exist_ok=True, mode=0o700)
    files = GuestFiles(
        directory=directory,
        vmlinuz=info.vmlinuz,
        initrd=info.initrd,
        disk=directory / "disk.img",
        console=directory / "console.log",
        qmp=directory / "qmp.sock",
        events=directory / "events.sock",
        commands=directory / "cmd.sock",
    )
    for stale in ("console.log", "qmp.sock", "events.sock", "cmd.sock", "status.json",
                  "state.json", "events.jsonl", "facts.json", "disk.img"):  # fmt: skip
        (directory / stale).unlink(missing_ok=True)
    _run(["cp", "--sparse=always", "--reflink=auto", str(info.image(image)), str(files.disk)])
    if makedump_args is not None:
        _set_makedump_args(files.disk, directory, makedump_args)
    if variant in FAULTS:
        _break(files.disk, directory, variant)
    if accel is None:
        choice = choose_accel(info.vmlinuz, lab_cache())
        accel, reason = choice.accel, choice.reason
    else:
        reason = "requested"
    # no_timer_check: under TCG on a loaded host the IO-APIC timer check can panic a boot
    # ("IO-APIC + timer doesn't work", seen on a reboot after a capture); kdump-tools
    # passes it on to the capture kernel with the rest of /proc/cmdline.
    append = f"root=/dev/vda rw console=ttyS0 no_timer_check {info.cmdlines[image]}".strip()
    args = command_line(
        files, accel=accel, memory_mib=spec.memory_mib, cpus=spec.cpus, append=append
    )
    crash = re.search(r"crashkernel=(\S+)", append)
    config = {
        "name": spec.name,
        "arch": "x86_64",
        "kind": "debian",
        "profile": f"debian-{variant}",
        "image": image,
        "fault": variant if variant in FAULTS else None,
        "accel": accel,
        "accel_reason": reason,
        "memory_mib": spec.memory_mib,
        "cpus": spec.cpus,
        "crashkernel": crash.group(1) if crash else None,
        "kernel_release": info.kernel_release,
        "build": str(info.directory),
        "append": append,
        "qemu_args": args,
        "ssh": None,
    }
    (directory / "guest.json").write_text(json.dumps(config, indent=2) + "\n")
    return _start(directory)


def _edit_kdump_defaults(disk: Path, scratch: Path, values: dict[str, str]) -> None:
    """Set variables of the image's /etc/default/kdump-tools (debugfs, unmounted): earlier
    assignments of each are dropped, ``KEY="value"`` appended."""
    conf = "/etc/default/kdump-tools"
    text = _run(["debugfs", "-R", f"cat {conf}", str(disk)])
    keys = "|".join(map(re.escape, values))
    lines = [ln for ln in text.splitlines() if not re.match(rf"\s*({keys})=", ln)]
    lines += [f'{key}="{value}"' for key, value in values.items()]
    _write_guest_file(disk, scratch, conf, "\n".join(lines) + "\n")


def _set_makedump_args(disk: Path, scratch: Path, args: str) -> None:
    """Set ``MAKEDUMP_ARGS`` in the image's /etc/default/kdump-tools (debugfs, unmounted)."""
    _edit_kdump_defaults(disk, scratch, {"MAKEDUMP_ARGS": args})


def _write_guest_file(disk: Path, scratch: Path, path: str, text: str) -> None:
    """Write (or replace) one file of the unmounted image with debugfs, mode 0644."""
    local = scratch / "debugfs-write.tmp"
    local.write_text(text)
    local.chmod(0o644)
    try:
        subprocess.run(
            ["debugfs", "-w", "-R", f"rm {path}", str(disk)], capture_output=True, check=False
        )
        _run(["debugfs", "-w", "-R", f"write {local} {path}", str(disk)])
    finally:
        local.unlink(missing_ok=True)


def _break(disk: Path, scratch: Path, fault: str) -> None:
    """Write one of :data:`FAULTS` into a guest's disk copy before its boot."""
    if fault == "panic-0":
        # Debian's own switch: kdump-tools.service loads no capture kernel
        _edit_kdump_defaults(disk, scratch, {"USE_KDUMP": "0"})
        _write_guest_file(disk, scratch, FAULT_SYSCTL_FILE, "kernel.panic = 0\n")
    elif fault == "unreachable-target":
        # kdump-config savecore mounts it in the capture kernel: no network, no NFS client
        _edit_kdump_defaults(disk, scratch, {"NFS": UNREACHABLE_NFS})
    else:
        raise ConfigError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")


def _crash_stamps(disk: Path) -> list[str]:
    """The ``/var/crash/<YYYYMMDDHHMM>`` directory names of the image, sorted."""
    listing = subprocess.run(
        ["debugfs", "-R", "ls -p /var/crash", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    names = []
    for line in listing.splitlines():
        parts = line.strip("/").split("/")
        # ls -p: /inode/mode/uid/gid/name/size/
        if (
            len(parts) >= 5
            and parts[1].isdigit()
            and int(parts[1], 8) & 0o170000 == 0o040000
            and re.fullmatch(r"\d{12}", parts[4])
        ):
            names.append(parts[4])
    return sorted(names)


def _copy_stamp(guest: Guest, stamp: str) -> Path:
    """``/var/crash/<stamp>/`` of the guest's disk into its crash tree as
    ``<name>-<stamp>/`` (files 0600); an existing copy is kept as it is."""
    if not re.fullmatch(r"\d{12}", stamp):
        raise ConfigError(f"not a kdump-tools crash directory name: {stamp!r}")
    final = guest.crash_dir / f"{guest.name}-{stamp}"
    if final.exists():
        return final
    guest.crash_dir.mkdir(mode=0o700, exist_ok=True)
    old = os.umask(0o077)
    try:
        with tempfile.TemporaryDirectory(dir=guest.crash_dir) as tmp:
            disk = guest.directory / "disk.img"
            _run(["debugfs", "-R", f"rdump /var/crash/{stamp} {tmp}", str(disk)])
            got = Path(tmp) / stamp
            if not got.is_dir():
                raise BackendError(f"no /var/crash/{stamp} on the disk of {guest.name}")
            for path in got.iterdir():
                path.chmod(0o600)
            got.chmod(0o700)
            got.rename(final)
    finally:
        os.umask(old)
    return final


def extract_crash(guest: Guest) -> list[Path]:
    """Copy the stopped guest's ``/var/crash/<stamp>/`` directories into its crash tree
    (files 0600) with ``debugfs``; returns the new directories, oldest first."""
    if guest.running:
        raise BackendError(f"lab guest {guest.name} is running: stop it before reading its disk")
    out = []
    for stamp in _crash_stamps(guest.directory / "disk.img"):
        if (guest.crash_dir / f"{guest.name}-{stamp}").exists():
            continue
        out.append(_copy_stamp(guest, stamp))
    return out


#: how long the copy may wait for QEMU's monitor (another client may hold it a moment)
_MONITOR_WAIT = 10.0


async def _stopped_while(address: str, work: Callable[[], Path]) -> Path:
    deadline = time.monotonic() + _MONITOR_WAIT
    while True:
        client = QMPClient("kdiag-lab-crash-copy")
        try:
            await client.connect(address)
            break
        except ConnectError as exc:
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"QMP {address}: monitor busy or gone: {exc}") from exc
            await asyncio.sleep(0.1)
    stopped = False
    try:
        status: Any = await client.execute("query-status")
        if status.get("running"):
            await client.execute("stop")  # QEMU drains and flushes the disk before it stops
            stopped = True
        return await asyncio.to_thread(work)
    finally:
        if stopped:
            with contextlib.suppress(QMPError, OSError):
                await client.execute("cont")
        with contextlib.suppress(Exception):  # the guest's state is settled either way
            await client.disconnect()


def copy_crash_live(guest: Guest, stamp: str) -> Path:
    """Copy ``/var/crash/<stamp>/`` out of a *running* guest's disk into its crash tree.

    The guest's vCPUs are stopped through its QMP monitor for the copy (QEMU drains and
    flushes its disk first), so debugfs reads a still image, and resumed afterwards. Call
    it once the guest is up again after the capture: the capture kernel's ``reboot -f``
    leaves the new files in ext4's journal, and the next boot's mount replays it into place.

    :raises BackendUnavailable: the monitor could not be had.
    :raises BackendError: no such directory, or debugfs failed.
    """
    if not guest.running:
        raise BackendError(f"lab guest {guest.name} is not running")
    try:
        return asyncio.run(_stopped_while(str(guest.qmp_socket), lambda: _copy_stamp(guest, stamp)))
    except ConfigError as exc:
        raise BackendError(str(exc)) from exc
    except (QMPError, OSError, EOFError) as exc:
        raise BackendError(f"copying /var/crash/{stamp} of {guest.name}: {exc}") from exc


def vmcore_of(crash: Path) -> Path | None:
    """The dump file kdump-tools saved in one ``/var/crash/<stamp>`` directory:
    ``dump.<stamp>`` (makedumpfile), else ``vmcore.<stamp>`` (its ``cp`` fallback)."""
    dumps = sorted(crash.glob("dump.*")) or sorted(crash.glob("vmcore.[0-9]*"))
    return dumps[0] if dumps else None
