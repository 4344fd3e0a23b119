"""A real Debian 12 root tree with kdump-tools, built by debootstrap and cached as a tarball.

The first build downloads from the Debian mirror apt already uses (read from
``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d``) and takes a minute or two; later
runs extract ``cache_dir()/readiness/<name>.tar.gz`` in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from kdiag.paths import cache_dir
from tests.conftest import require_tool

__all__ = ("INCLUDE", "SUITE", "debian_mirror", "extract_tree", "tree_tarball")

SUITE = "bookworm"
INCLUDE = ("kdump-tools", "kexec-tools", "makedumpfile")
_NAME = f"debian-{SUITE}-minbase-kdump-tools-v1.tar.gz"


def _sources() -> list[str]:
    texts = []
    main = Path("/etc/apt/sources.list")
    if main.is_file():
        texts.append(main.read_text(errors="replace"))
    directory = Path("/etc/apt/sources.list.d")
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix in (".list", ".sources"):
                texts.append(path.read_text(errors="replace"))
    return texts


def debian_mirror() -> str:
    """The Debian mirror apt uses for ``bookworm`` (main suite, not security or updates)."""
    for text in _sources():
        # one-line format: deb [opts] URL SUITE COMPONENTS
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
        # deb822 format: stanzas with URIs: and Suites:
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
            if SUITE in fields.get("suites", []) and "deb" in fields.get("types", ["deb"]):
                uris = fields.get("uris", [])
                if uris:
                    return uris[0]
    return "http://deb.debian.org/debian"


def tree_tarball() -> Path:
    """The cached tarball, built with debootstrap when missing."""
    cache = cache_dir() / "readiness"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / _NAME
    if tarball.is_file():
        return tarball
    debootstrap = require_tool("debootstrap")
    require_tool("tar")
    build = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
    try:
        target = build / "root"
        proc = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(target),
                debian_mirror(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            log = target / "debootstrap/debootstrap.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else proc.stderr
            raise RuntimeError(f"debootstrap failed ({proc.returncode}):\n{detail}")
        partial = cache / (_NAME + ".partial")
        subprocess.run(
            [
                "tar",
                "-C",
                str(target),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "--exclude=./var/cache/apt/archives/*.deb",
                "-czf",
                str(partial),
                ".",
            ],
            check=True,
        )
        os.replace(partial, tarball)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return tarball


def extract_tree(dest: Path) -> Path:
    """A fresh copy of the Debian tree at ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(dest), "-xzf", str(tree_tarball())], check=True)
    return dest
