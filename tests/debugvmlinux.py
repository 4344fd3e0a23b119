"""The debug vmlinux of the fixtures' kernel, for the tests that need types (drgn, crash).

It comes from Debian's ``linux-image-<kver>-dbg`` package (about 860 MB), fetched with
``apt-get download`` once and reduced to the one file the tests need, kept under
``cache_dir()/debuginfo``. ``$KDIAG_DEBUG_VMLINUX`` points at an existing copy instead.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kdiag.paths import cache_dir


def fixtures_kernel(meta_path: Path) -> tuple[str, str]:
    """(kernel release, Debian version) of a fixture, from its meta.json kernel_package."""
    package, version = json.loads(meta_path.read_text())["kernel_package"].split()
    return package.removeprefix("linux-image-"), version


def debug_vmlinux(release: str, version: str) -> Path:
    """The path of ``vmlinux-<release>`` with DWARF, downloading and extracting it if needed."""
    explicit = os.environ.get("KDIAG_DEBUG_VMLINUX")
    if explicit:
        return Path(explicit)
    target = cache_dir() / "debuginfo" / f"vmlinux-{release}"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        package = f"linux-image-{release}-dbg={version}"
        subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        member = f"./usr/lib/debug/boot/vmlinux-{release}"
        with subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
        ) as p:
            subprocess.run(["tar", "-x", "-C", tmp, member], stdin=p.stdout, check=True)
        if p.returncode:
            raise RuntimeError(f"dpkg-deb failed on {deb.name}")
        shutil.move(Path(tmp) / member, target)
    return target
