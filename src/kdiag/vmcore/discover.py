"""Find the crash dumps in a directory tree such as ``/var/crash``.

The names the capture tools write:

* kdump-tools (Debian, Ubuntu): ``/var/crash/<YYYYMMDDHHMM>/dump.<YYYYMMDDHHMM>`` next to
  ``dmesg.<YYYYMMDDHHMM>``; ``dump-incomplete`` while makedumpfile runs or after it failed.
* kexec-tools (Fedora, RHEL, SUSE): ``/var/crash/<host>-<date>/vmcore`` next to
  ``vmcore-dmesg.txt``; ``vmcore-incomplete`` on failure, ``vmcore.flat`` for a flattened
  stream saved as is.
* copies people make: ``vmcore.<anything>`` (``vmcore.1``, ``vmcore.zst``).

The kernel-log text files next to them (``dmesg.*``, ``vmcore-dmesg.txt``) are not dumps.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ("find_dumps", "is_dump_name")

_DUMP_NAME = re.compile(
    r"^(?:vmcore|vmcore-incomplete|vmcore\..+|dump\.\d+(?:\..+)?|dump-incomplete)$"
)
_NOT_A_DUMP = re.compile(r"(?:\.txt|\.log)$")


def is_dump_name(name: str) -> bool:
    """Whether a file called ``name`` is, by the capture tools' naming, a crash dump."""
    return _DUMP_NAME.match(name) is not None and _NOT_A_DUMP.search(name) is None


def _links_last(path: Path) -> tuple[bool, str]:
    return path.is_symlink(), path.name


def find_dumps(root: str | os.PathLike[str]) -> list[Path]:
    """Every crash dump beneath ``root``, sorted; a file reached twice (a symlink to a dump
    that is listed too) counts once, under its real name. Directory symlinks are not
    followed."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        paths = sorted(
            (Path(folder, name) for name in files if is_dump_name(name)), key=_links_last
        )
        for path in paths:
            if path.is_file():
                found.setdefault(os.path.realpath(path), path)
    return sorted(found.values())
