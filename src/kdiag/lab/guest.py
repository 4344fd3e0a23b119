"""The lab's library API: ``Lab`` (build, up, list, get) and ``Guest`` (one running guest).

Each guest lives in ``<root>/<name>/``: ``guest.json`` (how it was started), ``state.json``
(process ids), ``status.json`` (kept by the supervisor), ``console.log``, ``qmp.sock``,
``events.sock``, ``cmd.sock`` (the command channel, the guest's second serial port),
``disk.img`` (the dump disk), ``facts.json`` and the ``crash/`` tree.

NMIs go through kdiag's own qmp backend (:class:`~kdiag.backends.qmp.QMPBackend`), the
path every user's ``SendDiagnosticInterrupt`` takes, running-state check included.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdiag.backends.base import InstanceState, NMIResult, Target
from kdiag.backends.qmp import QMPBackend
from kdiag.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    IncorrectState,
    TargetNotFound,
)
from kdiag.lab.arches import ARCHES, GuestArch, get_arch
from kdiag.lab.build import BuildInfo, build, lab_cache
from kdiag.lab.profiles import TRIGGERS, Profile, get_profile
from kdiag.lab.qemu import GuestFiles, choose_accel, command_line
from kdiag.lab.ssh import SSHAccess, SSHKeys, free_port, lab_keys
from kdiag.paths import state_dir

__all__ = ("Guest", "GuestSpec", "Lab", "parse_memory")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SOCKET_PATH_MAX = 100
_MIN_MEMORY_MIB = 256
#: Seconds for QEMU to start and answer on its monitor (it does in well under one).
_START_SECONDS = 20.0
#: QMP timeout for the lab's own calls (a loaded TCG host answers slowly).
_QMP_TIMEOUT = 10.0


def parse_memory(text: str) -> int:
    """``512M``, ``2G``, ``2048`` (MiB) -> MiB, at least 256 and at most the host's RAM."""
    match = re.fullmatch(r"(\d+)\s*([MmGg]i?[Bb]?)?", text.strip())
    if match is None:
        raise ConfigError(f"bad memory size {text!r} (use e.g. 512M or 2G)")
    value = int(match.group(1))
    unit = (match.group(2) or "M")[0].upper()
    return _check_memory(value * 1024 if unit == "G" else value)


def _check_memory(mib: int) -> int:
    if isinstance(mib, bool) or not isinstance(mib, int) or mib < _MIN_MEMORY_MIB:
        raise ConfigError(f"a lab guest needs at least {_MIN_MEMORY_MIB}M of memory, not {mib}")
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    if mib > host:
        raise ConfigError(f"{mib}M of guest memory is more than this host has ({host}M)")
    return mib


def check_name(name: str) -> str:
    """A guest name: 1-32 lowercase letters, digits and '-', not starting with '-'."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"bad guest name {name!r}: 1-32 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """What ``Lab.up`` was asked for, checked before anything is downloaded or started."""

    name: str
    profile: Profile
    memory_mib: int
    cpus: int
    arch: GuestArch = ARCHES["x86_64"]

    @classmethod
    def check(
        cls,
        name: str,
        profile: str,
        memory: str | int,
        cpus: int,
        dumps: tuple[tuple[str, ...], ...] | None = None,
        *,
        arch: str = "x86_64",
    ) -> GuestSpec:
        """:raises ConfigError: a bad name, an unknown profile or architecture, too little
        or too much memory, or a vCPU count outside 1-255 (1-8 on arm64's ``virt``)."""
        spec = get_arch(arch)
        prof = get_profile(profile)
        if dumps:
            prof = dataclasses.replace(prof, dumps=tuple(dumps))
        memory_mib = parse_memory(memory) if isinstance(memory, str) else _check_memory(memory)
        if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= spec.max_cpus:
            raise ConfigError(
                f"a lab guest on {spec.name} has 1 to {spec.max_cpus} vCPUs, not {cpus!r}"
            )
        return cls(check_name(name), prof, memory_mib, cpus, spec)


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
        except ValueError as exc:
            raise ConfigError(f"lab guest {directory.name!r}: bad guest.json: {exc}") from exc
        self.name: str = self.config["name"]
        self.profile: str = self.config["profile"]
        self.accel: str = self.config["accel"]
        self.memory_mib: int = self.config["memory_mib"]
        self.cpus: int = self.config["cpus"]
        self.arch: str = self.config.get("arch", "x86_64")
        self.qmp_socket = directory / "qmp.sock"
        self.console_path = directory / "console.log"
        self.crash_dir = directory / "crash"
        self.facts_path = directory / "facts.json"
        self.command_socket = directory / "cmd.sock"
        status = self.status()
        self._dumps_seen = int(status.get("dumps", 0))
        self._failures_seen = int(status.get("capture_failures", 0))
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
        """The supervisor's status record, with phase ``stopped`` when QEMU is not running
        (``starting`` only while a start can still be under way)."""
        try:
            data: dict[str, Any] = json.loads((self.directory / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            data = {"phase": "starting"}
        if not self.running and (data.get("phase") != "starting" or not self._start_pending()):
            data["phase"] = "stopped"
        return data

    def _start_pending(self) -> bool:
        """Whether ``Lab.up`` may still be starting this guest (a guest that failed to start
        long ago is stopped, not starting forever)."""
        try:
            written = (self.directory / "guest.json").stat().st_mtime
        except OSError:
            return False
        return time.time() - written < _START_SECONDS

    @property
    def running(self) -> bool:
        return _alive(self._state().get("qemu_pid"))

    @property
    def supervisor_running(self) -> bool:
        return _alive(self._state().get("supervisor_pid"))

    @property
    def target(self) -> Target:
        """This guest as a qmp backend target (what ``kdiag instances add`` would store)."""
        return Target(self.name, {"address": str(self.qmp_socket)}, arch=self.arch)

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
        """The guest for listings; ``kdump_loaded`` is ``None`` unless QEMU is running (the
        last boot's answer says nothing about a stopped guest)."""
        status = self.status()
        running = status.get("phase") != "stopped"
        return {
            "name": self.name,
            "arch": self.arch,
            "profile": self.profile,
            "accel": self.accel,
            "memory_mib": self.memory_mib,
            "cpus": self.cpus,
            "phase": status.get("phase"),
            "kdump_loaded": status.get("kdump_loaded") if running else None,
            "boots": status.get("boots", 0),
            "crashes": status.get("crashes", 0),
            "dumps": status.get("dumps", 0),
            "last_dump": status.get("last_dump"),
            "qmp_socket": str(self.qmp_socket),
            "console_path": str(self.console_path),
            "crash_dir": str(self.crash_dir),
            "facts_path": str(self.facts_path) if self.facts_path.exists() else None,
            "kernel_release": self.config.get("kernel_release"),
            "ssh": self.ssh.to_json() if self.ssh is not None else None,
        }

    @property
    def ssh(self) -> SSHAccess | None:
        """How to reach the guest's SSH server (None: a guest started without one)."""
        data = self.config.get("ssh")
        if not isinstance(data, dict):
            return None
        return SSHAccess(
            host=str(data["host"]),
            port=int(data["port"]),
            user=str(data["user"]),
            key=Path(data["key"]),
            known_hosts=Path(data["known_hosts"]),
        )

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
            failures = int(status.get("capture_failures", 0))
            if status.get("phase") == "dump-failed" or failures > self._failures_seen:
                self._failures_seen = failures
                where = status.get("last_failed_capture") or self.console_path
                raise BackendError(
                    f"lab guest {self.name}: the capture kernel saved no dump (see {where})"
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

    def inject_nmi(self) -> NMIResult:
        """Send a diagnostic NMI through the qmp backend (what ``SendDiagnosticInterrupt``
        does to an instance), which refuses a guest whose vCPUs are not running.

        :raises IncorrectState: QEMU is not running, or the guest is paused.
        :raises NMINotSupported: QEMU cannot inject an NMI into this machine (arm64 ``virt``
            on QEMU 7.2), as EC2 answers for an instance type that cannot take one.
        """
        if not self.running:
            raise IncorrectState(
                f"lab guest {self.name} is not running (start it: kdiag lab up --name {self.name})"
            )
        with QMPBackend(timeout=_QMP_TIMEOUT) as qmp:
            return qmp.send_nmi(self.target)

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
        self.root = Path(root) if root is not None else state_dir() / "lab"

    def build(
        self, progress: Any = None, *, force: bool = False, arch: str = "x86_64"
    ) -> BuildInfo:
        return build(progress, force=force, arch=arch)

    def list(self) -> list[Guest]:
        if not self.root.is_dir():
            return []
        return [Guest(d) for d in sorted(self.root.iterdir()) if (d / "guest.json").exists()]

    def get(self, name: str) -> Guest:
        return Guest(self.root / check_name(name))

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
        arch: str = "x86_64",
    ) -> Guest:
        """Build if needed, start a guest, and return once QEMU runs it (``wait_ready``
        waits for the boot).

        The steps: check the request (before anything is downloaded), refuse a guest of
        that name that is running, build, prepare the guest directory and its dump disk,
        choose the accelerator, write ``guest.json`` (kernel command line and QEMU
        arguments), then start the supervisor and wait for QEMU to answer on its monitor.
        If that last step fails or is interrupted (Ctrl-C), the guest is stopped again.

        ``dumps`` replaces the profile's makedumpfile option sets: the capture kernel saves
        one file per set (the first is ``vmcore``, the others ``vmcore.<options>``).

        ``arch`` is ``x86_64`` (``-M pc``) or ``arm64`` (``qemu-system-aarch64 -M virt``,
        TCG).

        :raises ConfigError: a bad name, profile, architecture, memory size or vCPU count.
        :raises IncorrectState: a guest of that name is running.
        """
        spec = GuestSpec.check(name, profile, memory, cpus, dumps, arch=arch)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory = self.root / spec.name
        if len(str(directory / "events.sock")) > _SOCKET_PATH_MAX:
            raise ConfigError(f"lab directory {self.root} is too long for unix socket paths")
        if (directory / "guest.json").exists() and Guest(directory).running:
            raise IncorrectState(
                f"lab guest {spec.name} is already running (kdiag lab down {spec.name} stops it)"
            )
        info = build(progress, arch=spec.arch.name)
        files = _prepare_directory(directory, info)
        _make_disk(files.disk, spec.memory_mib, spec.profile.dumps)
        if accel is None:
            choice = choose_accel(info.vmlinuz, lab_cache(), spec.arch.name)
            accel, reason = choice.accel, choice.reason
        else:
            reason = "requested"
        keys = lab_keys(self.root)
        config = _guest_config(spec, files, info, accel, reason, keys=keys, ssh_port=free_port())
        (directory / "guest.json").write_text(json.dumps(config, indent=2) + "\n")
        return _start(directory)


def _prepare_directory(directory: Path, info: BuildInfo) -> GuestFiles:
    """The guest directory with its crash tree, cleared of the last run's sockets, logs and
    status (the crash tree stays)."""
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
    return files


def _kernel_command_line(
    spec: GuestSpec, keys: SSHKeys | None = None
) -> tuple[list[str], str | None]:
    """The first kernel's command line, and its ``crashkernel=`` size (None: none)."""
    append = [
        f"console={spec.arch.console}",
        "panic=10",
        "crash_kexec_post_notifiers",
        f"lab_name={spec.name}",
    ]
    if spec.arch.name != "x86_64":
        append += [f"lab_tty={spec.arch.console}", f"lab_cmdtty={spec.arch.command_tty}"]
    else:
        # Under TCG on a loaded host the IO-APIC timer check can fail and panic the boot
        # ("IO-APIC + timer doesn't work"); cloud images skip it the same way.
        append.append("no_timer_check")
    crashkernel = None
    if spec.profile.crashkernel:
        crashkernel = _crashkernel(spec)
        append.append(f"crashkernel={crashkernel}")
    if keys is not None:
        append.append(f"lab_sshkey={keys.cmdline_key()}")
    return [*append, *spec.profile.cmdline()], crashkernel


def _crashkernel(spec: GuestSpec) -> str:
    """The reservation: arm64's capture kernel (an uncompressed 30 MB ``Image``, its page
    tables and the initramfs) needs 256M; x86_64 does with 128M up to 1.5G of RAM."""
    if spec.arch.name == "arm64" or spec.memory_mib > 1536:
        return "256M"
    return "128M"


def _guest_config(
    spec: GuestSpec,
    files: GuestFiles,
    info: BuildInfo,
    accel: str,
    reason: str,
    *,
    keys: SSHKeys | None = None,
    ssh_port: int | None = None,
) -> dict[str, Any]:
    """``guest.json``: how the guest is started (the supervisor reads ``qemu_args``).

    With ``keys`` and ``ssh_port`` the guest runs an SSH server reachable on
    ``127.0.0.1:ssh_port`` with the lab root's client key (:mod:`kdiag.lab.ssh`)."""
    with_ssh = keys is not None and ssh_port is not None
    append, crashkernel = _kernel_command_line(spec, keys if with_ssh else None)
    args = command_line(
        files,
        accel=accel,
        memory_mib=spec.memory_mib,
        cpus=spec.cpus,
        append=" ".join(append),
        arch=spec.arch.name,
        ssh_port=ssh_port if with_ssh else None,
        host_key=keys.host_key if keys is not None and with_ssh else None,
    )
    ssh = None
    if keys is not None and ssh_port is not None:
        ssh = SSHAccess("127.0.0.1", ssh_port, "root", keys.client_key, keys.known_hosts)
    return {
        "name": spec.name,
        "arch": spec.arch.name,
        "profile": spec.profile.name,
        "accel": accel,
        "accel_reason": reason,
        "memory_mib": spec.memory_mib,
        "cpus": spec.cpus,
        "crashkernel": crashkernel,
        "kernel_release": info.kernel_release,
        "build": str(info.directory),
        "append": " ".join(append),
        "qemu_args": args,
        "ssh": ssh.to_json() if ssh is not None else None,
    }


def _start(directory: Path) -> Guest:
    """Start the guest's supervisor (which starts QEMU) and return once QEMU runs the guest;
    on any failure or interruption, stop whatever was started."""
    guest = Guest(directory)
    try:
        _launch_supervisor(directory)
        _wait_until_running(guest, _START_SECONDS)
    except BaseException:
        _stop_starting(guest)
        raise
    return guest


def _launch_supervisor(directory: Path) -> None:
    """``python -m kdiag.lab.supervisor DIR``, which detaches (forks, new session): this
    waits only for the parent that forked."""
    with open(directory / "supervisor.log", "ab") as log:
        launcher = subprocess.run(
            [sys.executable, "-m", "kdiag.lab.supervisor", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if launcher.returncode != 0:
        raise BackendUnavailable(
            f"the lab supervisor did not start (see {directory / 'supervisor.log'})"
        )


def _wait_until_running(guest: Guest, timeout: float) -> None:
    """Wait until QEMU runs the guest and the supervisor follows its events.

    This replaces a fixed pause.  QEMU creates its monitor sockets once it has parsed its
    arguments and set up the machine, so ``query-status`` answering ``running`` proves it
    started; a QEMU that exits at once (a bad argument, no memory) is seen as exited, not
    guessed at.  Waiting for the supervisor's event watcher as well means that a crash right
    after ``up`` returns is not missed (its ``GUEST_CRASHLOADED`` event would be lost).
    """
    deadline = time.monotonic() + timeout
    running = False
    with QMPBackend(timeout=_QMP_TIMEOUT) as qmp:
        while True:
            if guest._state().get("qemu_pid"):
                if not guest.running:
                    log_text = (guest.directory / "qemu.log").read_text(errors="replace")
                    raise BackendUnavailable(f"QEMU exited at once: {log_text[-800:].strip()}")
                if not running and guest.qmp_socket.exists():
                    running = qmp.state(guest.target) is InstanceState.RUNNING
                if running and guest.status().get("events"):
                    return
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"lab guest {guest.name} did not start within {timeout:.0f} s "
                    f"(see {guest.directory / 'supervisor.log'})"
                )
            time.sleep(0.05)


def _stop_starting(guest: Guest) -> None:
    """Stop a guest whose start failed or was interrupted.  The detached supervisor writes
    its and QEMU's process ids a moment after it is launched: wait for them first."""
    deadline = time.monotonic() + 5
    while not guest._state().get("qemu_pid") and time.monotonic() < deadline:
        time.sleep(0.05)
    guest.down()


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
