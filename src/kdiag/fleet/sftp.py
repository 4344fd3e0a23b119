"""One SFTP session to another machine, for ``ssh://[user@]HOST[:port]/path`` URLs.

Both ``kdiag analyze ssh://...`` (:mod:`kdiag.fleet.remote`) and ``kdiag dumps scan
ssh://...`` (:mod:`kdiag.fleet.remote_scan`) go through :class:`SFTPSession`: the URL, the
connection settings, the host key check, the timeouts and the mapping of SSH and SFTP
failures onto kdiag's typed errors live here once.

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
import contextlib
import os
import re
import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kdiag.errors import BackendUnavailable, ConfigError, KdiagError
from kdiag.fleet.ansible import EXTRA, list_hosts
from kdiag.vmcore import Dump, ProgressFn, open_source
from kdiag.vmcore.source import RangeSource

__all__ = (
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "SFTPSession",
    "SSHLocation",
    "connect_options",
    "inventory_options",
    "parse_ssh_url",
)

_HOST = re.compile(r"[A-Za-z0-9_.:-]{1,253}")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}")
#: seconds to connect (and to authenticate) before giving up
CONNECT_TIMEOUT = 20.0
#: seconds one SFTP request (a listing, an open, a ranged read) may take
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


def connect_options(where: SSHLocation) -> tuple[str, dict[str, Any]]:
    """The address to connect to and the ``asyncssh.connect`` options for ``where``: the
    ssh_config file, then the inventory's variables, then the URL's user and port."""
    options: dict[str, Any] = {"config": _config_paths(), **inventory_options(where.host)}
    host = str(options.pop("host", where.host))
    if where.user:
        options["username"] = where.user
    if where.port:
        options["port"] = where.port
    return host, options


class SFTPSession:
    """One SSH connection and its SFTP client, driven from synchronous code through an
    event loop of its own.  Every request goes through :meth:`run`, which bounds it in
    time and turns SSH and SFTP failures into :class:`ConfigError` (the caller's mistake:
    no such file, no permission) or :class:`BackendUnavailable` (no connection, a host key
    that is not the known one, failed authentication)."""

    def __init__(self, where: SSHLocation) -> None:
        try:
            import asyncssh  # noqa: PLC0415 - optional extra (kdiag[fleet])
        except ImportError:
            raise BackendUnavailable(f"asyncssh is not installed ({EXTRA})") from None
        self.asyncssh: Any = asyncssh
        self.where = where
        self._loop = asyncio.new_event_loop()
        self._conn: Any = None
        self.sftp: Any = None
        try:
            self.run(self._connect(), CONNECT_TIMEOUT, "no SSH connection")
        except BaseException:
            self.close()
            raise

    async def _connect(self) -> None:
        host, options = connect_options(self.where)
        self._conn = await self.asyncssh.connect(host, **options)
        self.sftp = await self._conn.start_sftp_client()

    def url(self, path: str) -> str:
        """The ``ssh://`` URL of ``path`` on this session's host."""
        return str(replace(self.where, path=path))

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float, what: str) -> Any:
        """Run one request; ``what`` names it in the timeout's message (``no listing``)."""
        ssh = self.asyncssh
        where = self.where
        try:
            return self._loop.run_until_complete(asyncio.wait_for(coro, timeout=timeout))
        except TimeoutError:
            raise BackendUnavailable(f"{where}: {what} within {timeout:.0f} s") from None
        except ssh.SFTPNoSuchFile:
            raise ConfigError(f"{where}: no such file or directory") from None
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

    def open_dump(
        self,
        path: str,
        size: int | None = None,
        *,
        progress: ProgressFn | None = None,
        block: int = 64 * 1024,
        cache_blocks: int = 256,
        on_close: Callable[[], None] | None = None,
    ) -> Dump:
        """The dump at ``path`` on this host, read by ranges over this session (the size
        is asked for when not given).  ``on_close`` runs after the dump's file is closed.

        :raises ConfigError: no such file, no access, a directory.
        :raises DumpFormatError: not a crash dump this reader can read (or a compressed one).
        """
        handle = self.run(self.sftp.open(path, "rb"), READ_TIMEOUT, "no open")

        def close() -> None:
            try:
                with contextlib.suppress(KdiagError):  # gone with a broken connection anyway
                    self.run(handle.close(), READ_TIMEOUT, "no close")
            finally:
                if on_close is not None:
                    on_close()

        if size is None:
            try:
                size = self._file_size(handle, path)
            except BaseException:
                close()
                raise

        def fetch(offset: int, length: int) -> bytes:
            return bytes(self.run(handle.read(length, offset), READ_TIMEOUT, "no read"))

        source = RangeSource(fetch, size, block=block, cache_blocks=cache_blocks, on_close=close)
        return open_source(source, name=self.url(path), progress=progress)

    def _file_size(self, handle: Any, path: str) -> int:
        attrs = self.run(handle.stat(), READ_TIMEOUT, "no reply to a stat")
        if attrs.type == self.asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise ConfigError(f"{self.url(path)} is a directory, not a crash dump")
        return int(attrs.size or 0)

    def close(self) -> None:
        """Close the SFTP client and the connection (again: nothing)."""

        async def shut() -> None:
            if self.sftp is not None:
                self.sftp.exit()
            if self._conn is not None:
                self._conn.close()
                await self._conn.wait_closed()

        if self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(shut())
        except (OSError, KdiagError, self.asyncssh.Error, self.asyncssh.SFTPError):
            pass  # closing a broken connection: nothing more to release
        finally:
            self._loop.close()
