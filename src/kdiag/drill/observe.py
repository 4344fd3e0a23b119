"""Watching the machine after the send.

:class:`LabWatch` follows a lab guest (console, QMP events, the watcher's boot counter and
crash tree): everything the drill needs to name a cause.  :class:`DumpDirWatch` watches only
a directory where the machine's dumps appear (a mounted or synced ``/var/crash``): the panic
and the reboot cannot be seen there, only the dump.

Both offer ``poll()`` (returns what is new, as short notes for the progress display) and
the observations as attributes the runner turns into :class:`~kdiag.drill.evidence.Evidence`.

A Debian lab guest (:mod:`kdiag.lab.distro`) captures with Debian's kdump-tools, which
announces nothing to the lab: the capture kernel is seen by its command line
(``elfcorehdr=``, which only a kexec'd capture kernel has) and by the drop-in's mark, a
failed save by kdump-tools' own console lines, and the dump by the crash directories
``debian-ready.sh`` lists at the next boot. A directory that was not listed before the send
and holds a ``dump.*`` file is this crash's: it is copied out of the running guest's disk
(vCPUs stopped for the copy) once the guest is ready again.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from kdiag.lab.console import ConsoleFollower
from kdiag.lab.guest import Guest

__all__ = ("DumpDirWatch", "LabWatch", "lab_guest_for")

_EXCERPT = 40
#: names of dumps still being written (kdump-tools' vmcore-incomplete, a partial copy)
_UNFINISHED = (".partial", "-incomplete", ".tmp")
_MARKS = (
    ("NMI received for unknown reason", "nmi_unknown"),
    ("Dazed and confused", "nmi_continued"),
    ("Kernel panic - not syncing", "panic"),
    ("LAB: capture kernel", "capture_started"),
    # a kexec'd capture kernel's own "Command line:": kexec -p adds elfcorehdr=
    ("elfcorehdr=", "capture_started"),
    ("LAB-CAPTURE-HANG", "capture_hang"),
    ("LAB-DUMP-FAILED", "capture_failed"),
    ("LAB-SAVED", "saved"),
    ("LAB-DUMP-DONE", "dump_done"),
    ("LAB: first kernel", "boot"),
    ("LAB: LAB-READY", "ready"),
    # Debian's kdump-config savecore, when it cannot write the dump
    ("Cannot save core", "capture_failed"),
    ("failed to save vmcore", "capture_failed"),
)
#: debian-ready.sh, at every boot: one line per /var/crash/<YYYYMMDDHHMM>/ directory
_DEBIAN_CRASH = re.compile(r"LAB: LAB-DEBIAN-CRASH dir=/var/crash/(\d{12})/ files=(\S*)")


def lab_guest_for(target: dict[str, Any]) -> Guest | None:
    """The lab guest behind a qmp target whose socket is a lab guest's ``qmp.sock``."""
    address = target.get("address")
    if not isinstance(address, str) or not address.startswith("/"):
        return None
    directory = Path(address).parent
    if Path(address).name != "qmp.sock" or not (directory / "guest.json").is_file():
        return None
    try:
        return Guest(directory)
    except Exception:  # noqa: BLE001 - not a lab guest after all: watch it as a plain target
        return None


class LabWatch:
    """Everything a lab guest shows after the send."""

    observer = "lab"

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        status = guest.status()
        self.boot_before = int(status.get("boots", 0))
        self.ready_before = int(status.get("ready_count", 0))
        self.dumps_before = int(status.get("dumps", 0))
        self.failures_before = int(status.get("capture_failures", 0))
        size = guest.console_path.stat().st_size if guest.console_path.exists() else 0
        self._console = ConsoleFollower(guest.console_path, size)
        events = guest.directory / "events.jsonl"
        self._events_path = events
        self._events_offset = events.stat().st_size if events.exists() else 0
        self.seen: set[str] = set()
        self.panic_line: str | None = None
        self.crash_event: str | None = None
        self.capture_failed: str | None = None
        self.excerpt: list[str] = []
        self.boot_after = self.boot_before
        self.ready_after = self.ready_before
        self.new_dump: Path | None = None
        self.dump_error: str | None = None
        self.phase = str(status.get("phase"))
        self.debian = guest.config.get("kind") == "debian"
        self._crashes_before = _debian_crashes(guest.console_path, size) if self.debian else {}
        self._new_crash: tuple[str, list[str]] | None = None
        self._debian_done = False

    # ------------------------------------------------------------------ observations
    @property
    def panic_seen(self) -> bool:
        return "panic" in self.seen or self.crash_event is not None or self.capture_started

    @property
    def capture_started(self) -> bool:
        return "capture_started" in self.seen

    @property
    def rebooted(self) -> bool:
        return self.boot_after > self.boot_before

    @property
    def ready_again(self) -> bool:
        return self.ready_after > self.ready_before

    def poll(self) -> list[str]:
        """Read what is new; returns notes for the display."""
        notes = self._poll_console()
        notes += self._poll_events()
        notes += self._poll_status()
        notes += self._debian_dump()
        return notes

    def _poll_console(self) -> list[str]:
        notes: list[str] = []
        for _, text in self._console.lines():
            if self.debian:
                notes += self._debian_line(text)
            for needle, mark in _MARKS:
                if needle in text:
                    self._remember(text)
                    if mark not in self.seen:
                        notes.append(f"console: {text.strip()[:120]}")
                    self.seen.add(mark)
                    if mark == "panic" and self.panic_line is None:
                        self.panic_line = text.strip()[:300]
                    if mark == "capture_failed" and self.capture_failed is None:
                        self.capture_failed = f"console: {text.strip()[:200]}"
        return notes

    def _debian_line(self, text: str) -> list[str]:
        found = _DEBIAN_CRASH.search(text)
        if found is None or self._new_crash is not None:
            return []
        stamp, files = found.group(1), [f for f in found.group(2).split(",") if f]
        if stamp in self._crashes_before:
            return []  # listed before the send: an older crash
        self._new_crash = (stamp, files)
        return [f"console: new crash directory /var/crash/{stamp}/ ({', '.join(files)})"]

    def _debian_dump(self) -> list[str]:
        """Once a Debian guest is ready again: this crash's dump, copied out of its disk,
        or why there is none."""
        if not self.debian or self._debian_done or not (self.rebooted and self.ready_again):
            return []
        self._debian_done = True
        # debian-ready.sh lists the crash directories before LAB-READY: read up to here
        notes = self._poll_console()
        dumps = (
            []
            if self._new_crash is None
            else [
                f for f in self._new_crash[1] if f.startswith("dump.") or re.match(r"vmcore\.\d", f)
            ]
        )
        if self._new_crash is None or not dumps:
            if self.capture_started and self.capture_failed is None:
                left = (
                    f" (only {', '.join(self._new_crash[1]) or 'an empty directory'})"
                    if self._new_crash
                    else ""
                )
                self.capture_failed = (
                    f"kdump-tools saved no dump: no new dump in /var/crash after the reboot{left}"
                )
                notes.append(self.capture_failed)
            return notes
        from kdiag.errors import KdiagError  # noqa: PLC0415 - only for Debian guests
        from kdiag.lab.distro import copy_crash_live, vmcore_of  # noqa: PLC0415 - see above

        stamp = self._new_crash[0]
        try:
            directory = copy_crash_live(self.guest, stamp)
        except KdiagError as exc:
            self.dump_error = f"copying /var/crash/{stamp} out of the guest's disk failed: {exc}"
            notes.append(self.dump_error)
            return notes
        self.new_dump = vmcore_of(directory)
        if self.new_dump is None:
            self.dump_error = f"no dump file in the copy of /var/crash/{stamp} ({directory})"
            notes.append(self.dump_error)
        else:
            notes.append(
                f"vmcore saved by kdump-tools: /var/crash/{stamp}/, copied to {self.new_dump}"
            )
        return notes

    def _remember(self, text: str) -> None:
        self.excerpt.append(text.strip()[:300])
        del self.excerpt[:-_EXCERPT]

    def _poll_events(self) -> list[str]:
        notes: list[str] = []
        try:
            with open(self._events_path, "rb") as fh:
                fh.seek(self._events_offset)
                data = fh.read()
        except FileNotFoundError:
            return notes
        end = data.rfind(b"\n") + 1
        self._events_offset += end
        for line in data[:end].splitlines():
            try:
                name = json.loads(line).get("event")
            except (ValueError, AttributeError):
                continue
            if name in ("GUEST_PANICKED", "GUEST_CRASHLOADED") and self.crash_event is None:
                self.crash_event = str(name)
                notes.append(f"QMP event {name}")
        return notes

    def _poll_status(self) -> list[str]:
        notes: list[str] = []
        status = self.guest.status()
        self.phase = str(status.get("phase"))
        boots = int(status.get("boots", 0))
        if boots > self.boot_after:
            notes.append(f"new boot (boot {boots}, was {self.boot_before})")
            self.boot_after = boots
        self.ready_after = max(self.ready_after, int(status.get("ready_count", 0)))
        if int(status.get("dumps", 0)) > self.dumps_before and self.new_dump is None:
            last = status.get("last_dump")
            if last:
                self.new_dump = Path(str(last)) / "vmcore"
                notes.append(f"vmcore saved: {self.new_dump}")
        failures = int(status.get("capture_failures", 0))
        if failures > self.failures_before and self.capture_failed is None:
            where = status.get("last_failed_capture") or self.guest.console_path
            self.capture_failed = f"the capture kernel saved no dump (see {where})"
            notes.append(self.capture_failed)
        if self.phase == "capture-hang":
            self.seen.add("capture_hang")
        return notes

    @property
    def stopped(self) -> bool:
        return self.phase == "stopped"


def _debian_crashes(console: Path, end: int) -> dict[str, list[str]]:
    """The crash directories (and their files) the console listed before ``end``: the last
    listing of each wins."""
    try:
        with open(console, "rb") as fh:
            text = fh.read(end).decode(errors="replace")
    except OSError:
        return {}
    return {
        m.group(1): [f for f in m.group(2).split(",") if f] for m in _DEBIAN_CRASH.finditer(text)
    }


class DumpDirWatch:
    """A directory where the machine's dumps appear; a dump is new when it was not there
    (or not this size and time) at the start, and complete once its size holds still."""

    observer = "dump-dir"
    _STABLE_SECONDS = 3.0
    _MAX_FILES = 10_000

    def __init__(self, directory: Path, *, stable: float = 3.0) -> None:
        self.directory = directory
        self._STABLE_SECONDS = stable
        self._before = self._scan()
        self._sizes: dict[Path, tuple[int, float]] = {}
        self.new_dump: Path | None = None
        self.excerpt: list[str] = []

    def _scan(self) -> dict[Path, tuple[int, float]]:
        """``vmcore*`` files at most two directories deep (``/var/crash/<host-time>/vmcore``),
        hidden and unfinished ones left out; at most :attr:`_MAX_FILES` files looked at."""
        found: dict[Path, tuple[int, float]] = {}
        if not self.directory.is_dir():
            return found
        seen = 0
        for root, dirs, files in os.walk(self.directory):
            depth = len(Path(root).relative_to(self.directory).parts)
            dirs[:] = [] if depth >= 2 else sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                seen += 1
                if seen > self._MAX_FILES:
                    return found
                if not name.startswith("vmcore") or name.endswith(_UNFINISHED):
                    continue
                path = Path(root) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                found[path] = (st.st_size, st.st_mtime)
        return found

    def poll(self) -> list[str]:
        if self.new_dump is not None:
            return []
        now = time.monotonic()
        for path, stamp in self._scan().items():
            if self._before.get(path) == stamp:
                continue
            last = self._sizes.get(path)
            if last is None or last[0] != stamp[0]:
                self._sizes[path] = (stamp[0], now)
            elif now - last[1] >= self._STABLE_SECONDS and stamp[0] > 0:
                self.new_dump = path
                return [f"new dump: {path}"]
        return []
