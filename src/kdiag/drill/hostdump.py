"""A host-side dump: QEMU writes the guest's memory itself (QMP ``dump-guest-memory``,
``kdump-zlib``), for when the guest's own capture failed.

The file is created here first, mode 0600 (it holds the machine's memory), and QEMU writes
into it (``file:`` protocol: QEMU's own host, so this is for a local QEMU).  QEMU stops the
guest's vCPUs while it dumps and resumes them afterwards; ``pause`` stops them first and
keeps them stopped until the dump is done (a guest about to reboot after ``kernel.panic``
seconds would otherwise be dumped after its reboot), then resumes them.

A host dump has no ``CRASHTIME`` (the guest never reached ``crash_kexec()``), so its crash
time is unknown; its kernel log, release and panic are read as from any dump, thanks to the
VMCOREINFO the guest left in QEMU's ``vmcoreinfo`` device.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, QMPClient, QMPError

from kdiag.backends.base import Target
from kdiag.backends.libvirt import LibvirtSettings, import_libvirt, map_libvirt_errors
from kdiag.backends.qmp import parse_address
from kdiag.errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = ("take_host_dump", "take_libvirt_dump")

_CONNECT_SECONDS = 5.0


async def _connect(address: str) -> QMPClient:
    deadline = time.monotonic() + _CONNECT_SECONDS
    while True:
        client = QMPClient("kdiag-drill-host-dump")
        try:
            await client.connect(parse_address(address))
        except ConnectError:
            if time.monotonic() > deadline:  # another client holds the monitor
                raise
            await asyncio.sleep(0.05)
        else:
            return client


async def _dump(address: str, path: Path, pause: bool, timeout: float) -> None:
    client = await _connect(address)
    stopped = False
    try:
        if pause:
            status: Any = await client.execute("query-status")
            if status.get("status") == "running":
                await client.execute("stop")
                stopped = True
        await client.execute(
            "dump-guest-memory",
            {"paging": False, "protocol": f"file:{path}", "detach": True, "format": "kdump-zlib"},
        )
        deadline = time.monotonic() + timeout
        while True:
            state: Any = await client.execute("query-dump")
            if state.get("status") == "completed":
                break
            if state.get("status") == "failed":
                raise BackendError(f"QEMU's dump-guest-memory failed writing {path}")
            if time.monotonic() > deadline:
                raise BackendTimeout(f"dump-guest-memory did not finish within {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        if stopped:
            with contextlib.suppress(QMPError, OSError):
                await client.execute("cont")
        with contextlib.suppress(Exception):  # the dump is done or failed either way
            await client.disconnect()


def take_host_dump(
    address: str, path: Path, *, pause: bool = False, timeout: float = 300.0
) -> Path:
    """Have QEMU at ``address`` (its QMP socket) write the guest's memory to ``path``.

    :raises BackendUnavailable: the monitor cannot be reached.
    :raises BackendError: QEMU refused or failed the dump (``BackendTimeout``: too slow).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        asyncio.run(_dump(address, path, pause, timeout))
    except BackendError:
        raise
    except ConnectError as exc:
        raise BackendUnavailable(f"QMP {address}: cannot connect: {exc}") from exc
    except (QMPError, OSError, EOFError) as exc:
        raise BackendError(
            f"QMP {address}: dump-guest-memory: {type(exc).__name__}: {exc}"
        ) from exc
    path.chmod(0o600)
    return path


def take_libvirt_dump(settings: LibvirtSettings, target: Target, path: Path) -> Path:
    """libvirt's ``virDomainCoreDumpWithFormat`` (``kdump-zlib``, memory only) of the
    domain into ``path``, written by the libvirt daemon on its host.

    :raises BackendUnavailable: no libvirt-python (the extra), or no daemon.
    :raises BackendError: libvirt refused or failed the dump.
    """
    libvirt = import_libvirt()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with map_libvirt_errors(target, settings):
        conn = libvirt.openAuth(settings.uri, [[], None, None], 0)
        try:
            uid = settings.domain_uuid
            dom = conn.lookupByUUIDString(uid) if uid else conn.lookupByName(settings.domain)
            dom.coreDumpWithFormat(
                str(path),
                libvirt.VIR_DOMAIN_CORE_DUMP_FORMAT_KDUMP_ZLIB,
                libvirt.VIR_DUMP_MEMORY_ONLY,
            )
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
    with contextlib.suppress(OSError):  # the daemon's file on this host: private
        path.chmod(0o600)
    return path
