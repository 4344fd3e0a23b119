"""``kdiag dumps scan ssh://[user@]HOST[:port]/var/crash``: index a remote crash tree in place.

One SSH connection per scan.  The tree is walked over SFTP (directory listings only;
directory symlinks are not followed, a symlink to a dump file counts once, under its real
name), each file named the way capture tools name dumps
(:func:`kdiag.vmcore.discover.is_dump_name`) is opened over SFTP and read through
:class:`kdiag.vmcore.source.RangeSource`: triage and the content identity touch the
headers, notes and log pages only, never the whole file.  The catalog records each dump
under the same content identity a local scan computes, with its ``ssh://`` URL as path,
so a dump scanned remotely and then locally (or copied home) is one entry with two paths.

A file's size and modification time come from SFTP (no device or inode: both 0), so a
rescan skips the files that have not changed.  Compressed files are rejected (reading them
needs the whole file); ``makedumpfile --split`` members are indexed one by one.
"""

from __future__ import annotations

import posixpath
import stat
from dataclasses import dataclass
from typing import Any

from kdiag.catalog.records import ScanReport
from kdiag.catalog.scan import ScanProgress, scan_files
from kdiag.errors import ConfigError
from kdiag.fleet.sftp import READ_TIMEOUT, SFTPSession, SSHLocation, parse_ssh_url
from kdiag.store import dumps as dumpdb
from kdiag.store._base import StoreBase
from kdiag.vmcore import Dump
from kdiag.vmcore.discover import is_dump_name

__all__ = ("MAX_ENTRIES", "RemoteTree", "scan_remote")

#: directory entries a walk looks at before refusing the tree (a runaway tree)
MAX_ENTRIES = 100_000
#: directory depth a walk descends to (/var/crash/<folder>/<file> is 2)
MAX_DEPTH = 8


@dataclass(frozen=True)
class _Found:
    path: str
    size: int
    mtime_ns: int


class RemoteTree:
    """A remote tree listed, and its dumps read, over one :class:`SFTPSession`."""

    def __init__(self, where: SSHLocation) -> None:
        self.where = where
        self._session = SFTPSession(where)
        self._sftp: Any = self._session.sftp
        self._ssh: Any = self._session.asyncssh

    def url(self, path: str) -> str:
        return self._session.url(path)

    # --- the walk ---------------------------------------------------------------------------

    async def _walk(self) -> list[_Found]:
        """The order and the choices of a local scan (:func:`kdiag.vmcore.discover.find_dumps`):
        folders depth first in name order, in each folder regular files before symlinks; a
        file reached twice counts once, under the first name met."""
        top = self.where.path
        attrs = await self._sftp.stat(top)
        if not stat.S_ISDIR(attrs.permissions or 0):
            return [await self._file(top, attrs)] if stat.S_ISREG(attrs.permissions or 0) else []
        found: dict[str, _Found] = {}
        budget = [MAX_ENTRIES]
        await self._folder(top, 0, found, budget)
        return sorted(found.values(), key=lambda f: f.path)

    async def _folder(
        self, folder: str, depth: int, found: dict[str, _Found], budget: list[int]
    ) -> None:
        entries = sorted(
            (e for e in await self._sftp.readdir(folder) if str(e.filename) not in (".", "..")),
            key=lambda e: str(e.filename),
        )
        budget[0] -= len(entries)
        if budget[0] < 0:
            raise ConfigError(f"{self.where}: over {MAX_ENTRIES} entries, not a crash tree")
        real_folder = str(await self._sftp.realpath(folder))
        dumps = [e for e in entries if is_dump_name(str(e.filename))]
        for entry in sorted(dumps, key=lambda e: stat.S_ISLNK(e.attrs.permissions or 0)):
            path = posixpath.join(folder, str(entry.filename))
            mode = entry.attrs.permissions or 0
            if stat.S_ISREG(mode):
                real, attrs = posixpath.join(real_folder, str(entry.filename)), entry.attrs
            elif stat.S_ISLNK(mode):
                try:
                    real = str(await self._sftp.realpath(path))
                    attrs = await self._sftp.stat(path)
                except (self._ssh.SFTPError, OSError):
                    continue  # a dangling link: nothing to index
                if not stat.S_ISREG(attrs.permissions or 0):
                    continue
            else:
                continue
            if real not in found:
                found[real] = await self._file(path, attrs)
        if depth < MAX_DEPTH:
            for entry in entries:  # directory symlinks are not followed
                if stat.S_ISDIR(entry.attrs.permissions or 0):
                    name = posixpath.join(folder, str(entry.filename))
                    await self._folder(name, depth + 1, found, budget)

    @staticmethod
    async def _file(path: str, attrs: Any) -> _Found:
        mtime_ns = attrs.mtime_ns if attrs.mtime_ns is not None else 0
        return _Found(path, int(attrs.size or 0), int(attrs.mtime or 0) * 10**9 + mtime_ns)

    def walk(self) -> list[_Found]:
        """Every dump file under the URL's path (or the file itself)."""
        found: list[_Found] = self._session.run(self._walk(), READ_TIMEOUT, "no listing")
        return found

    # --- reading one dump -------------------------------------------------------------------

    def open_dump(self, path: str, size: int) -> Dump:
        """The dump at ``path`` of this host, read by ranges over this session."""
        return self._session.open_dump(path, size)

    def close(self) -> None:
        self._session.close()


def scan_remote(
    store: StoreBase,
    url: str,
    *,
    host: str | None = None,
    account_id: str | None = None,
    progress: ScanProgress | None = None,
) -> ScanReport:
    """Index every dump under an ``ssh://`` URL (a ``/var/crash`` tree or one file).

    :raises ConfigError: a bad URL, a missing tree.
    :raises BackendUnavailable: no connection, an unverifiable host key, no access.
    """
    where = parse_ssh_url(url)
    tree = RemoteTree(where)
    try:
        found = tree.walk()
        sizes = {tree.url(f.path): f for f in found}
        files = [
            dumpdb.FileFacts(
                path=tree.url(f.path),
                part=0,
                size=f.size,
                compression=None,  # a compressed file is refused when opened
                device=0,
                inode=0,
                mtime_ns=f.mtime_ns,
            )
            for f in found
        ]

        def opener(name: str) -> Dump:
            return tree.open_dump(sizes[name].path, sizes[name].size)

        return scan_files(store, files, opener, host=host, account_id=account_id, progress=progress)
    finally:
        tree.close()
