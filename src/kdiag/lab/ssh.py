"""SSH into lab guests: keys per lab root, a host-forwarded port on loopback, ssh arguments.

Each lab root holds ``ssh/`` (mode 0700) with two ed25519 keys made by ``ssh-keygen`` the
first time a guest of that root boots:

    ssh/id_ed25519(.pub)        the client key; its public half is the guest root's only
                                authorized key (passed on the kernel command line)
    ssh/host_ed25519(.pub)      the guests' host key (passed through QEMU's fw_cfg, which
                                the guest's dropbear reads), so the host key is known in
                                advance and checked strictly: ``ssh/known_hosts``
                                pins it for ``[127.0.0.1]:*``

The guest runs Debian's dropbear on port 22 of QEMU's user-mode network (``restrict=on``:
the guest reaches nothing outside), and QEMU forwards ``127.0.0.1:PORT`` to it; nothing
listens beyond loopback.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import BackendUnavailable, ConfigError

__all__ = (
    "FW_CFG_HOST_KEY",
    "SSHAccess",
    "SSHKeys",
    "access",
    "ansible_inventory",
    "free_port",
    "lab_keys",
)

#: the fw_cfg item holding the guest's host key (OpenSSH private key format)
FW_CFG_HOST_KEY = "opt/kdiag/ssh_host_key"
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SSHKeys:
    """The key files of one lab root."""

    directory: Path
    client_key: Path
    client_public: str
    host_key: Path
    host_public: str
    known_hosts: Path

    def cmdline_key(self) -> str:
        """The client public key as one kernel command line word (``type:base64``)."""
        kind, body = self.client_public.split()[:2]
        return f"{kind}:{body}"


@dataclass(frozen=True)
class SSHAccess:
    """How to reach one guest: ``ssh -i key -p port root@127.0.0.1``."""

    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key": str(self.key),
            "known_hosts": str(self.known_hosts),
        }

    def options(self) -> list[str]:
        """OpenSSH client options (also what Ansible's ``ansible_ssh_common_args`` gets)."""
        return [
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]

    def argv(self, command: list[str] | None = None) -> list[str]:
        """The ``ssh`` argument vector for an interactive session or one command."""
        args = ["ssh", "-i", str(self.key), "-p", str(self.port), *self.options()]
        args.append(f"{self.user}@{self.host}")
        return [*args, *(command or [])]


def _keygen(path: Path, comment: str) -> None:
    try:
        proc = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise BackendUnavailable(
            "ssh-keygen is not installed (apt-get install openssh-client)"
        ) from None
    if proc.returncode != 0:
        raise ConfigError(f"ssh-keygen failed: {proc.stderr.strip()[:300]}")


def _make_pair(directory: Path, name: str, comment: str) -> None:
    """Make ``directory/name(.pub)`` once, safely against concurrent callers.

    The pair is generated in a private temporary directory, then the public half and the
    private key are published with ``os.link``, private key last (it is the commit mark).
    Callers hold the ``fcntl`` lock on ``directory/.lock``, so exactly one of them makes
    the pair and the others use it.
    """
    final = directory / name
    public = final.with_suffix(".pub")
    if final.exists() and public.exists():
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory))
    try:
        _keygen(tmp / name, comment)
        os.chmod(tmp / name, 0o600)
        # a stale half from an older crash is replaced (we hold the lock)
        final.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        os.link(tmp / f"{name}.pub", public)
        os.link(tmp / name, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lab_keys(root: Path) -> SSHKeys:
    """The keys of the lab at ``root``, made on first use (both files 0600, directory 0700).

    Safe when several guests of one root start at once (threads or processes): creation
    is serialised by an exclusive ``fcntl`` lock on ``ssh/.lock`` and each key is published
    atomically, so every caller gets the same keys.
    """
    directory = root / "ssh"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    client = directory / "id_ed25519"
    host = directory / "host_ed25519"
    lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        for path, comment in ((client, "kdiag-lab-client"), (host, "kdiag-lab-host")):
            _make_pair(directory, path.name, comment)
            os.chmod(path, 0o600)
        client_public = client.with_suffix(".pub").read_text().strip()
        host_public = host.with_suffix(".pub").read_text().strip()
        known = directory / "known_hosts"
        kind, body = host_public.split()[:2]
        line = f"[{_LOOPBACK}]:* {kind} {body}\n"
        if not known.exists() or known.read_text() != line:
            staged = directory / f".known_hosts.{os.getpid()}.{threading.get_ident()}"
            staged.write_text(line)
            os.replace(staged, known)
    finally:
        os.close(lock_fd)  # releases the lock
    return SSHKeys(directory, client, client_public, host, host_public, known)


def free_port() -> int:
    """A TCP port free on loopback now (QEMU binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def access(keys_dir: Path, port: int) -> SSHAccess:
    """The access record of a guest whose lab keys are in ``keys_dir``."""
    return SSHAccess(
        host=_LOOPBACK,
        port=port,
        user="root",
        key=keys_dir / "id_ed25519",
        known_hosts=keys_dir / "known_hosts",
    )


def ansible_inventory(hosts: list[tuple[str, SSHAccess]], group: str = "lab") -> str:
    """An Ansible INI inventory reaching each ``(name, access)`` over SSH with the lab key
    and the pinned host key (``kdiag lab inventory`` prints it)."""
    lines = [f"[{group}]"]
    for name, acc in hosts:
        common = " ".join(acc.options()[2:])  # IdentitiesOnly is implied by the key file
        lines.append(
            f"{name} ansible_host={acc.host} ansible_port={acc.port} ansible_user={acc.user} "
            f"ansible_ssh_private_key_file={acc.key} ansible_ssh_common_args='{common}'"
        )
    return "\n".join(lines) + "\n"
