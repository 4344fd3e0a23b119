"""A private OpenSSH sshd on loopback for the fleet tests and benchmarks.

Host and client keys of its own (ed25519, in a 0700 directory), public-key login as the
current user only, SFTP through Debian's sftp-server, and an ssh_config file (``config``)
naming the server ``kdiag-sshd`` with the pinned host key: give it to kdiag as
``KDIAG_SSH_CONFIG``.  ``listen`` picks the address (``0.0.0.0`` only inside a private
network namespace)."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ("Sshd", "start_sshd")

ALIAS = "kdiag-sshd"


@dataclass
class Sshd:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    config: Path
    key: Path
    known_hosts: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, path: str | os.PathLike[str]) -> str:
        return f"ssh://{ALIAS}{os.fspath(path)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def start_sshd(
    directory: Path,
    sshd: str,
    sftp_server: str,
    *,
    listen: str = "127.0.0.1",
    port: int | None = None,
    prefix: Sequence[str] = (),
    max_startups: int = 10,
) -> Sshd:
    """Start sshd (``prefix``: e.g. ``ip netns exec NS``) and wait until it answers."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    host_key, client_key = directory / "host_ed25519", directory / "id_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            _keygen(key)
    (directory / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    os.chmod(directory / "authorized_keys", 0o600)
    port = port or _free_port()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    (directory / "sshd_config").write_text(
        f"ListenAddress {listen}\nPort {port}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nStrictModes no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"AllowUsers {getpass.getuser()}\nPidFile none\n"
        f"MaxStartups {max_startups}:100:{max_startups}\nMaxSessions 50\n"
        f"Subsystem sftp {sftp_server}\nPermitRootLogin prohibit-password\n"
    )
    known = directory / "known_hosts"
    pub = host_key.with_suffix(".pub").read_text().split()
    host = "127.0.0.1" if listen == "0.0.0.0" else listen
    pattern = host if port == 22 else f"[{host}]:{port}"
    known.write_text(f"{pattern} {pub[0]} {pub[1]}\n")
    config = directory / "config"
    config.write_text(
        f"Host {ALIAS}\n  HostName {host}\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {client_key}\n  UserKnownHostsFile {known}\n"
        "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n"
    )
    log = open(directory / "sshd.log", "ab")  # noqa: SIM115 - kept by the process
    proc = subprocess.Popen(
        [*prefix, sshd, "-D", "-e", "-f", str(directory / "sshd_config")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    server = Sshd(directory, port, proc, config, client_key, known)
    if not prefix:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError((directory / "sshd.log").read_text()[-500:])
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError("sshd did not listen within 10 s")
    return server
