"""Users, access keys and inline policies, within IAM's quotas: at most
:data:`ACCESS_KEYS_PER_USER` access keys per user, and all of a user's inline policies
together at most :data:`kdiag.policy.USER_POLICY_SIZE_LIMIT` characters, whitespace not
counted.  Both are checked inside the write transaction, with the user's row locked on
PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already serializes writers), so two concurrent
requests cannot both slip under a quota."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from kdiag import policy
from kdiag.errors import ConfigError, LimitExceeded, NoSuchEntity
from kdiag.store import ids
from kdiag.store._base import _POLICY_NAME, StoreBase, _check_name, _now
from kdiag.store.models import AccessKeyRow, UserPolicyRow, UserRow
from kdiag.store.records import AccessKey, User

__all__ = ("ACCESS_KEYS_PER_USER", "Identity")

ACCESS_KEYS_PER_USER = 2
"""IAM's quota: two access keys per user, active or not ("IAM and AWS STS quotas")."""

# Built once (building costs more than running): these run on every request.
_KEY = (
    select(
        AccessKeyRow.id,
        AccessKeyRow.status,
        AccessKeyRow.created_at,
        AccessKeyRow.secret_sealed,
        UserRow.id.label("user_id"),
        UserRow.name.label("user_name"),
        UserRow.account_id,
        UserRow.created_at.label("user_created_at"),
    )
    .join(UserRow, AccessKeyRow.user_id == UserRow.id)
    .where(AccessKeyRow.id == bindparam("key_id"), AccessKeyRow.status == "Active")
)
_POLICIES = (
    select(UserPolicyRow.document)
    .join(UserRow, UserPolicyRow.user_id == UserRow.id)
    .where(UserRow.account_id == bindparam("account_id"), UserRow.name == bindparam("name"))
    .order_by(UserPolicyRow.name)
)


class Identity(StoreBase):
    """Users, their access keys (secrets sealed at rest) and their inline policies."""

    # --- users ---------------------------------------------------------------------------

    @staticmethod
    def _user(row: UserRow) -> User:
        return User(row.id, row.name, row.account_id, row.created_at)

    def create_user(self, name: str, *, account_id: str | None = None) -> User:
        """Create a user in ``account_id`` (default: the default account)."""
        _check_name("user", name)
        row = UserRow(
            id=ids.new_user_id(),
            account_id=self._account_id(account_id),
            name=name,
            created_at=_now(),
        )
        self._insert(row, f"user {name!r}")
        return self._user(row)

    def get_user(self, name: str, *, account_id: str | None = None) -> User | None:
        acct = account_id if account_id is not None else self.default_account().id
        with self._read() as session:
            row = session.scalars(
                select(UserRow).where(UserRow.account_id == acct, UserRow.name == name)
            ).first()
            return None if row is None else self._user(row)

    def user(self, user: User | str, *, account_id: str | None = None) -> User:
        """``user`` itself, or the user by that name.

        :raises NoSuchEntity: no such user.
        """
        if isinstance(user, User):
            return user
        found = self.get_user(user, account_id=account_id)
        if found is None:
            raise NoSuchEntity(f"no user named {user!r}")
        return found

    def list_users(self, *, account_id: str | None = None) -> list[User]:
        with self._read() as session:
            query = select(UserRow).order_by(UserRow.account_id, UserRow.name)
            if account_id is not None:
                query = query.where(UserRow.account_id == account_id)
            return [self._user(r) for r in session.scalars(query)]

    def delete_user(self, user: User | str) -> None:
        """Delete a user with its keys and policies."""
        found = self.user(user)
        with self._write() as session:
            session.execute(delete(AccessKeyRow).where(AccessKeyRow.user_id == found.id))
            session.execute(delete(UserPolicyRow).where(UserPolicyRow.user_id == found.id))
            session.execute(delete(UserRow).where(UserRow.id == found.id))

    # --- access keys -----------------------------------------------------------------------

    @staticmethod
    def _lock_user(session: Session, found: User) -> None:
        """Hold ``found``'s row for the rest of the transaction (PostgreSQL; SQLite writers
        are serialized already), so quota checks and the write they guard are one step."""
        if (
            session.scalars(
                select(UserRow.id).where(UserRow.id == found.id).with_for_update()
            ).first()
            is None
        ):
            raise NoSuchEntity(f"no user named {found.name!r}")

    def create_access_key(self, user: User | str) -> tuple[AccessKey, str]:
        """A new active access key for ``user`` and its secret (shown to no one else, ever).

        The secret is stored Fernet-encrypted with the key file.

        :raises LimitExceeded: the user has :data:`ACCESS_KEYS_PER_USER` keys already.
        """
        found = self.user(user)
        secret = ids.new_secret_access_key()
        row = AccessKeyRow(
            id=ids.new_access_key_id(),
            user_id=found.id,
            secret_sealed=self._box.seal(secret),
            status="Active",
            created_at=_now(),
        )
        with self._write() as session:
            self._lock_user(session, found)
            count = session.scalar(
                select(func.count())
                .select_from(AccessKeyRow)
                .where(AccessKeyRow.user_id == found.id)
            )
            if (count or 0) >= ACCESS_KEYS_PER_USER:
                raise LimitExceeded(
                    f"user {found.name!r} already has {ACCESS_KEYS_PER_USER} access keys, the"
                    " most IAM allows: delete one first (kdiag iam delete-access-key)"
                )
            session.add(row)
        return AccessKey(row.id, found.id, found.name, row.status, row.created_at), secret

    def list_access_keys(self, user: User | str | None = None) -> list[AccessKey]:
        with self._read() as session:
            query = (
                select(AccessKeyRow, UserRow)
                .join(UserRow, AccessKeyRow.user_id == UserRow.id)
                .order_by(UserRow.name, AccessKeyRow.created_at)
            )
            if user is not None:
                query = query.where(AccessKeyRow.user_id == self.user(user).id)
            return [
                AccessKey(k.id, u.id, u.name, k.status, k.created_at)
                for k, u in session.execute(query)
            ]

    def lookup_access_key(self, key_id: str) -> tuple[AccessKey, User, str] | None:
        """The active key ``key_id`` with its user and decrypted secret, or ``None``.

        Inactive and unknown keys look the same to the caller (both ``None``).
        """
        with self._engine.connect() as conn:
            row = conn.execute(_KEY, {"key_id": key_id}).first()
        if row is None:
            return None
        user = User(row.user_id, row.user_name, row.account_id, row.user_created_at)
        key = AccessKey(row.id, user.id, user.name, row.status, row.created_at)
        return key, user, self._box.open(row.secret_sealed)

    def _key_filter(self, key_id: str, user: User | str | None) -> tuple[Any, ...]:
        if user is None:
            return (AccessKeyRow.id == key_id,)
        return (AccessKeyRow.id == key_id, AccessKeyRow.user_id == self.user(user).id)

    @staticmethod
    def _no_key(key_id: str, user: User | str | None) -> NoSuchEntity:
        name = user.name if isinstance(user, User) else user
        owner = f" of user {name!r}" if name is not None else ""
        return NoSuchEntity(f"no access key {key_id}{owner}")

    def set_access_key_status(
        self, key_id: str, status: str, *, user: User | str | None = None
    ) -> None:
        """Make a key ``Active`` or ``Inactive``; an inactive key authenticates nothing.

        :param user: when given, the key must be this user's (as ``aws iam
            update-access-key --user-name`` checks).
        :raises NoSuchEntity: no such key (of that user).
        """
        if status not in {"Active", "Inactive"}:
            raise ConfigError(f"status must be Active or Inactive, not {status!r}")
        where = self._key_filter(key_id, user)
        with self._write() as session:
            result = session.execute(update(AccessKeyRow).where(*where).values(status=status))
            if result.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
                raise self._no_key(key_id, user)

    def delete_access_key(self, key_id: str, *, user: User | str | None = None) -> None:
        """Delete a key (``user``: only if it is that user's).

        :raises NoSuchEntity: no such key (of that user).
        """
        where = self._key_filter(key_id, user)
        with self._write() as session:
            if session.execute(delete(AccessKeyRow).where(*where)).rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
                raise self._no_key(key_id, user)

    # --- inline policies ----------------------------------------------------------------------

    def put_user_policy(
        self, user: User | str, policy_name: str, document: str | Mapping[str, Any]
    ) -> None:
        """Attach (or replace) the inline policy ``policy_name`` on ``user``.

        :raises PolicyError: the document is not a valid IAM policy (kdiag.policy.validate).
        :raises LimitExceeded: with it, the user's inline policies would together pass
            :data:`kdiag.policy.USER_POLICY_SIZE_LIMIT` characters (whitespace not counted).
        """
        found = self.user(user)
        _check_name("policy", policy_name, _POLICY_NAME)
        policy.validate(document)
        text = document if isinstance(document, str) else json.dumps(document)
        with self._write() as session:
            self._lock_user(session, found)
            others = session.scalars(
                select(UserPolicyRow.document).where(
                    UserPolicyRow.user_id == found.id, UserPolicyRow.name != policy_name
                )
            )
            total = policy.policy_size(text) + sum(policy.policy_size(d) for d in others)
            if total > policy.USER_POLICY_SIZE_LIMIT:
                raise LimitExceeded(
                    f"the inline policies of user {found.name!r} would total {total:,}"
                    f" characters (whitespace not counted); IAM allows"
                    f" {policy.USER_POLICY_SIZE_LIMIT:,} per user"
                )
            row = session.scalars(
                select(UserPolicyRow).where(
                    UserPolicyRow.user_id == found.id, UserPolicyRow.name == policy_name
                )
            ).first()
            if row is None:
                session.add(
                    UserPolicyRow(
                        user_id=found.id, name=policy_name, document=text, updated_at=_now()
                    )
                )
            else:
                row.document = text
                row.updated_at = _now()

    def get_user_policy(self, user: User | str, policy_name: str) -> str:
        """The document (JSON text, as it was put) of ``user``'s inline policy ``policy_name``.

        :raises NoSuchEntity: no such user, or the user has no policy of that name.
        """
        found = self.user(user)
        with self._read() as session:
            document = session.scalars(
                select(UserPolicyRow.document).where(
                    UserPolicyRow.user_id == found.id, UserPolicyRow.name == policy_name
                )
            ).first()
        if document is None:
            raise NoSuchEntity(f"user {found.name!r} has no policy {policy_name!r}")
        return document

    def get_user_policies(self, user: User | str) -> dict[str, str]:
        """The user's inline policies by name."""
        found = self.user(user)
        with self._read() as session:
            rows = session.scalars(
                select(UserPolicyRow)
                .where(UserPolicyRow.user_id == found.id)
                .order_by(UserPolicyRow.name)
            )
            return {r.name: r.document for r in rows}

    def policies_of(self, account_id: str, user_name: str) -> list[str]:
        """The inline policy documents of ``user_name`` in ``account_id`` (one query; an
        unknown user has none).  This is what authorization reads on every request."""
        with self._engine.connect() as conn:
            return list(conn.scalars(_POLICIES, {"account_id": account_id, "name": user_name}))

    def delete_user_policy(self, user: User | str, policy_name: str) -> None:
        found = self.user(user)
        with self._write() as session:
            result = session.execute(
                delete(UserPolicyRow).where(
                    UserPolicyRow.user_id == found.id, UserPolicyRow.name == policy_name
                )
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
                raise NoSuchEntity(f"user {found.name!r} has no policy {policy_name!r}")
