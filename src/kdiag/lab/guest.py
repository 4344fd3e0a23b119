"""The lab's library API: ``Lab`` (build, up, list, get) and ``Guest`` (one running guest).

Each guest lives in ``<root>/<name>/``: ``guest.json`` (how it was started), ``state.json``
(process ids), ``status.json`` (kept by the supervisor), ``console.log``, ``qmp.sock``,
``events.sock``, ``cmd.sock`` (the command channel, the guest's second serial port),
``disk.img`` (the dump disk), ``facts.json`` and the ``crash/`` tree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kdiag.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    IncorrectState,
    TargetNotFound,
)
from kdiag.lab.build import BuildInfo, build, lab_cache
from kdiag.lab.profiles import TRIGGERS, get_profile
from kdiag.lab.qemu import GuestFiles, choose_accel, command_line

__all__ = ("Guest", "Lab", "parse_memory")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SOCKET_PATH_MAX = 100


def parse_memory(text: str) -> int:
    """``512M``, ``2G``, ``2048`` (MiB) -> MiB."""
    match = re.fullmatch(r"(\d+)\s*([MmGg]i?[Bb]?)?", text.strip())
    if match is None:
        raise ConfigError(f"bad memory size {text!r} (use e.g. 512M or 2G)")
    value = int(match.group(1))
    unit = (match.group(2) or "M")[0].upper()
    mib = value * 1024 if unit == "G" else value
    if mib < 256:
        raise ConfigError("a lab guest needs at least 256M")
    return mib


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class Guest:
    """A lab guest, running or stopped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            self.config: dict[str, Any] = json.loads((directory / "guest.json").read_text())
        except FileNotFoundError:
            raise TargetNotFound(f"no lab guest {directory.name!r}") from None
        self.name: str = self.config["name"]
        self.profile: str = self.config["profile"]
        self.accel: str = self.config["accel"]
        self.memory_mib: int = self.config["memory_mib"]
        self.cpus: int = self.config["cpus"]
        self.qmp_socket = directory / "qmp.sock"
        self.console_path = directory / "console.log"
        self.crash_dir = directory / "crash"
        self.facts_path = directory / "facts.json"
        self.command_socket = directory / "cmd.sock"
        status = self.status()
        self._dumps_seen = int(status.get("dumps", 0))
        self._ready_seen = 0
        self._crashes = 0

    def __repr__(self) -> str:
        return f"Guest({self.name!r}, profile={self.profile!r}, accel={self.accel!r})"

    # ------------------------------------------------------------------ state
    def _state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.directory / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    def status(self) -> dict[str, Any]:
        """The supervisor's status record plus whether QEMU is running."""
        try:
            data: dict[str, Any] = json.loads((self.directory / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            data = {"phase": "starting"}
        if not self.running and data.get("phase") != "starting":
            data["phase"] = "stopped"
        return data

    @property
    def running(self) -> bool:
        return _alive(self._state().get("qemu_pid"))

    @property
    def supervisor_running(self) -> bool:
        return _alive(self._state().get("supervisor_pid"))

    @property
    def phase(self) -> str:
        return str(self.status().get("phase", "starting"))

    def dumps(self) -> list[Path]:
        """The vmcore files in the crash tree, oldest first."""
        if not self.crash_dir.is_dir():
            return []
        dirs = sorted(p for p in self.crash_dir.iterdir() if not p.name.startswith("."))
        return [d / "vmcore" for d in dirs if (d / "vmcore").exists()]

    def to_json(self) -> dict[str, Any]:
        status = self.status()
        return {
            "name": self.name,
            "profile": self.profile,
            "accel": self.accel,
            "memory_mib": self.memory_mib,
            "cpus": self.cpus,
            "phase": status.get("phase"),
            "kdump_loaded": status.get("kdump_loaded"),
            "boots": status.get("boots", 0),
            "crashes": status.get("crashes", 0),
            "dumps": status.get("dumps", 0),
            "last_dump": status.get("last_dump"),
            "qmp_socket": str(self.qmp_socket),
            "console_path": str(self.console_path),
            "crash_dir": str(self.crash_dir),
            "facts_path": str(self.facts_path) if self.facts_path.exists() else None,
            "kernel_release": self.config.get("kernel_release"),
        }

    # ------------------------------------------------------------------ waiting
    def _wait(self, what: str, timeout: float, done: Any) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            result = done(status)
            if result:
                return result
            if status.get("phase") == "stopped" or not self.supervisor_running:
                raise IncorrectState(f"lab guest {self.name} stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise BackendTimeout(
                    f"lab guest {self.name}: no {what} within {timeout:.0f} s "
                    f"(phase {status.get('phase')}; console {self.console_path})"
                )
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Wait for the readiness marker of the current boot (one not already waited for
        when the guest crashed since the last call)."""

        def ready(status: dict[str, Any]) -> bool:
            if status.get("phase") != "ready":
                return False
            count = int(status.get("ready_count", 0))
            return count > self._ready_seen or int(status.get("crashes", 0)) == self._crashes

        self._crashes = int(self.status().get("crashes", 0))
        self._wait("readiness marker", timeout, ready)
        self._ready_seen = int(self.status().get("ready_count", 0))

    def wait_dump(self, timeout: float = 300.0) -> Path:
        """Wait for the next dump saved in the crash tree; returns its ``vmcore`` path."""

        def dumped(status: dict[str, Any]) -> str | None:
            if int(status.get("dumps", 0)) > self._dumps_seen:
                return str(status.get("last_dump"))
            if status.get("phase") == "dump-failed":
                raise BackendError(
                    f"lab guest {self.name}: the capture failed (see {self.console_path})"
                )
            return None

        directory = Path(self._wait("vmcore", timeout, dumped))
        self._dumps_seen = int(self.status().get("dumps", 0))
        return directory / "vmcore"

    def wait_phase(self, phases: set[str], timeout: float) -> str:
        """Wait until the supervisor reports one of ``phases``."""
        return str(
            self._wait(
                "/".join(sorted(phases)),
                timeout,
                lambda s: s.get("phase") if s.get("phase") in phases else None,
            )
        )

    def wait_console(self, pattern: str, timeout: float, *, start: int = 0) -> str:
        """Wait for a console line matching the regular expression ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console_path.read_bytes()[start:].decode(errors="replace")
            for line in text.splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise BackendTimeout(f"lab guest {self.name}: no {pattern!r} on the console")
            time.sleep(0.1)

    # ------------------------------------------------------------------ actions
    def trigger(self, kind: str) -> None:
        """Crash the guest one of the ``TRIGGERS`` ways, through the command channel."""
        if kind not in TRIGGERS:
            raise ConfigError(f"unknown trigger {kind!r} (known: {', '.join(TRIGGERS)})")
        if not self.running:
            raise IncorrectState(f"lab guest {self.name} is not running")
        if self.phase != "ready":
            raise IncorrectState(f"lab guest {self.name} is not ready (phase {self.phase})")
        # the guest acknowledges each command on the console; resend if a byte was lost
        for _attempt in range(3):
            start = self.console_path.stat().st_size
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                try:
                    sock.connect(str(self.command_socket))
                    sock.sendall(b"\n" + kind.encode() + b"\n")
                except OSError as exc:
                    raise BackendUnavailable(f"command channel of {self.name}: {exc}") from exc
                try:
                    self.wait_console(rf"LAB: command {re.escape(kind)} ", 30, start=start)
                except BackendTimeout:
                    continue
                return
        raise BackendTimeout(f"lab guest {self.name} did not acknowledge {kind!r}")

    def inject_nmi(self) -> None:
        """QMP ``inject-nmi`` (what ``SendDiagnosticInterrupt`` does to an EC2 instance)."""
        from kdiag.lab.qmp import QMPClient

        with QMPClient(self.qmp_socket) as qmp:
            qmp.execute("inject-nmi")

    def down(self, timeout: float = 30.0) -> None:
        """Stop QEMU and the supervisor; the guest's files and crash tree stay."""
        state = self._state()
        for key in ("qemu_pid", "supervisor_pid"):
            pid = state.get(key)
            if isinstance(pid, int) and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.running or self.supervisor_running):
            time.sleep(0.1)
        for key in ("qemu_pid", "supervisor_pid"):
            pid = state.get(key)
            if isinstance(pid, int) and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Lab:
    """The lab: a build cache and a directory of guests."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from kdiag.paths import state_dir

            root = state_dir() / "lab"
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def build(self, progress: Any = None, *, force: bool = False) -> BuildInfo:
        return build(progress, force=force)

    def list(self) -> list[Guest]:
        guests = []
        for d in sorted(self.root.iterdir()):
            if (d / "guest.json").exists():
                guests.append(Guest(d))
        return guests

    def get(self, name: str) -> Guest:
        return Guest(self.root / name)

    def up(
        self,
        name: str = "lab",
        profile: str = "default",
        memory: str | int = "512M",
        cpus: int = 2,
        *,
        progress: Any = None,
        accel: str | None = None,
        dumps: tuple[tuple[str, ...], ...] | None = None,
    ) -> Guest:
        """Build if needed, start a guest, return at once (use ``wait_ready``).

        ``dumps`` replaces the profile's makedumpfile option sets: the capture kernel saves
        one file per set (the first is ``vmcore``, the others ``vmcore.<options>``)."""
        if not _NAME.match(name):
            raise ConfigError(f"bad guest name {name!r} (lowercase letters, digits, '-')")
        prof = get_profile(profile)
        if dumps:
            prof = dataclasses.replace(prof, dumps=tuple(dumps))
        memory_mib = memory if isinstance(memory, int) else parse_memory(memory)
        directory = self.root / name
        if directory.exists() and (directory / "guest.json").exists():
            old = Guest(directory)
            if old.running:
                raise IncorrectState(f"lab guest {name} is already running")
        info = build(progress)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (directory / "crash").mkdir(exist_ok=True, mode=0o700)
        files = GuestFiles(
            directory=directory,
            vmlinuz=info.vmlinuz,
            initrd=info.main_initrd,
            disk=directory / "disk.img",
            console=directory / "console.log",
            qmp=directory / "qmp.sock",
            events=directory / "events.sock",
            commands=directory / "cmd.sock",
        )
        if len(str(files.events)) > _SOCKET_PATH_MAX:
            raise ConfigError(f"lab directory {self.root} is too long for unix socket paths")
        for stale in (
            files.console,
            files.qmp,
            files.events,
            files.commands,
            directory / "status.json",
            directory / "state.json",
            directory / "events.jsonl",
            directory / "facts.json",
        ):
            stale.unlink(missing_ok=True)
        _make_disk(files.disk, memory_mib, prof.dumps)
        if accel is None:
            choice = choose_accel(info.vmlinuz, lab_cache())
            accel, reason = choice.accel, choice.reason
        else:
            reason = "requested"
        crashkernel = "128M" if memory_mib <= 1536 else "256M"
        append = ["console=ttyS0", "panic=10", "crash_kexec_post_notifiers", f"lab_name={name}"]
        if prof.crashkernel:
            append.append(f"crashkernel={crashkernel}")
        append += prof.cmdline()
        args = command_line(
            files, accel=accel, memory_mib=memory_mib, cpus=cpus, append=" ".join(append)
        )
        config = {
            "name": name,
            "profile": prof.name,
            "accel": accel,
            "accel_reason": reason,
            "memory_mib": memory_mib,
            "cpus": cpus,
            "crashkernel": crashkernel if prof.crashkernel else None,
            "kernel_release": info.kernel_release,
            "build": str(info.directory),
            "append": " ".join(append),
            "qemu_args": args,
        }
        (directory / "guest.json").write_text(json.dumps(config, indent=2) + "\n")
        with open(directory / "supervisor.log", "ab") as log:
            subprocess.run(
                [sys.executable, "-m", "kdiag.lab.supervisor", str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        guest = Guest(directory)
        deadline = time.monotonic() + 20
        while not guest._state().get("qemu_pid"):
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"lab guest {name} did not start (see supervisor.log)")
            time.sleep(0.05)
        time.sleep(0.3)
        if not guest.running:
            log_text = (directory / "qemu.log").read_text(errors="replace")[-800:]
            raise BackendUnavailable(f"QEMU exited at once: {log_text.strip()}")
        return guest


def _make_disk(path: Path, memory_mib: int, dumps: tuple[tuple[str, ...], ...]) -> None:
    """A sparse ext4 image big enough for every dump the profile saves."""
    size_mib = 256 + memory_mib * max(1, len(dumps))
    path.unlink(missing_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size_mib * 1024 * 1024)
    proc = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^metadata_csum", "-L", "dumps", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigError(f"mkfs.ext4 failed: {proc.stderr.strip()}")
