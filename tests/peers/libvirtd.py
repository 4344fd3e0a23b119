"""A private libvirtd for the tests, and lab guests defined in it as libvirt domains.

libvirtd decides its mode from its effective uid: as root it is the system daemon, whose
state directories (``/run/libvirt/qemu``, ``/var/lib/libvirt``) and driver lock are
machine-wide, so two of them (two test sessions, two engineers) collide.  Run by any other
user it is the *session* daemon, which keeps everything under ``$XDG_CONFIG_HOME``,
``$XDG_CACHE_HOME`` and ``$XDG_RUNTIME_DIR``.  So, as root, the daemon runs as ``nobody``
(``subprocess``'s ``user=``/``group=``) with every XDG directory under one short
``/tmp/kdv-XXXX`` directory that ``nobody`` owns; its socket is
``/tmp/kdv-XXXX/run/libvirt/libvirt-sock`` and root reaches it with
``qemu:///session?socket=...`` (root's file access passes the 0700 directory; the session
daemon checks nothing more).  Started by another user, it simply runs as that user.
``qemu.conf`` sets ``stdio_handler = "file"`` so no ``virtlogd`` is spawned and left behind.
A cold start takes well under a second here.

QEMU then runs as ``nobody`` too: each guest's directory (kernel and initramfs hard-linked
from root's ``~/.cache/kdiag``, which ``nobody`` cannot traverse; dump disk, console,
command socket) is made by :func:`kdiag.lab.domain.define` (what ``kdiag lab define`` runs)
under the daemon's directory and handed to its user.

API::

    daemon = Libvirtd.start(tmpdir)          # or: with running_libvirtd() as daemon:
    uri = daemon.uri
    name = define_lab_domain(uri, lab_build, "lv1", "default")
    dom = daemon.domain(name)                # LabDomain: start, wait_ready, wait_dump, ...
    dom.start(); dom.wait_ready(300)
    ...
    daemon.stop()                            # destroys and undefines its domains, rm -rf

From a test module::

    @pytest.fixture(scope="module")
    def libvirtd(lab_build):
        with running_libvirtd() as daemon:
            yield daemon

or import :func:`module_libvirtd` (a ready-made module-scoped fixture) into the module.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kdiag.lab.build import BuildInfo
from kdiag.lab.domain import DomainFiles, define, wait_console
from kdiag.lab.guest import GuestSpec
from kdiag.lab.supervisor import extract_dump, first_dump_saved
from tests.conftest import require_tool

__all__ = (
    "LabDomain",
    "Libvirtd",
    "define_lab_domain",
    "minimal_domain_xml",
    "module_libvirtd",
    "running_libvirtd",
)

#: The user a root test run starts the session daemon as.
SESSION_USER = "nobody"
_START_SECONDS = 60.0
_STOP_SECONDS = 15.0
_QEMU_CONF = 'stdio_handler = "file"\n'
#: The daemon of each URI this process started (``define_lab_domain`` finds it by URI).
_DAEMONS: dict[str, Libvirtd] = {}
_DAEMONS_LOCK = threading.Lock()


def _libvirt() -> Any:
    """The libvirt module (the test extra installs libvirt-python)."""
    import libvirt

    return libvirt


def _quiet_libvirt() -> None:
    """libvirt prints every error to stderr by default; the tests read the exceptions."""
    _libvirt().registerErrorHandler(lambda _ctx, _err: None, None)


@dataclass
class LabDomain:
    """A lab guest defined as a domain in a libvirtd."""

    uri: str
    name: str
    files: DomainFiles
    _console_mark: int = 0
    _dumps: list[Path] = field(default_factory=list)

    def _connect(self) -> Any:
        return _libvirt().open(self.uri)

    def _dom(self, conn: Any) -> Any:
        return conn.lookupByName(self.name)

    @property
    def console(self) -> Path:
        return self.files.console

    def console_size(self) -> int:
        try:
            return self.files.console.stat().st_size
        except FileNotFoundError:
            return 0

    def start(self) -> None:
        """Start the domain (``virsh start``): QEMU truncates the console file."""
        conn = self._connect()
        try:
            self._dom(conn).create()
        finally:
            conn.close()
        self._console_mark = 0

    def is_active(self) -> bool:
        conn = self._connect()
        try:
            return bool(self._dom(conn).isActive())
        finally:
            conn.close()

    def destroy(self) -> None:
        """Power the domain off (``virsh destroy``) when it runs."""
        conn = self._connect()
        try:
            dom = self._dom(conn)
            if dom.isActive():
                dom.destroy()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 300.0) -> str:
        """Wait for the next ``LAB: LAB-READY`` mark on the console (after the last one
        waited for, or after the last dump): the guest booted with kdump armed."""
        line = wait_console(self.console, r"LAB: LAB-READY", timeout, start=self._console_mark)
        self._console_mark = self._after(line)
        return line

    def wait_dump(self, timeout: float = 300.0) -> Path:
        """Wait for ``LAB: LAB-DUMP-DONE`` (or FAILED), then copy the dump out of the dump
        disk as the lab's supervisor does; returns the ``vmcore`` path.

        :raises AssertionError: the capture kernel saved no dump.
        """
        line = wait_console(
            self.console, r"LAB: LAB-DUMP-(DONE|FAILED)", timeout, start=self._console_mark
        )
        self._console_mark = self._after(line)
        assert "LAB-DUMP-DONE" in line, f"capture failed: {line} (console {self.console})"
        when = datetime.datetime.now().replace(microsecond=0)
        crash = extract_dump(self.files.disk, self.files.crash_dir, self.name, when)
        assert first_dump_saved(crash), f"no vmcore saved in {crash}"
        self._dumps.append(crash / "vmcore")
        return crash / "vmcore"

    def _after(self, line: str) -> int:
        """The console byte offset just past ``line`` (its first occurrence after the mark)."""
        data = self.console.read_bytes()
        at = data.find(line.encode(errors="replace"), self._console_mark)
        return self._console_mark if at < 0 else at + len(line)


class Libvirtd:
    """One private session-mode libvirtd (see the module docstring)."""

    def __init__(self, root: Path, proc: subprocess.Popen[bytes], uid: int, gid: int) -> None:
        self.root = root
        self.proc = proc
        self.uid = uid
        self.gid = gid
        self.socket = root / "run" / "libvirt" / "libvirt-sock"
        self.uri = f"qemu:///session?socket={self.socket}"
        self.log = root / "libvirtd.log"
        self.domains: dict[str, LabDomain] = {}

    # --- life cycle ------------------------------------------------------------------------

    @classmethod
    def start(cls, tmpdir: Path | None = None) -> Libvirtd:
        """Start a daemon whose directories are all under a new short directory in
        ``tmpdir`` (default ``/tmp``); return once it answers on its socket.

        Fails the test (never skips) when libvirtd or libvirt-python is missing.
        """
        binary = require_tool("libvirtd")
        require_tool("qemu-system-x86_64")
        try:
            _libvirt()
        except ImportError:
            pytest.fail("libvirt-python is not installed (make test installs the test extra)")
        _quiet_libvirt()
        if os.geteuid() == 0:
            user = pwd.getpwnam(SESSION_USER)
            uid, gid = user.pw_uid, user.pw_gid
        else:
            uid, gid = os.getuid(), os.getgid()
        root = Path(tempfile.mkdtemp(prefix="kdv-", dir=str(tmpdir or "/tmp")))
        # the socket path must stay under ~100 bytes
        assert len(str(root / "run/libvirt/libvirt-sock")) < 100, f"{root} is too long"
        for sub in ("config/libvirt", "cache", "run", "data", "state", "guests"):
            (root / sub).mkdir(parents=True, mode=0o700)
        (root / "config/libvirt/qemu.conf").write_text(_QEMU_CONF)
        for path in [root, *root.rglob("*")]:
            os.chown(path, uid, gid)
        root.chmod(0o700)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(root),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "XDG_RUNTIME_DIR": str(root / "run"),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_STATE_HOME": str(root / "state"),
        }
        with open(root / "libvirtd.log", "ab") as log:
            proc = subprocess.Popen(
                [binary],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **({"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}),
            )
        daemon = cls(root, proc, uid, gid)
        try:
            daemon._wait_answering()
        except BaseException:
            daemon.stop()
            raise
        with _DAEMONS_LOCK:
            _DAEMONS[daemon.uri] = daemon
        return daemon

    def _wait_answering(self) -> None:
        libvirt = _libvirt()
        deadline = time.monotonic() + _START_SECONDS
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"libvirtd exited at once: {self.log_tail()}")
            if self.socket.exists():
                try:
                    conn = libvirt.open(self.uri)
                except libvirt.libvirtError:
                    pass
                else:
                    conn.close()
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"libvirtd did not answer within {_START_SECONDS:.0f} s")
            time.sleep(0.05)

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Destroy and undefine every domain, stop the daemon, remove its directory."""
        with _DAEMONS_LOCK:
            _DAEMONS.pop(self.uri, None)
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):  # best effort: the daemon goes below anyway
                self._remove_domains()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._kill_leftover_qemu()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_domains(self) -> None:
        libvirt = _libvirt()
        conn = libvirt.open(self.uri)
        try:
            for dom in conn.listAllDomains():
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefine()
        finally:
            conn.close()

    def _kill_leftover_qemu(self) -> None:
        """A QEMU of this daemon that outlived it (the daemon was killed): its pid file."""
        for pidfile in (self.root / "run/libvirt/qemu/run").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if str(self.root).encode() in cmdline:
                    os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> Libvirtd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- lab domains -----------------------------------------------------------------------

    def define_lab_domain(
        self,
        lab_build: BuildInfo,
        name: str,
        profile: str = "default",
        *,
        memory: str = "512M",
        cpus: int = 1,
    ) -> LabDomain:
        """Define (not start) lab guest ``name`` as a TCG domain in this daemon."""
        spec = GuestSpec.check(name, profile, memory, cpus)
        defined = define(self.uri, self.root / "guests", spec, lab_build, start=False)
        # kdiag (root) wrote the guest directory; the daemon's QEMU runs as its user
        for path in [defined.files.directory, *defined.files.directory.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        domain = LabDomain(self.uri, name, defined.files)
        self.domains[name] = domain
        return domain

    def domain(self, name: str) -> LabDomain:
        return self.domains[name]

    def define_xml(self, xml: str) -> str:
        """Define a domain from its XML (see :func:`minimal_domain_xml`); its name."""
        conn = _libvirt().open(self.uri)
        try:
            return str(conn.defineXML(xml).name())
        finally:
            conn.close()

    def virsh(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``virsh -c URI ARGS...`` (the peer's own CLI)."""
        return subprocess.run(
            [require_tool("virsh"), "-c", self.uri, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def minimal_domain_xml(name: str, arch: str = "x86_64", memory_mib: int = 64) -> str:
    """A domain with no kernel, disk or network: enough for state, pause and shut-off
    tests without booting anything (``aarch64``: ``-M virt``, for inject-nmi's refusal)."""
    if arch == "aarch64":
        emulator, machine, cpu = "qemu-system-aarch64", "virt", "<cpu mode='maximum'/>"
    else:
        emulator, machine, cpu = "qemu-system-x86_64", "pc", ""
    return (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
        f"<vcpu>1</vcpu><os><type arch='{arch}' machine='{machine}'>hvm</type></os>{cpu}"
        f"<devices><emulator>{require_tool(emulator)}</emulator>"
        "<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>"
    )


def define_lab_domain(uri: str, lab_build: BuildInfo, name: str, profile: str = "default") -> str:
    """Define lab guest ``name`` in the private daemon serving ``uri``; its name.

    The :class:`LabDomain` (console, dump disk, waits) is ``Libvirtd.domain(name)``.
    """
    with _DAEMONS_LOCK:
        daemon = _DAEMONS.get(uri)
    if daemon is None:
        raise LookupError(f"no private libvirtd of this test run serves {uri}")
    return daemon.define_lab_domain(lab_build, name, profile).name


@contextlib.contextmanager
def running_libvirtd(tmpdir: Path | None = None) -> Iterator[Libvirtd]:
    """A private libvirtd for the ``with`` block (stopped and removed after it)."""
    daemon = Libvirtd.start(tmpdir)
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def module_libvirtd() -> Iterator[Libvirtd]:
    """A private libvirtd shared by the tests of one module."""
    with running_libvirtd() as daemon:
        yield daemon
