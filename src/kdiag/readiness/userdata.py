"""``kdiag configure --user-data``: kdump readiness as a cloud-init shell script for a target.

The target (distribution, architecture, RAM) is given, not taken from this machine, and the
script works on the machine it runs on: it installs the packages non-interactively (on Debian
and Ubuntu ``apt-get update`` first, ``DEBIAN_FRONTEND=noninteractive``, keep-the-old-conffile
options, kdump enabled through debconf), writes only the files kdiag owns (the sysctl.d file;
on Debian and Ubuntu the grub.d snippet), reads the running ``kernel.sysrq`` there to add the
SysRq-c bit without removing any function, and puts ``crashkernel=`` on the boot loader's
command line.  The packages' own defaults already filter and compress the dumps (kdump-utils
``-l -d 31``, kdump-tools ``-c -d 31``, SUSE level 31), so their files are left alone.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kdiag.errors import ConfigError
from kdiag.readiness import crashkernel, sysctlconf
from kdiag.readiness.configure import SYSCTL_FILE, SYSCTL_HEADER, sysctl_settings
from kdiag.readiness.distro import DEBIAN_GRUB_SNIPPET, family, layout, os_release
from kdiag.readiness.facts import read_root

__all__ = ("Target", "target_of", "user_data")


@dataclass(frozen=True)
class Target:
    """The machine the script is for."""

    distro: str  # os-release ID: debian, ubuntu, rhel, rocky, fedora, amzn, sles, ...
    arch: str
    ram: int | None = None  # bytes; only explains the reservation

    @property
    def family(self) -> str:
        fam = family({"/etc/os-release": f"ID={self.distro}\n"})
        if fam is None:
            raise ConfigError(
                f"--distro {self.distro!r}: not a known distribution (an os-release ID such "
                "as debian, ubuntu, rhel, rocky, fedora, amzn, sles or opensuse-leap)"
            )
        return fam


def target_of(root: str) -> Target:
    """The target a root tree (or this machine) describes."""
    facts = read_root(root)
    release = os_release(facts.files)
    fam = family(facts.files)
    distro = release.get("ID") or fam
    if not distro:
        raise ConfigError(f"cannot tell the distribution of {root}: give --distro")
    ram = facts.mem_total_kb * 1024 if facts.mem_total_kb else None
    return Target(distro, facts.arch, ram)


def _heredoc(path: str, text: str) -> list[str]:
    marker = "KDIAG_EOF"
    while marker in text:
        marker += "_"
    return [
        f'mkdir -p "$R"{shlex.quote(path.rsplit("/", 1)[0])}',
        f"cat > \"$R\"{shlex.quote(path)} <<'{marker}'",
        text.rstrip("\n"),
        marker,
    ]


def _install(fam: str) -> list[str]:
    lay = layout(fam)
    packages = " ".join(lay.packages)
    if fam == "debian":
        return [
            "export DEBIAN_FRONTEND=noninteractive",
            "echo 'kdump-tools kdump-tools/use_kdump boolean true' | debconf-set-selections",
            "apt-get update",
            f"{' '.join(lay.install)} {packages}",
        ]
    if fam == "rhel":
        return [
            "if command -v dnf >/dev/null; then pm=dnf; else pm=yum; fi",
            f'"$pm" install -y {packages}',
        ]
    return [f"{' '.join(lay.install)} {packages}"]


def _sysrq(default: str) -> list[str]:
    path = f'"$R"{SYSCTL_FILE}'
    return [
        "# kernel.sysrq: the value this machine runs with, plus the SysRq-c bit (8); never fewer",
        f'sysrq="$(cat "$R"/proc/sys/kernel/sysrq 2>/dev/null || echo {default})"',
        'if [ "$sysrq" != 1 ] && [ $((sysrq & 8)) -eq 0 ]; then',
        f'    echo "kernel.sysrq = $((sysrq | 8))" >> {path}',
        "fi",
    ]


def _crashkernel(fam: str, value: str) -> list[str]:
    quoted = shlex.quote(value)
    if fam == "debian":
        snippet = (
            "# Written by kdiag configure: the capture kernel's memory.  Sourced after\n"
            "# kdump-tools.cfg, so this crashkernel= is the last one and the one the kernel uses.\n"
            f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel={value}"\n'
        )
        return [
            *_heredoc(DEBIAN_GRUB_SNIPPET, snippet),
            'if [ -f "$R"/etc/default/kdump-tools ]; then',
            "    sed -i 's/^USE_KDUMP=.*/USE_KDUMP=1/' \"$R\"/etc/default/kdump-tools",
            "fi",
            "update-grub || true",
        ]
    if fam == "rhel":
        return [f"grubby --update-kernel=ALL --args=crashkernel={quoted} || true"]
    sed = f'/^GRUB_CMDLINE_LINUX_DEFAULT=/{{s/ *crashkernel=[^ "]*//g;s/"$/ crashkernel={value}"/}}'
    return [
        f'sed -i -e {shlex.quote(sed)} "$R"/etc/default/grub',
        f"{layout(fam).grub_update} || true",
    ]


def user_data(
    target: Target,
    *,
    panic_timeout: int = 10,
    crashkernel_size: str | None = None,
    purpose: str = "nmi",
) -> str:
    """The cloud-init user-data script for ``target``."""
    fam = target.family
    if target.arch not in crashkernel.RECOMMENDED:
        known = ", ".join(sorted(crashkernel.RECOMMENDED))
        raise ConfigError(f"--arch {target.arch!r}: kdiag knows {known}")
    if panic_timeout <= 0:
        raise ConfigError("--panic-timeout must be > 0 (seconds before the reboot)")
    value = crashkernel_size or crashkernel.RECOMMENDED[target.arch]
    try:
        crashkernel.reserved_for(value, target.ram or 0)
    except ConfigError as exc:
        raise ConfigError(f"--crashkernel {value!r}: {exc}") from exc
    sizing = crashkernel.explain(value, target.ram) if target.ram else f"crashkernel={value}"
    body = "".join(f"{k} = {v}\n" for k, v in sysctl_settings(panic_timeout, purpose).items())
    out = [
        "#!/bin/sh",
        "# cloud-init user-data written by `kdiag configure --user-data`: kdump readiness for",
        f"# {target.distro} ({fam} family) on {target.arch}.  Installs the packages, writes",
        "# the sysctls and crashkernel=; the reservation takes effect at the next boot:",
        f"# {sizing}.",
        "# KDIAG_ROOT, when set, is a directory to write into instead of /.",
        "set -eu",
        'R="${KDIAG_ROOT:-}"',
        *_install(fam),
        *_heredoc(SYSCTL_FILE, SYSCTL_HEADER + body),
        *_sysrq(sysctlconf.kernel_default("kernel.sysrq", fam)),
        "sysctl --system || true",
        *_crashkernel(fam, value),
        f"systemctl enable {layout(fam).service} || true",
        "# reboot once so that crashkernel= reserves the capture kernel's memory",
    ]
    return "\n".join(out) + "\n"
