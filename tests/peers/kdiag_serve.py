"""A real ``kdiag serve`` process on loopback with its own state directory: the peer of the
aws backend (one kdiag fronting another), driven like an EC2 endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kdiag.store import Store
from tests.peers import ports

KDIAG = str(Path(sys.executable).with_name("kdiag"))


def free_port() -> int:
    """A TCP port free on loopback, below the ephemeral range (see :mod:`tests.peers.ports`)."""
    return ports.free_port()


def isolated_env(state_dir: Path) -> dict[str, str]:
    """The environment of a kdiag process: its own state, no developer AWS configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        KDIAG_KEY_FILE=str(state_dir / "kdiag.key"),
        KDIAG_STATE_DIR=str(state_dir),
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


class KdiagServe:
    """A state directory and, once started, ``kdiag serve`` on it (a context manager)."""

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.db = f"sqlite:///{state_dir}/kdiag.db"
        self.env = isolated_env(state_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start_args: list[str] = []  # extra `kdiag serve` options (--rate, --burst)

    def store(self) -> Store:
        return Store.open(self.db, key_file=self.state_dir / "kdiag.key")

    def user(self, name: str, policy: dict[str, Any]) -> tuple[str, str]:
        """A user with one inline policy; returns (access key id, secret)."""
        with self.store() as store:
            user = store.create_user(name)
            store.put_user_policy(user, "p", json.dumps(policy))
            key, secret = store.create_access_key(user)
            return key.id, secret

    def add_instance(self, backend: str, target: dict[str, Any], **kw: Any) -> str:
        with self.store() as store:
            return store.add_instance(backend=backend, target=target, **kw).id

    def audit(self, instance_id: str, action: str = "SendDiagnosticInterrupt") -> list[Any]:
        with self.store() as store:
            return [r for r in store.audit_rows(instance_id=instance_id) if r.action == action]

    def start(self) -> KdiagServe:
        self.process = subprocess.Popen(
            [KDIAG, "serve", "--port", str(self.port), "--db", self.db, *self.start_args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120  # start-up took ~50 s at load ~50 on 2 cores
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"kdiag serve exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/v1/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail("kdiag serve did not come up in 120 s")

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) without waiting; :meth:`stop` waits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.process = None

    def __enter__(self) -> KdiagServe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
