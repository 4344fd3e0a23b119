"""Credentials references: targets name their secrets, they never hold them.

A target's settings are stored in the database, listed by ``kdiag instances list`` and
quoted in error messages, so they must hold no secret.  A backend that needs one (a BMC
password, an API key) takes a ``credentials`` setting whose value is a *reference*:

``file:/abs/path``
    a regular file owned by the user running kdiag, mode 0600 or stricter, holding a JSON
    object of strings or ``key=value`` lines (``#`` comments and blank lines allowed);
``env:PREFIX``
    the environment variables ``PREFIX_USERNAME``, ``PREFIX_PASSWORD``, ... (every
    ``PREFIX_*`` variable, its suffix lower-cased as the key);
``name:NAME``
    named credentials kept sealed in kdiag's database (``kdiag credentials set NAME
    --username USER --password-stdin``), looked up in the instance's account through the
    :class:`CredentialsVault` the caller hands the backend on
    :class:`~kdiag.backends.base.Target`.  Always with its prefix: a bare word could be a
    pasted password, and is refused like one.

:class:`CredentialsRef` is what is stored (the reference text only);
:meth:`CredentialsRef.resolve` reads the secret at delivery time and returns
:class:`Credentials`, whose ``repr`` shows key names only.  Nothing resolved is stored or
logged.

Two defences sit beside it: :func:`find_secret` (used by ``TargetSettings.parse`` and
``Store.add_instance``) refuses target settings that look like they hold a secret, and
:func:`masked_settings` is the one masking function for anything that shows target values
(listings, error messages).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from kdiag.errors import ConfigError

__all__ = (
    "CREDENTIALS_KEY",
    "CREDENTIALS_NAME",
    "MASK",
    "Credentials",
    "CredentialsRef",
    "CredentialsVault",
    "find_secret",
    "is_secret_key",
    "mask_text",
    "masked_settings",
    "refuse_secrets",
)

#: The target setting that names a credentials reference.
CREDENTIALS_KEY = "credentials"

#: What a masked value is shown as.
MASK = "***"

# Compared after lower-casing and dropping "-", "_", "." and spaces, so "API-Key",
# "x-api-key", "private_key" and "PrivateKey" all match.
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "sshkey",
    "keymaterial",
    "credential",
    "authorization",
    "cookie",
    "pwd",
)

# Bounded scheme and user: unbounded, the scan retried from every letter of a long word and
# went quadratic (60 KB of text took 4.5 s; audit messages echo what callers send).
_URL_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<user>[^/?#@\s:]{0,256}):[^/?#@\s]*@"
)
_KEY_MATERIAL = re.compile(r"-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|SECRET)[A-Z0-9 ]*-----")
_ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: What a credentials name may be: no ``:`` (so it never reads as ``file:``/``env:``), no
#: spaces, at most 64 characters.
CREDENTIALS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+=,-]{0,63}")


def _folded(key: str) -> str:
    return re.sub(r"[\s_.\-]", "", key).casefold()


# Keys that are secret only when they are the whole name ("keyboard" is not).
_SECRET_NAMES = frozenset({"key", "pass", "pin", "auth", "bearer"})


def is_secret_key(key: object) -> bool:
    """Whether a settings key names a secret (``password``, ``x-api-key``, ``Token``, ...)."""
    folded = _folded(str(key))
    return folded in _SECRET_NAMES or any(word in folded for word in _SECRET_WORDS)


def _is_reference(key: object, value: object) -> bool:
    """``"credentials": "file:..."`` / ``"env:..."`` / ``"name:..."``: a reference, not a
    secret."""
    return (
        key == CREDENTIALS_KEY
        and isinstance(value, str)
        and value.startswith(("file:", "env:", "name:"))
    )


def find_secret(value: Any, path: str = "") -> str | None:
    """Where in ``value`` (nested mappings and lists) a secret seems to be, as a dotted path
    (``auth.password``, ``urls[1]``), or ``None``.  The value itself is never returned.

    A secret is: a key that names one (:func:`is_secret_key`; ``credentials`` holding a
    ``file:``/``env:`` reference excepted), a URL with a password in its userinfo
    (``https://user:pass@host``), or PEM private-key material.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _is_reference(key, item) and not path:
                continue
            if is_secret_key(key) or _secret_text(str(key)):
                return where
            found = find_secret(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_secret(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(value, str) and _secret_text(value):
        return path or "value"
    return None


def _secret_text(text: str) -> bool:
    return bool(_URL_USERINFO.search(text) or _KEY_MATERIAL.search(text))


def refuse_secrets(settings: Any, backend: str = "backend") -> None:
    """Refuse target settings that hold a secret.

    :raises ConfigError: naming where (never the value) and telling to use a reference.
    """
    where = find_secret(settings)
    if where is not None:
        where = mask_text(where)  # a key may itself be a URL with a password in it
        raise ConfigError(
            f'{backend} target setting "{where}" looks like a secret: targets hold no '
            "secrets; put it in a 0600 file or the environment and name it with "
            '"credentials": "file:/path" or "env:PREFIX", or "name:NAME" for credentials '
            "kept by kdiag credentials set (see kdiag instances add --help)"
        )


def mask_text(text: str) -> str:
    """``text`` with URL passwords (``user:***@``) and PEM key material masked."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _KEY_MATERIAL.sub(MASK, text) if _KEY_MATERIAL.search(text) else text


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            _masked(k) if isinstance(k, str) else k: (
                MASK if is_secret_key(k) and not _is_reference(k, v) else _masked(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        return MASK if _KEY_MATERIAL.search(value) else mask_text(value)
    return value


def masked_settings(settings: Any) -> Any:
    """Target settings (or any value from them) fit to show: the one masking function.

    Values under secret-looking keys, at any depth, become ``"***"``; URL userinfo
    passwords become ``user:***@``; PEM key material becomes ``"***"``.  A credentials
    reference (``file:``/``env:``/``name:``) is shown, since it names a secret without holding it.
    """
    return _masked(settings)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Resolved credentials: only ever in memory, for the duration of one delivery.

    ``repr`` and ``str`` name the keys and the source, never a value.
    """

    source: str
    values: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    @property
    def username(self) -> str | None:
        return self.values.get("username")

    @property
    def password(self) -> str | None:
        return self.values.get("password")

    def __repr__(self) -> str:
        return f"Credentials({self.source}, keys={sorted(self.values)})"

    __str__ = __repr__


class CredentialsVault(Protocol):
    """Where named credentials are kept (kdiag's store, bound to one account)."""

    def open_credentials(self, name: str) -> Credentials:
        """The credentials stored as ``name``, unsealed.

        :raises ConfigError: none by that name (the message never holds a value).
        """
        ...


@dataclass(frozen=True, slots=True)
class CredentialsRef:
    """A ``credentials`` target setting: ``file:/path``, ``env:PREFIX`` or ``name:NAME``
    (credentials kept sealed in kdiag's database); never a secret."""

    kind: Literal["file", "env", "name"]
    location: str

    @classmethod
    def parse(cls, text: str) -> CredentialsRef:
        """The reference in ``text``.

        :raises ConfigError: not ``file:`` + an absolute path, nor ``env:`` + a variable
            prefix, nor ``name:`` + a credentials name (the message does not quote ``text``,
            in case it is a pasted secret).
        """
        kind, sep, location = text.partition(":")
        if sep and kind == "file" and location.startswith("/"):
            return cls("file", location)
        if sep and kind == "env" and _ENV_PREFIX.fullmatch(location):
            return cls("env", location)
        if sep and kind == "name" and CREDENTIALS_NAME.fullmatch(location):
            return cls("name", location)
        raise ConfigError(
            'target setting "credentials" must be "file:/absolute/path" (a 0600 file), '
            '"env:PREFIX" (PREFIX_USERNAME, PREFIX_PASSWORD, ...) or "name:NAME" '
            "(kdiag credentials set)"
        )

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"

    def resolve(self, vault: CredentialsVault | None = None) -> Credentials:
        """Read the credentials now (at delivery time).

        :param vault: where named credentials are kept (the instance's account in kdiag's
            store); only a ``NAME`` reference needs it.
        :raises ConfigError: the file is missing, not a regular file, not owned by this
            user, readable by group or others, or not JSON / ``key=value``; no
            ``PREFIX_*`` variable is set; no credentials by that name, or no vault to look
            them up in.  The message never holds a value.
        """
        if self.kind == "env":
            return self._from_env()
        if self.kind == "name":
            if vault is None:
                raise ConfigError(
                    f"credentials {self}: named credentials are kept in kdiag's database, "
                    "and this caller did not open it"
                )
            return vault.open_credentials(self.location)
        return self._from_file()

    def _from_env(self) -> Credentials:
        head = self.location + "_"
        values = {
            name[len(head) :].lower(): value
            for name, value in os.environ.items()
            if name.startswith(head) and len(name) > len(head)
        }
        if not values:
            raise ConfigError(
                f"credentials {self}: no {head}* variable is set "
                f"(expected {head}USERNAME, {head}PASSWORD, ...)"
            )
        return Credentials(str(self), values)

    def _from_file(self) -> Credentials:
        where = f"credentials {self}"
        try:
            fd = os.open(self.location, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ConfigError(f"{where}: no such file") from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot open: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{where}: not a regular file")
            if info.st_uid != os.geteuid():
                raise ConfigError(
                    f"{where}: owned by uid {info.st_uid}, not by the user running kdiag "
                    f"(uid {os.geteuid()})"
                )
            if info.st_mode & 0o077:
                raise ConfigError(
                    f"{where}: mode {stat.S_IMODE(info.st_mode):04o} lets others read it; "
                    "it must be 0600 or stricter (chmod 600)"
                )
            data = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
        return Credentials(str(self), _parse_content(where, data))


def _parse_content(where: str, data: bytes) -> dict[str, str]:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ConfigError(f"{where}: not valid JSON") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise ConfigError(f"{where}: JSON must be an object of strings")
        values = {k.lower(): v for k, v in parsed.items()}
    else:
        values = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{where}: line {number} is not key=value")
            values[key.strip().lower()] = value.strip()
    if not values:
        raise ConfigError(f"{where}: holds no credentials")
    return values
