"""Crash dumps on other machines, read in place over SFTP: ``ssh://[user@]HOST[:port]/path``.

Only the byte ranges the reader asks for cross the network (headers, notes, the pages the
kernel log and the triage touch), through :class:`kdiag.vmcore.source.RangeSource`'s block
cache; a 20 GB dump is triaged in a few dozen round trips instead of a 20 GB copy.

The connection (URL, ssh_config and inventory settings, the known host key, timeouts,
errors) is :class:`kdiag.fleet.sftp.SFTPSession`'s, shared with ``kdiag dumps scan
ssh://...``.
"""

from __future__ import annotations

from kdiag.fleet.sftp import SFTPSession, SSHLocation, inventory_options, parse_ssh_url
from kdiag.vmcore import Dump, ProgressFn

__all__ = ("SSHLocation", "inventory_options", "open_remote", "parse_ssh_url")


def open_remote(
    url: str,
    *,
    progress: ProgressFn | None = None,
    block: int = 64 * 1024,
    cache_blocks: int = 256,
) -> Dump:
    """Open the dump at an ``ssh://`` URL, reading only the ranges asked for; closing the
    dump closes its SSH connection.

    :raises ConfigError: a bad URL, a missing file, a directory.
    :raises BackendUnavailable: no connection, an unverifiable host key, no access.
    :raises DumpFormatError: not a crash dump this reader can read (or a compressed one).
    """
    where = parse_ssh_url(url)
    session = SFTPSession(where)
    try:
        return session.open_dump(
            where.path,
            progress=progress,
            block=block,
            cache_blocks=cache_blocks,
            on_close=session.close,
        )
    except BaseException:
        session.close()
        raise
