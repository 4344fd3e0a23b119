"""Real dumps written by Debian's makedumpfile from the ``nmi-elf`` fixture (an ELF vmcore,
the ``/proc/vmcore`` form makedumpfile reads): a whole kdump file and ``--split`` sets.

They are made once and kept under ``kdiag.paths.cache_dir()/makedumpfile/`` (keyed by the
fixture's sha256 and makedumpfile's version); a folder is renamed into place only when
makedumpfile succeeded, so a broken run leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from kdiag.paths import cache_dir
from tests.vmcore._fixtures import meta

SOURCE = "nmi-elf"


def _makedumpfile_version() -> str:
    run = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "makedumpfile"],
        capture_output=True,
        text=True,
        check=False,
    )
    return run.stdout.strip().replace(":", "_") or "unknown"


def made(
    elf: Callable[[str], Path], label: str, options: Sequence[str], outputs: Sequence[str]
) -> list[Path]:
    """``makedumpfile OPTIONS ELF OUTPUTS...`` run once; the output paths, in order."""
    info = meta(SOURCE)
    digest = (info.get("raw_sha256") or info.get("sha256") or "nosum")[:16]
    folder = cache_dir() / "makedumpfile" / f"{SOURCE}-{digest}-{_makedumpfile_version()}" / label
    if not all((folder / name).is_file() for name in outputs):
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{label}-"))
        try:
            run = subprocess.run(
                ["makedumpfile", *options, str(elf(SOURCE)), *(str(work / o) for o in outputs)],
                capture_output=True,
                timeout=300,
                check=False,
            )
            assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(work, folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return [folder / name for name in outputs]
