"""Distribution family and where each family keeps its kdump configuration.

Families: ``rhel`` (RHEL, CentOS, Fedora, Rocky, Alma, Oracle Linux, Amazon Linux),
``debian`` (Debian, Ubuntu) and ``suse`` (SLES, openSUSE).  Also the small parsers for the
files involved: shell-style ``KEY=value`` files and ``/etc/kdump.conf``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = (
    "DEBIAN_GRUB_SNIPPET",
    "FAMILIES",
    "Layout",
    "family",
    "kdump_conf_directives",
    "layout",
    "os_release",
    "shell_value",
)


@dataclass(frozen=True)
class Layout:
    """A family's files, service and packages."""

    family: str
    service: str
    kdump_files: tuple[str, ...]
    grub_file: str  # where configure puts crashkernel= (see DEBIAN_GRUB_SNIPPET)
    grub_key: str
    packages: tuple[str, ...]
    install: tuple[str, ...]  # package-manager command, packages appended (non-interactive)
    grub_update: str  # command that regenerates the boot loader config


#: On Debian and Ubuntu configure writes crashkernel= into a grub.d snippet of its own, never
#: into /etc/default/grub.d/kdump-tools.cfg: that file is a dpkg conffile of kdump-tools, so
#: writing it before the package is installed (or changing it) makes the install or the next
#: upgrade stop at a conffile prompt.  grub-mkconfig sources grub.d/*.cfg in name order and
#: the kernel honours the last crashkernel= on its command line, so the name sorts after
#: kdump-tools.cfg (which appends Debian's own crashkernel=) and after cloud images'
#: 50-cloudimg-settings.cfg (which assigns the whole variable).
DEBIAN_GRUB_SNIPPET = "/etc/default/grub.d/zz-kdiag-crashkernel.cfg"

FAMILIES: Mapping[str, Layout] = {
    "rhel": Layout(
        "rhel",
        "kdump",
        ("/etc/kdump.conf", "/etc/sysconfig/kdump"),
        "/etc/default/grub",
        "GRUB_CMDLINE_LINUX",
        ("kexec-tools", "makedumpfile", "crash"),
        ("dnf", "install", "-y"),
        "grubby --update-kernel=ALL --args=crashkernel=SIZE",
    ),
    "debian": Layout(
        "debian",
        "kdump-tools",
        ("/etc/default/kdump-tools",),
        DEBIAN_GRUB_SNIPPET,
        "GRUB_CMDLINE_LINUX_DEFAULT",
        ("kdump-tools", "kexec-tools", "makedumpfile", "crash"),
        (
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ),
        "update-grub",
    ),
    "suse": Layout(
        "suse",
        "kdump",
        ("/etc/sysconfig/kdump",),
        "/etc/default/grub",
        "GRUB_CMDLINE_LINUX_DEFAULT",
        ("kdump", "kexec-tools", "makedumpfile", "crash"),
        ("zypper", "--non-interactive", "install"),
        "grub2-mkconfig -o /boot/grub2/grub.cfg",
    ),
}

_RHEL_IDS = {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "redhat"}
_DEBIAN_IDS = {"debian", "ubuntu"}
_SUSE_IDS = {"suse", "sles", "opensuse", "opensuse-leap", "opensuse-tumbleweed", "sle"}


def shell_value(content: str, key: str) -> str | None:
    """The last ``KEY=value`` assignment in a shell-style file, unquoted, or None."""
    found = None
    for line in content.splitlines():
        stripped = line.strip()
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        if not stripped.startswith(key + "="):
            continue
        raw = stripped[len(key) + 1 :]
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            words = [raw.strip("\"'")]
        found = " ".join(words)
    return found


def os_release(files: Mapping[str, str]) -> dict[str, str]:
    """os-release keys (``/etc/os-release``, else ``/usr/lib/os-release``)."""
    content = files.get("/etc/os-release") or files.get("/usr/lib/os-release") or ""
    out = {}
    for line in content.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, _value = line.partition("=")
            value = shell_value(line, key.strip())
            if value is not None:
                out[key.strip()] = value
    return out


def family(files: Mapping[str, str]) -> str | None:
    """``rhel``, ``debian``, ``suse`` or None, from os-release and release files."""
    release = os_release(files)
    ids = [release.get("ID", ""), *release.get("ID_LIKE", "").split()]
    for raw in ids:
        ident = raw.lower()
        if ident in _RHEL_IDS:
            return "rhel"
        if ident in _DEBIAN_IDS:
            return "debian"
        if ident in _SUSE_IDS or "suse" in ident:
            return "suse"
    if "/etc/redhat-release" in files or "/etc/system-release" in files:
        return "rhel"
    if "/etc/debian_version" in files:
        return "debian"
    if "/etc/kdump.conf" in files:
        return "rhel"
    if "/etc/default/kdump-tools" in files:
        return "debian"
    return None


def layout(name: str) -> Layout:
    return FAMILIES[name]


def kdump_conf_directives(content: str) -> list[tuple[str, str]]:
    """(directive, rest) pairs of ``/etc/kdump.conf``, comments and blanks dropped."""
    out = []
    for line in content.splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        word, _, rest = text.partition(" ")
        out.append((word, rest.strip()))
    return out
