"""What a dump's folder name says: the host and the time, as the capture tools name them.

* kexec-tools (Fedora, RHEL, SUSE) and the kdiag lab: ``/var/crash/<host>-<YYYY-MM-DD-HH:MM:SS>/``
  (``<host>`` an address or a name, ``:SS`` absent in old versions);
* kdump-tools (Debian, Ubuntu): ``/var/crash/<YYYYMMDDHHMM>/`` (no host: the time only).

Folder times are local time on the crashed machine; with no zone to go by they are taken as
UTC, and only used when the dump itself holds no time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import PurePath

__all__ = ("FolderFacts", "folder_facts")

_KEXEC = re.compile(
    r"^(?P<host>.+?)-(?P<date>\d{4}-\d{2}-\d{2})-(?P<hh>\d{2}):(?P<mm>\d{2})(?::(?P<ss>\d{2}))?$"
)
_KDUMP_TOOLS = re.compile(r"^(?P<stamp>\d{12})$")
_HOST = re.compile(r"[\w.:%-]{1,255}")


@dataclass(frozen=True)
class FolderFacts:
    host: str | None
    time: dt.datetime | None


def _time(text: str, fmt: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def folder_facts(path: str | PurePath) -> FolderFacts:
    """The host and time the name of the folder holding ``path`` gives (either ``None``)."""
    name = PurePath(path).parent.name
    match = _KEXEC.match(name)
    if match:
        seconds = match["ss"] or "00"
        when = _time(f"{match['date']} {match['hh']}:{match['mm']}:{seconds}", "%Y-%m-%d %H:%M:%S")
        host = match["host"] if _HOST.fullmatch(match["host"]) else None
        return FolderFacts(host, when)
    match = _KDUMP_TOOLS.match(name)
    if match:
        return FolderFacts(None, _time(match["stamp"], "%Y%m%d%H%M"))
    return FolderFacts(None, None)
