"""Debian packages for the lab guest: resolve, ``apt-get download`` into a cache, unpack.

Nothing is installed on the host. The guest kernel is whatever ``linux-image-amd64`` (or
``linux-image-arm64``) depends on today (``apt-cache show``); the guest userland comes from
``busybox-static``, ``kexec-tools`` and ``makedumpfile`` plus the library packages they depend
on, unpacked with ``dpkg-deb -x`` so the guest does not depend on what the host has installed.

Every function takes the Debian architecture (``amd64``, ``arm64``). A foreign one is asked
for as ``package:arm64``; it needs ``dpkg --add-architecture arm64`` and an ``apt-get update``
(:func:`ensure_architecture` does both once, as root).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import ConfigError

__all__ = (
    "LINKED_PACKAGES",
    "TOOL_PACKAGES",
    "Deb",
    "candidates",
    "download",
    "ensure_architecture",
    "kernel_package",
    "library_closure",
    "unpack",
)

#: userland packages the guest initramfs is assembled from
#: dropbear-bin and openssh-sftp-server: the guest's SSH server and its SFTP subsystem
TOOL_PACKAGES = (
    "busybox-static",
    "kexec-tools",
    "makedumpfile",
    "dropbear-bin",
    "openssh-sftp-server",
)
#: the packages whose binaries are dynamically linked (their libraries are downloaded too)
LINKED_PACKAGES = ("kexec-tools", "makedumpfile", "dropbear-bin", "openssh-sftp-server")

Note = Callable[[str], None]

_LIB_PACKAGE = re.compile(r"^(lib[a-z0-9].*|zlib1g)$")
# libraries pulled in only through debconf/perl/installer tooling: never linked by the tools
_LIB_SKIP = re.compile(r"^(libperl|libdebian-installer|libnewt|libslang|libtextwrap|libgdbm)")


@dataclass(frozen=True)
class Deb:
    """One downloaded package file."""

    package: str
    version: str
    path: Path


def _run(args: list[str], *, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ConfigError(f"{args[0]} is not installed (the lab needs a Debian host)") from exc
    if proc.returncode != 0:
        raise ConfigError(f"{' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _qualified(package: str, arch: str) -> str:
    """``package:arch`` for a foreign architecture, ``package`` for the host's own."""
    return package if arch == host_architecture() else f"{package}:{arch}"


_host_arch: list[str] = []
_updated: list[bool] = []


def host_architecture() -> str:
    """dpkg's native architecture (``amd64`` on the reference machine)."""
    if not _host_arch:
        _host_arch.append(_run(["dpkg", "--print-architecture"]).strip())
    return _host_arch[0]


def ensure_architecture(arch: str, note: Note) -> None:
    """Make ``arch`` known to dpkg and apt (``dpkg --add-architecture``, ``apt-get update``)
    unless it is the host's own or already added."""
    if arch == host_architecture():
        return
    foreign = _run(["dpkg", "--print-foreign-architectures"]).split()
    if arch in foreign:
        return
    note(f"dpkg --add-architecture {arch}; apt-get update")
    _run(["dpkg", "--add-architecture", arch])
    _updated.append(True)
    _run(["apt-get", "update", "-q"])


def _candidate(package: str) -> str | None:
    out = _run(["apt-cache", "policy", package])
    match = re.search(r"Candidate:\s*(\S+)", out)
    if match is None or match.group(1) == "(none)":
        return None
    return match.group(1)


def _ensure_candidate(package: str, note: Note) -> str:
    """The candidate version of ``package``; runs ``apt-get update`` once if there is none."""
    version = _candidate(package)
    if version is None and not _updated:
        note("apt-get update (no candidate for " + package + ")")
        _updated.append(True)
        _run(["apt-get", "update", "-q"])
        version = _candidate(package)
    if version is None:
        raise ConfigError(f"apt has no candidate for {package}")
    return version


def kernel_package(note: Note, arch: str = "amd64") -> tuple[str, str]:
    """``(package, kernel release)`` that ``linux-image-<arch>`` depends on now."""
    meta = _qualified(f"linux-image-{arch}", arch)
    _ensure_candidate(meta, note)
    out = _run(["apt-cache", "show", "--no-all-versions", meta])
    pattern = rf"^Depends:.*?\b(linux-image-(\d[^\s,:]*-{re.escape(arch)}))\b"
    match = re.search(pattern, out, re.MULTILINE)
    if match is None:
        raise ConfigError(f"cannot find the kernel package in {meta}'s Depends")
    return match.group(1), match.group(2)


def _direct_depends(packages: list[str], arch: str) -> dict[str, list[str]]:
    out = _run(
        [
            "apt-cache",
            "depends",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *(_qualified(p, arch) for p in packages),
        ]
    )
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if not line.startswith(" "):
            current = result.setdefault(line.strip().split(":")[0], [])
            continue
        match = re.match(r"\s+\|?(?:Pre)?Depends:\s+(\S+)", line)
        if match and not match.group(1).startswith("<"):
            current.append(match.group(1).split(":")[0])
    return result


def library_closure(packages: Iterable[str], arch: str = "amd64") -> list[str]:
    """The library packages ``packages`` need, following library dependencies only."""
    libs: set[str] = set()
    level = list(packages)
    while level:
        found = _direct_depends(level, arch)
        level = []
        for deps in found.values():
            for dep in deps:
                if _LIB_PACKAGE.match(dep) and not _LIB_SKIP.match(dep) and dep not in libs:
                    libs.add(dep)
                    level.append(dep)
    return sorted(libs)


def _candidates(packages: list[str], arch: str) -> dict[str, str | None]:
    out = _run(["apt-cache", "policy", *(_qualified(p, arch) for p in packages)])
    result: dict[str, str | None] = {}
    name = ""
    for line in out.splitlines():
        if line and not line.startswith(" "):
            name = line.rstrip(":").split(":")[0]
        match = re.match(r"\s+Candidate:\s*(\S+)", line)
        if match and name:
            result[name] = None if match.group(1) == "(none)" else match.group(1)
    return result


def candidates(packages: Iterable[str], note: Note, arch: str = "amd64") -> dict[str, str]:
    """The candidate version of each package (``apt-get update`` once if one has none)."""
    names = list(packages)
    found = _candidates(names, arch)
    return {
        name: found.get(name) or _ensure_candidate(_qualified(name, arch), note) for name in names
    }


def download(versions: dict[str, str], dest: Path, note: Note, arch: str = "amd64") -> list[Deb]:
    """``apt-get download`` each ``package=version`` into ``dest`` unless already there."""
    dest.mkdir(parents=True, exist_ok=True)
    debs = []
    for package, version in versions.items():
        file_version = version.replace(":", "%3a")
        pattern = f"{package}_{file_version}_*.deb"  # one directory per architecture
        matches = sorted(dest.glob(pattern))
        if not matches:
            note(f"apt-get download {_qualified(package, arch)}={version}")
            _run(["apt-get", "download", "-q", f"{_qualified(package, arch)}={version}"], cwd=dest)
            matches = sorted(dest.glob(pattern))
        if not matches:
            raise ConfigError(f"apt-get download {package} left no .deb in {dest}")
        debs.append(Deb(package, version, matches[0]))
    return debs


def unpack(deb: Deb, root: Path) -> None:
    """``dpkg-deb -x`` the package into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb.path), str(root)])
