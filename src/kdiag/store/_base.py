"""The store's shared core: engine, sessions, the secret box, and accounts."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kdiag.errors import ConfigError, EntityAlreadyExists, NoSuchEntity
from kdiag.store import ids
from kdiag.store.engine import DURABLE, WRITE
from kdiag.store.keyfile import SecretBox
from kdiag.store.models import AccountRow
from kdiag.store.records import Account

__all__ = ("StoreBase",)

_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(kind: str, name: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not pattern.fullmatch(name):
        raise ConfigError(
            f"invalid {kind} name {name!r}: use letters, digits and +=,.@_- "
            f"(at most {64 if pattern is _NAME else 128} characters)"
        )
    return name


class StoreBase:
    """Engine, sessions and accounts; the other parts of :class:`~kdiag.store.Store` build
    on it."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._durable_writer = engine.execution_options(**{WRITE: True, DURABLE: True})
        self._box = box

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def _insert(self, row: object, what: str) -> None:
        """Add one new row; a clash with an existing one is :class:`EntityAlreadyExists`."""
        try:
            with self._write() as session:
                session.add(row)
        except IntegrityError as exc:
            raise EntityAlreadyExists(f"{what} already exists") from exc

    # --- accounts ----------------------------------------------------------------------

    @staticmethod
    def _account(row: AccountRow) -> Account:
        return Account(row.id, row.name, row.is_default, row.created_at)

    def create_account(
        self, name: str, *, account_id: str | None = None, default: bool = False
    ) -> Account:
        """Create an account (a random 12-digit id unless ``account_id`` is given)."""
        _check_name("account", name)
        if account_id is not None and not re.fullmatch(r"\d{12}", account_id):
            raise ConfigError(f"invalid account id {account_id!r}: 12 digits expected")
        row = AccountRow(
            id=account_id or ids.new_account_id(),
            name=name,
            is_default=default,
            created_at=_now(),
        )
        try:
            with self._write() as session:
                if default:
                    session.execute(update(AccountRow).values(is_default=False))
                session.add(row)
        except IntegrityError as exc:
            raise EntityAlreadyExists(f"account {name!r} or id {row.id} already exists") from exc
        return self._account(row)

    def default_account(self) -> Account:
        """The default account, created (as ``default``) on first use."""
        with self._read() as session:
            row = session.scalars(select(AccountRow).where(AccountRow.is_default)).first()
            if row is not None:
                return self._account(row)
        try:
            return self.create_account(
                "default", account_id=os.environ.get("KDIAG_ACCOUNT_ID") or None, default=True
            )
        except EntityAlreadyExists:  # another process created it first
            with self._read() as session:
                row = session.scalars(select(AccountRow).where(AccountRow.is_default)).one()
                return self._account(row)

    def get_account(self, account_id: str) -> Account | None:
        with self._read() as session:
            row = session.get(AccountRow, account_id)
            return None if row is None else self._account(row)

    def _account_id(self, account_id: str | None) -> str:
        if account_id is None:
            return self.default_account().id
        if self.get_account(account_id) is None:
            raise NoSuchEntity(f"no account {account_id}")
        return account_id
