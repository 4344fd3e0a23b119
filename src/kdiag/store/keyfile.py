"""Secret access keys at rest: Fernet with a key file private to the user.

The key file lives beside the database in the state directory (``kdiag.key``) and is
created with ``O_CREAT | O_EXCL`` and mode 0600, so it is never world-readable, not even
for an instant, and two processes racing to create it end up sharing one key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from kdiag.errors import ConfigError

__all__ = ("SecretBox", "load_or_create_key")

KEY_FILE_NAME = "kdiag.key"


def load_or_create_key(path: Path) -> bytes:
    """The Fernet key in ``path``, creating the file (mode 0600) when it does not exist.

    :raises ConfigError: the file cannot be created or read (its directory is missing, it
        is a directory, permissions), has a loose mode, or is empty.
    """
    try:
        return _read_or_create(path)
    except OSError as exc:
        raise ConfigError(f"cannot use the key file {path}: {exc.strerror}") from exc


def _read_or_create(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        key = Fernet.generate_key()
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return key
    if path.is_dir():
        raise ConfigError(f"the key file {path} is a directory")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"key file {path} has mode {mode:04o}; it must be 0600")
    key = path.read_bytes().strip()
    if not key:
        raise ConfigError(f"key file {path} is empty")
    return key


class SecretBox:
    """Encrypt and decrypt secret access keys with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise ConfigError("the secret-key file does not hold a valid Fernet key") from exc

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        return cls(load_or_create_key(path))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a stored secret key cannot be decrypted with this key file "
                "(was the database moved without its key file?)"
            ) from exc
