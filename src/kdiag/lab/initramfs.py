"""Write a directory tree as a gzip-compressed newc cpio archive (an initramfs), reproducibly.

Entries are sorted, owned by root and dated 0, so the same tree gives the same bytes.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

__all__ = ("write_initramfs",)

_TRAILER = "TRAILER!!!"


def _header(ino: int, mode: int, nlink: int, size: int, name: bytes) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0)
    return b"070701" + "".join(f"{v:08x}" for v in fields).encode()


def _pad(out: gzip.GzipFile, length: int) -> None:
    out.write(b"\0" * (-length % 4))


def _entry(out: gzip.GzipFile, ino: int, mode: int, name: str, data: bytes) -> None:
    raw = name.encode()
    head = _header(ino, mode, 2 if stat.S_ISDIR(mode) else 1, len(data), raw) + raw + b"\0"
    out.write(head)
    _pad(out, len(head))
    out.write(data)
    _pad(out, len(data))


def write_initramfs(root: Path, dest: Path, *, level: int = 6) -> int:
    """Pack ``root`` into ``dest`` (gzip newc cpio); returns the size of ``dest``."""
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0) as out,
    ):
        for ino, rel in enumerate(paths, start=1):
            path = root / rel
            st = path.lstat()
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                _entry(out, ino, stat.S_IFDIR | perm, rel, b"")
            elif stat.S_ISLNK(st.st_mode):
                _entry(out, ino, stat.S_IFLNK | 0o777, rel, os.readlink(path).encode())
            else:
                _entry(out, ino, stat.S_IFREG | perm, rel, path.read_bytes())
        _entry(out, len(paths) + 1, 0, _TRAILER, b"")
    tmp.replace(dest)
    return dest.stat().st_size
