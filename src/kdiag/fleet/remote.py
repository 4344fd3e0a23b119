"""Crash dumps on other machines, read in place over SFTP: ``ssh://[user@]HOST[:port]/path``.

Only the byte ranges the reader asks for cross the network (headers, notes, the pages the
kernel log and the triage touch), through :class:`kdiag.vmcore.source.RangeSource`'s block
cache; a 20 GB dump is triaged in a few dozen round trips instead of a 20 GB copy.

Connection settings come from OpenSSH client configuration, as ``ssh HOST`` would use
them: ``$KDIAG_SSH_CONFIG`` (an ssh_config file) if set, else ``~/.ssh/config``
(``HostName``, ``Port``, ``User``, ``IdentityFile``, ``UserKnownHostsFile``, ...).  With
``$KDIAG_INVENTORY`` set, a HOST that is a host of that Ansible inventory is reached the way
Ansible reaches it: ``ansible_host``, ``ansible_port``, ``ansible_user``,
``ansible_ssh_private_key_file`` and a ``UserKnownHostsFile`` in ``ansible_ssh_common_args``
win over the ssh_config file.  The host key must be known (``known_hosts``): an unknown or
changed key is refused.
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdiag.errors import BackendUnavailable, ConfigError, KdiagError
from kdiag.fleet.ansible import EXTRA, list_hosts
from kdiag.vmcore import Dump, ProgressFn, open_source
from kdiag.vmcore.source import RangeSource

__all__ = ("RemoteDump", "SSHLocation", "inventory_options", "open_remote", "parse_ssh_url")

_HOST = re.compile(r"[A-Za-z0-9_.:-]{1,253}")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}")
#: seconds to connect (and to authenticate) before giving up
CONNECT_TIMEOUT = 20.0
#: seconds one ranged read may take
READ_TIMEOUT = 120.0


@dataclass(frozen=True)
class SSHLocation:
    """A parsed ``ssh://`` URL."""

    host: str
    path: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{who}{self.host}{port}{self.path}"


def parse_ssh_url(url: str) -> SSHLocation:
    """``ssh://[user@]host[:port]/absolute/path``.

    :raises ConfigError: anything else (no path, a password in the URL, a bad port).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"not an ssh://[user@]HOST[:port]/PATH URL: {url[:200]!r}")
    if parts.password is not None:
        raise ConfigError("ssh:// URLs take no password: use keys (ssh-agent, IdentityFile)")
    if parts.query or parts.fragment:
        raise ConfigError("ssh:// URLs take no ?query or #fragment")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"bad port in {url[:200]!r}") from None
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/") or path == "/" or "\0" in path:
        raise ConfigError(f"ssh:// URL needs an absolute file path: {url[:200]!r}")
    host = parts.hostname
    if not _HOST.fullmatch(host):
        raise ConfigError(f"bad host name in {url[:200]!r}")
    user = urllib.parse.unquote(parts.username) if parts.username else None
    if user is not None and not _USER.fullmatch(user):
        raise ConfigError(f"bad user name in {url[:200]!r}")
    return SSHLocation(host=host, path=path, user=user, port=port)


_KNOWN_HOSTS = re.compile(r"UserKnownHostsFile=(\S+)")


def inventory_options(host: str) -> dict[str, Any]:
    """asyncssh options for ``host`` from ``$KDIAG_INVENTORY``'s host variables (empty when
    unset or when the inventory has no such host)."""
    inventory = os.environ.get("KDIAG_INVENTORY")
    if not inventory:
        return {}
    try:
        hv = list_hosts(inventory, host).get(host)
    except ConfigError:
        return {}
    if not hv:
        return {}
    options: dict[str, Any] = {}
    if hv.get("ansible_host"):
        options["host"] = str(hv["ansible_host"])
    if hv.get("ansible_port"):
        options["port"] = int(hv["ansible_port"])
    if hv.get("ansible_user"):
        options["username"] = str(hv["ansible_user"])
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    if key:
        options["client_keys"] = [str(Path(str(key)).expanduser())]
    args = f"{hv.get('ansible_ssh_common_args', '')} {hv.get('ansible_ssh_extra_args', '')}"
    known = _KNOWN_HOSTS.search(args)
    if known:
        options["known_hosts"] = str(Path(known.group(1)).expanduser())
    return options


def _config_paths() -> list[str]:
    explicit = os.environ.get("KDIAG_SSH_CONFIG")
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigError(f"KDIAG_SSH_CONFIG={explicit}: no such file")
        return [explicit]
    default = Path.home() / ".ssh" / "config"
    return [str(default)] if default.is_file() else []


class RemoteDump:
    """The SFTP session behind one remote dump: an event loop of its own, a connection,
    the open file.  Closed with the dump (the source's ``on_close``)."""

    def __init__(self, where: SSHLocation) -> None:
        try:
            import asyncssh  # noqa: PLC0415 - optional extra (kdiag[fleet])
        except ImportError:
            raise BackendUnavailable(f"asyncssh is not installed ({EXTRA})") from None
        self._asyncssh: Any = asyncssh
        self.where = where
        self._loop = asyncio.new_event_loop()
        self._conn: Any = None
        self._sftp: Any = None
        self._file: Any = None
        self.size = 0
        try:
            self._loop.run_until_complete(self._open())
        except BaseException:
            self.close()
            raise

    async def _open(self) -> None:
        ssh = self._asyncssh
        where = self.where
        options: dict[str, Any] = {"config": _config_paths(), **inventory_options(where.host)}
        host = options.pop("host", where.host)
        if where.user:
            options["username"] = where.user
        if where.port:
            options["port"] = where.port
        try:
            self._conn = await asyncio.wait_for(
                ssh.connect(host, **options), timeout=CONNECT_TIMEOUT
            )
            self._sftp = await self._conn.start_sftp_client()
            self._file = await self._sftp.open(where.path, "rb")
            attrs = await self._file.stat()
        except TimeoutError:
            raise BackendUnavailable(
                f"{where}: no SSH connection within {CONNECT_TIMEOUT:.0f} s"
            ) from None
        except ssh.SFTPNoSuchFile:
            raise ConfigError(f"{where}: no such file") from None
        except ssh.SFTPPermissionDenied:
            raise ConfigError(f"{where}: permission denied") from None
        except ssh.HostKeyNotVerifiable as exc:
            raise BackendUnavailable(f"{where}: host key not verifiable ({exc.reason})") from None
        except ssh.PermissionDenied:
            raise BackendUnavailable(f"{where}: SSH authentication failed") from None
        except (ssh.Error, ssh.SFTPError) as exc:
            raise BackendUnavailable(f"{where}: {type(exc).__name__}: {exc.reason}") from None
        except OSError as exc:
            raise BackendUnavailable(f"{where}: {exc.strerror or exc}") from None
        if attrs.type == ssh.FILEXFER_TYPE_DIRECTORY:
            raise ConfigError(f"{where} is a directory, not a crash dump")
        self.size = int(attrs.size or 0)

    def fetch(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``offset`` (fewer only past the end)."""
        try:
            data = self._loop.run_until_complete(
                asyncio.wait_for(self._file.read(size, offset), timeout=READ_TIMEOUT)
            )
        except TimeoutError:
            raise BackendUnavailable(
                f"{self.where}: a read took over {READ_TIMEOUT:.0f} s"
            ) from None
        except (self._asyncssh.Error, self._asyncssh.SFTPError, OSError) as exc:
            raise BackendUnavailable(f"{self.where}: read failed: {exc}") from None
        return bytes(data)

    def close(self) -> None:
        async def shut() -> None:
            if self._file is not None:
                await self._file.close()
            if self._sftp is not None:
                self._sftp.exit()
            if self._conn is not None:
                self._conn.close()
                await self._conn.wait_closed()

        if self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(shut())
        except (OSError, KdiagError, self._asyncssh.Error, self._asyncssh.SFTPError):
            pass  # closing a broken connection: nothing more to release
        finally:
            self._loop.close()


def open_remote(
    url: str,
    *,
    progress: ProgressFn | None = None,
    block: int = 64 * 1024,
    cache_blocks: int = 256,
) -> Dump:
    """Open the dump at an ``ssh://`` URL, reading only the ranges asked for.

    :raises ConfigError: a bad URL, a missing file.
    :raises BackendUnavailable: no connection, an unverifiable host key, no access.
    :raises DumpFormatError: not a crash dump this reader can read (or a compressed one).
    """
    where = parse_ssh_url(url)
    session = RemoteDump(where)
    source = RangeSource(
        session.fetch, session.size, block=block, cache_blocks=cache_blocks, on_close=session.close
    )
    return open_source(source, name=str(where), progress=progress)
