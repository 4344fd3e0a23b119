"""Debian packages for the lab guest: resolve, ``apt-get download`` into a cache, unpack.

Nothing is installed on the host. The guest kernel is whatever ``linux-image-amd64`` depends
on today (``apt-cache show``); the guest userland comes from ``busybox-static``,
``kexec-tools`` and ``makedumpfile`` plus the library packages they depend on, unpacked with
``dpkg-deb -x`` so the guest does not depend on what the host has installed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import ConfigError

__all__ = (
    "TOOL_PACKAGES",
    "Deb",
    "candidates",
    "download",
    "kernel_package",
    "library_closure",
    "unpack",
)

#: userland packages the guest initramfs is assembled from
TOOL_PACKAGES = ("busybox-static", "kexec-tools", "makedumpfile")

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


def _candidate(package: str) -> str | None:
    out = _run(["apt-cache", "policy", package])
    match = re.search(r"Candidate:\s*(\S+)", out)
    if match is None or match.group(1) == "(none)":
        return None
    return match.group(1)


_updated: list[bool] = []


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


def kernel_package(note: Note) -> tuple[str, str]:
    """``(package, kernel release)`` that ``linux-image-amd64`` depends on now."""
    _ensure_candidate("linux-image-amd64", note)
    out = _run(["apt-cache", "show", "--no-all-versions", "linux-image-amd64"])
    match = re.search(r"^Depends:.*?\b(linux-image-(\d[^\s,]*-amd64))\b", out, re.MULTILINE)
    if match is None:
        raise ConfigError("cannot find the kernel package in linux-image-amd64's Depends")
    return match.group(1), match.group(2)


def _direct_depends(packages: list[str]) -> dict[str, list[str]]:
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
            *packages,
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


def library_closure(packages: Iterable[str]) -> list[str]:
    """The library packages ``packages`` need, following library dependencies only."""
    libs: set[str] = set()
    level = list(packages)
    while level:
        found = _direct_depends(level)
        level = []
        for deps in found.values():
            for dep in deps:
                if _LIB_PACKAGE.match(dep) and not _LIB_SKIP.match(dep) and dep not in libs:
                    libs.add(dep)
                    level.append(dep)
    return sorted(libs)


def _candidates(packages: list[str]) -> dict[str, str | None]:
    out = _run(["apt-cache", "policy", *packages])
    result: dict[str, str | None] = {}
    name = ""
    for line in out.splitlines():
        if line and not line.startswith(" "):
            name = line.rstrip(":").split(":")[0]
        match = re.match(r"\s+Candidate:\s*(\S+)", line)
        if match and name:
            result[name] = None if match.group(1) == "(none)" else match.group(1)
    return result


def candidates(packages: Iterable[str], note: Note) -> dict[str, str]:
    """The candidate version of each package (``apt-get update`` once if one has none)."""
    names = list(packages)
    found = _candidates(names)
    return {name: found.get(name) or _ensure_candidate(name, note) for name in names}


def download(versions: dict[str, str], dest: Path, note: Note) -> list[Deb]:
    """``apt-get download`` each ``package=version`` into ``dest`` unless already there."""
    dest.mkdir(parents=True, exist_ok=True)
    debs = []
    for package, version in versions.items():
        file_version = version.replace(":", "%3a")
        matches = sorted(dest.glob(f"{package}_{file_version}_*.deb"))
        if not matches:
            note(f"apt-get download {package}={version}")
            _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=dest)
            matches = sorted(dest.glob(f"{package}_{file_version}_*.deb"))
        if not matches:
            raise ConfigError(f"apt-get download {package} left no .deb in {dest}")
        debs.append(Deb(package, version, matches[0]))
    return debs


def unpack(deb: Deb, root: Path) -> None:
    """``dpkg-deb -x`` the package into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb.path), str(root)])
