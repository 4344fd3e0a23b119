"""Named credentials: BMC and API logins that targets name (``"credentials": "name:NAME"``).

Kept per account, like instances: a name, a username in clear (``kdiag credentials list``
shows it) and the password sealed with the store's key file (Fernet), as access-key secrets
are.  Nothing here returns a password except :meth:`NamedCredentials.open_credentials`,
which a backend reaches at delivery time through the vault on its
:class:`~kdiag.backends.base.Target` (:meth:`NamedCredentials.target_of`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kdiag.backends.base import Target
from kdiag.backends.credentials import (
    CREDENTIALS_KEY,
    CREDENTIALS_NAME,
    Credentials,
    CredentialsRef,
)
from kdiag.errors import ConfigError, NoSuchEntity
from kdiag.store._base import StoreBase, _now
from kdiag.store.models import InstanceRow, NamedCredentialsRow
from kdiag.store.records import Instance

__all__ = (
    "MAX_PASSWORD_LENGTH",
    "MAX_USERNAME_LENGTH",
    "AccountVault",
    "NamedCredentials",
    "StoredCredentials",
    "check_credentials_name",
    "refuse_unknown_name",
)

MAX_USERNAME_LENGTH = 256
"""The longest username kept (the column's width)."""
MAX_PASSWORD_LENGTH = 1024
"""The longest password kept; IPMI's are at most 20 bytes, Redfish services' a few dozen."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_credentials_name(name: str) -> str:
    """``name`` when it is a valid credentials name.

    :raises ConfigError: not letters, digits and ``_.@+=,-`` (at most 64, starting with a
        letter or digit); the name is not quoted back, in case a secret was pasted in.
    """
    if not CREDENTIALS_NAME.fullmatch(name):
        raise ConfigError(
            "invalid credentials name: use letters, digits and _.@+=,- (starting with a "
            "letter or digit, at most 64 characters)"
        )
    return name


def refuse_unknown_name(session: Session, account_id: str, target: Mapping[str, Any]) -> None:
    """Refuse a target whose ``credentials`` is ``name:NAME`` for stored credentials the
    account does not have (a typo found now, not at the first NMI).

    :raises ConfigError: without quoting the name.
    """
    ref = target.get(CREDENTIALS_KEY)
    if not isinstance(ref, str) or not ref.startswith("name:"):
        return
    name = CredentialsRef.parse(ref).location
    if session.get(NamedCredentialsRow, (account_id, name)) is None:
        raise ConfigError(
            'target setting "credentials" names no stored credentials of this account: '
            "create them first (kdiag credentials set NAME --username USER "
            "--password-stdin; kdiag credentials list shows the names)"
        )


def _check_login(username: str, password: str) -> None:
    if not username or len(username) > MAX_USERNAME_LENGTH or _CONTROL.search(username):
        raise ConfigError(
            f"the username must be 1 to {MAX_USERNAME_LENGTH} characters, with no control "
            "characters"
        )
    if not password:
        raise ConfigError("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
        raise ConfigError(
            f"the password must be at most {MAX_PASSWORD_LENGTH} characters, with no NUL"
        )


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """What may be shown of named credentials: never the password."""

    name: str
    username: str
    account_id: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Username": self.username,
            "AccountId": self.account_id,
            "CreatedAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "UpdatedAt": self.updated_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True, slots=True)
class AccountVault:
    """One account's named credentials, as a
    :class:`~kdiag.backends.credentials.CredentialsVault` for backends."""

    store: NamedCredentials
    account_id: str

    def open_credentials(self, name: str) -> Credentials:
        return self.store.open_credentials(name, account_id=self.account_id)

    def __repr__(self) -> str:
        return f"AccountVault({self.account_id})"


class NamedCredentials(StoreBase):
    """Named credentials, the password sealed at rest."""

    @staticmethod
    def _stored(row: NamedCredentialsRow) -> StoredCredentials:
        return StoredCredentials(
            row.name, row.username, row.account_id, row.created_at, row.updated_at
        )

    def set_credentials(
        self, name: str, *, username: str, password: str, account_id: str | None = None
    ) -> tuple[StoredCredentials, bool]:
        """Store (or replace) the credentials ``name``; whether they were new.

        :raises ConfigError: a bad name, an empty or over-long username or password.
        """
        check_credentials_name(name)
        _check_login(username, password)
        acct = self._account_id(account_id)
        sealed = self._box.seal(password)
        for attempt in range(2):
            now = _now()
            try:
                with self._write() as session:
                    row = session.get(NamedCredentialsRow, (acct, name))
                    created = row is None
                    if row is None:
                        row = NamedCredentialsRow(account_id=acct, name=name, created_at=now)
                        session.add(row)
                    row.username = username
                    row.password_sealed = sealed
                    row.updated_at = now
                return self._stored(row), created
            except IntegrityError:  # another writer created it between get and insert
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def list_credentials(self, *, account_id: str | None = None) -> list[StoredCredentials]:
        """The account's named credentials by name (usernames, never passwords)."""
        acct = self._account_id(account_id)
        with self._read() as session:
            rows = session.scalars(
                select(NamedCredentialsRow)
                .where(NamedCredentialsRow.account_id == acct)
                .order_by(NamedCredentialsRow.name)
            )
            return [self._stored(r) for r in rows]

    def credentials_users(self, name: str, *, account_id: str | None = None) -> list[str]:
        """Ids of the account's instances whose target names the credentials ``name``."""
        acct = self._account_id(account_id)
        with self._read() as session:
            rows = session.execute(
                select(InstanceRow.id, InstanceRow.target).where(InstanceRow.account_id == acct)
            )
            return sorted(
                iid
                for iid, target in rows
                if isinstance(target, dict) and target.get(CREDENTIALS_KEY) == f"name:{name}"
            )

    def delete_credentials(
        self, name: str, *, account_id: str | None = None, force: bool = False
    ) -> None:
        """Forget the credentials ``name``.

        :raises NoSuchEntity: none by that name.
        :raises ConfigError: instances still name them (unless ``force``).
        """
        check_credentials_name(name)
        acct = self._account_id(account_id)
        with self._read() as session:
            if session.get(NamedCredentialsRow, (acct, name)) is None:
                raise NoSuchEntity(f"no credentials named {name!r}")
        users = [] if force else self.credentials_users(name, account_id=acct)
        if users:
            shown = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")
            raise ConfigError(
                f"credentials {name!r} are named by {len(users)} instance(s) ({shown}); "
                "remove or change those first, or delete with --force"
            )
        with self._write() as session:
            gone = session.execute(
                delete(NamedCredentialsRow).where(
                    NamedCredentialsRow.account_id == acct, NamedCredentialsRow.name == name
                )
            )
            if not getattr(gone, "rowcount", 0):
                raise NoSuchEntity(f"no credentials named {name!r}")

    def open_credentials(self, name: str, *, account_id: str | None = None) -> Credentials:
        """The credentials ``name``, unsealed: for a backend, at delivery time only.

        :raises NoSuchEntity: none by that name in the account (a ``ConfigError``).
        :raises ConfigError: the password cannot be unsealed with this key file.
        """
        acct = self._account_id(account_id)
        with self._read() as session:
            row = session.get(NamedCredentialsRow, (acct, name))
            if row is None:
                shown = name if CREDENTIALS_NAME.fullmatch(name) else "(invalid name)"
                raise NoSuchEntity(
                    f"no credentials named {shown!r} in account {acct} (kdiag credentials set)"
                )
            username, sealed = row.username, row.password_sealed
        return Credentials(
            f"credentials {name}", {"username": username, "password": self._box.open(sealed)}
        )

    def credentials_vault(self, account_id: str) -> AccountVault:
        """The named credentials of ``account_id``, for a :class:`Target`."""
        return AccountVault(self, account_id)

    def target_of(self, instance: Instance) -> Target:
        """What a backend acts on for ``instance``: its settings, architecture and its
        account's named credentials."""
        return Target(
            instance.id,
            instance.target,
            instance.arch,
            vault=self.credentials_vault(instance.account_id),
        )
