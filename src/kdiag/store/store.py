"""The Store: kdiag's accounts, users, keys, policies, instances and audit log.

Every method runs its own short transaction and returns plain frozen records
(:mod:`kdiag.store.records`); a Store is safe to share between threads.

>>> store = Store.open("sqlite:///:memory:")          # doctest: +SKIP
>>> alice = store.create_user("alice")                 # doctest: +SKIP
>>> key, secret = store.create_access_key("alice")     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kdiag.errors import ConfigError, EntityAlreadyExists, NoSuchEntity
from kdiag.paths import state_dir
from kdiag.store import ids
from kdiag.store.engine import WRITE, create_store_engine, resolve_url, safe_url
from kdiag.store.keyfile import KEY_FILE_NAME, SecretBox
from kdiag.store.migrate import upgrade
from kdiag.store.models import (
    AccessKeyRow,
    AccountRow,
    AuditRow,
    InstanceRow,
    UserPolicyRow,
    UserRow,
)
from kdiag.store.records import AccessKey, Account, AuditEntry, Instance, User

__all__ = ("INSTANCE_STATES", "Store")

#: The EC2 instance states; only ``running`` can take a diagnostic interrupt.
INSTANCE_STATES = ("pending", "running", "shutting-down", "terminated", "stopping", "stopped")

_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_TAG_KEY_MAX = 128
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "i686": "i386"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(kind: str, name: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not pattern.fullmatch(name):
        raise ConfigError(
            f"invalid {kind} name {name!r}: use letters, digits and +=,.@_- "
            f"(at most {64 if pattern is _NAME else 128} characters)"
        )
    return name


def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def normalize_arch(arch: str) -> str:
    arch = arch.strip().lower()
    return _ARCH_ALIASES.get(arch, arch)


class Store:
    """Access to kdiag's database.  Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._box = box

    # --- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str | None = None, *, key_file: str | os.PathLike[str] | None = None
    ) -> Store:
        """Open (and migrate to the newest schema) the database at ``url``.

        :param url: a SQLAlchemy URL or a SQLite file path; default ``$KDIAG_DB``, else
            ``<state dir>/kdiag.db``.
        :param key_file: the Fernet key file for secret keys; default ``$KDIAG_KEY_FILE``,
            else ``<state dir>/kdiag.key`` (created mode 0600 on first use).
        """
        resolved = resolve_url(url)
        engine = create_store_engine(resolved)
        try:
            upgrade(engine)
        except ConfigError:
            engine.dispose()
            raise
        except Exception as exc:
            engine.dispose()
            raise ConfigError(f"cannot open the database {safe_url(resolved)}: {exc}") from exc
        key_path = Path(key_file or os.environ.get("KDIAG_KEY_FILE") or state_dir() / KEY_FILE_NAME)
        return cls(engine, SecretBox.from_file(key_path))

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return safe_url(self._engine.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

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

    def list_accounts(self) -> list[Account]:
        with self._read() as session:
            return [
                self._account(r)
                for r in session.scalars(select(AccountRow).order_by(AccountRow.name))
            ]

    def _account_id(self, account_id: str | None) -> str:
        if account_id is None:
            return self.default_account().id
        if self.get_account(account_id) is None:
            raise NoSuchEntity(f"no account {account_id}")
        return account_id

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
        try:
            with self._write() as session:
                session.add(row)
        except IntegrityError as exc:
            raise EntityAlreadyExists(f"user {name!r} already exists") from exc
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

    def create_access_key(self, user: User | str) -> tuple[AccessKey, str]:
        """A new active access key for ``user`` and its secret (shown to no one else, ever).

        The secret is stored Fernet-encrypted with the key file.
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
        # Core, not ORM: this runs on every authenticated request.
        with self._engine.connect() as conn:
            row = conn.execute(
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
                .where(AccessKeyRow.id == key_id, AccessKeyRow.status == "Active")
            ).first()
        if row is None:
            return None
        user = User(row.user_id, row.user_name, row.account_id, row.user_created_at)
        key = AccessKey(row.id, user.id, user.name, row.status, row.created_at)
        return key, user, self._box.open(row.secret_sealed)

    def set_access_key_status(self, key_id: str, status: str) -> None:
        if status not in {"Active", "Inactive"}:
            raise ConfigError("status must be Active or Inactive")
        with self._write() as session:
            if session.get(AccessKeyRow, key_id) is None:
                raise NoSuchEntity(f"no access key {key_id}")
            session.execute(
                update(AccessKeyRow).where(AccessKeyRow.id == key_id).values(status=status)
            )

    def delete_access_key(self, key_id: str) -> None:
        with self._write() as session:
            if session.execute(delete(AccessKeyRow).where(AccessKeyRow.id == key_id)).rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
                raise NoSuchEntity(f"no access key {key_id}")

    # --- inline policies ----------------------------------------------------------------------

    def put_user_policy(
        self, user: User | str, policy_name: str, document: str | Mapping[str, Any]
    ) -> None:
        """Attach (or replace) the inline policy ``policy_name`` on ``user``.

        :raises PolicyError: the document is not a valid IAM policy (kdiag.policy.validate).
        """
        from kdiag import policy

        found = self.user(user)
        _check_name("policy", policy_name, _POLICY_NAME)
        policy.validate(document)
        text = document if isinstance(document, str) else json.dumps(document)
        with self._write() as session:
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

    def user_policies(self, user: User | str) -> list[str]:
        """The user's inline policy documents (JSON text), in name order."""
        return list(self.get_user_policies(user).values())

    def policies_of(self, account_id: str, user_name: str) -> list[str]:
        """The inline policy documents of ``user_name`` in ``account_id`` (one query; an
        unknown user has none).  This is what authorization reads on every request."""
        with self._engine.connect() as conn:
            rows = conn.scalars(
                select(UserPolicyRow.document)
                .join(UserRow, UserPolicyRow.user_id == UserRow.id)
                .where(UserRow.account_id == account_id, UserRow.name == user_name)
                .order_by(UserPolicyRow.name)
            )
            return list(rows)

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

    # --- instances -------------------------------------------------------------------------

    @staticmethod
    def _instance(row: Any) -> Instance:  # an InstanceRow or a Core row of its table
        return Instance(
            id=row.id,
            account_id=row.account_id,
            region=row.region,
            availability_zone=row.availability_zone,
            backend=row.backend,
            target=row.target,
            arch=row.arch,
            state=row.state,
            tags=row.tags,
            created_at=row.created_at,
        )

    def add_instance(
        self,
        *,
        backend: str,
        target: Mapping[str, Any],
        instance_id: str | None = None,
        region: str = "us-east-1",
        availability_zone: str | None = None,
        arch: str = "x86_64",
        state: str = "running",
        tags: Mapping[str, str] | None = None,
        account_id: str | None = None,
    ) -> Instance:
        """Register a machine kdiag can interrupt.

        :param backend: the backend's registry name (``qmp``, ``fake``, ...).
        :param target: the backend's settings, JSON-serialisable.
        :raises InvalidInstanceIDMalformed: ``instance_id`` is not ``i-`` + 8/17 hex.
        :raises EntityAlreadyExists: the id is taken.
        """
        iid = ids.check_instance_id(instance_id) if instance_id else ids.new_instance_id()
        if not _REGION.fullmatch(region):
            raise ConfigError(f"invalid region {region!r} (expected e.g. us-east-1)")
        az = availability_zone or f"{region}a"
        if not az.startswith(region):
            raise ConfigError(f"availability zone {az!r} is not in region {region!r}")
        if state not in INSTANCE_STATES:
            raise ConfigError(f"invalid state {state!r}: one of {', '.join(INSTANCE_STATES)}")
        clean_tags = dict(tags or {})
        for key in clean_tags:
            if not key or len(key) > _TAG_KEY_MAX or key.startswith("aws:"):
                raise ConfigError(f"invalid tag key {key!r}")
        try:
            target_json = json.loads(json.dumps(dict(target)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backend target settings must be JSON: {exc}") from exc
        row = InstanceRow(
            id=iid,
            account_id=self._account_id(account_id),
            region=region,
            availability_zone=az,
            backend=backend,
            target=target_json,
            arch=normalize_arch(arch),
            state=state,
            tags=clean_tags,
            created_at=_now(),
        )
        try:
            with self._write() as session:
                session.add(row)
        except IntegrityError as exc:
            raise EntityAlreadyExists(f"instance {iid} already exists") from exc
        return self._instance(row)

    def get_instance(self, instance_id: str) -> Instance | None:
        with self._engine.connect() as conn:  # Core: on every request
            row = conn.execute(
                select(InstanceRow.__table__).where(InstanceRow.id == instance_id)
            ).first()
        return None if row is None else self._instance(row)

    def list_instances(
        self,
        ids: Iterable[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        *,
        account_id: str | None = None,
        region: str | None = None,
    ) -> list[Instance]:
        """Instances, optionally by id and by EC2-style filters.

        Filters (values may use ``*`` and ``?``; a filter matches when any value does):
        ``instance-id``, ``instance-state-name``, ``availability-zone``, ``architecture``,
        ``tag:<key>``, ``tag-key``, ``tag-value``, ``backend``.
        """
        with self._read() as session:
            query = select(InstanceRow).order_by(InstanceRow.id)
            if ids is not None:
                query = query.where(InstanceRow.id.in_(list(ids)))
            if account_id is not None:
                query = query.where(InstanceRow.account_id == account_id)
            if region is not None:
                query = query.where(InstanceRow.region == region)
            found = [self._instance(r) for r in session.scalars(query)]
        for name, values in (filters or {}).items():
            found = [i for i in found if _filter_matches(i, name, values)]
        return found

    def set_instance_state(self, instance_id: str, state: str) -> Instance:
        if state not in INSTANCE_STATES:
            raise ConfigError(f"invalid state {state!r}: one of {', '.join(INSTANCE_STATES)}")
        with self._write() as session:
            row = session.get(InstanceRow, instance_id)
            if row is None:
                raise NoSuchEntity(f"no instance {instance_id}")
            row.state = state
            return self._instance(row)

    def remove_instance(self, instance_id: str) -> None:
        with self._write() as session:
            result = session.execute(delete(InstanceRow).where(InstanceRow.id == instance_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
                raise NoSuchEntity(f"no instance {instance_id}")

    # --- audit log ---------------------------------------------------------------------------

    @staticmethod
    def _audit(row: AuditRow) -> AuditEntry:
        return AuditEntry(
            id=row.id,
            time=row.time,
            request_id=row.request_id,
            principal=row.principal,
            access_key_id=row.access_key_id,
            source_ip=row.source_ip,
            action=row.action,
            instance_id=row.instance_id,
            region=row.region,
            decision=row.decision,
            reason=row.reason,
            outcome=row.outcome,
            error_code=row.error_code,
            message=row.message,
            latency_ms=row.latency_ms,
            dry_run=row.dry_run,
            backend=row.backend,
        )

    def record_audit(self, entry: AuditEntry) -> int:
        """Store one audit row (committed when this returns); its id."""
        values = {
            "time": entry.time,
            "request_id": entry.request_id,
            "principal": entry.principal,
            "access_key_id": entry.access_key_id,
            "source_ip": entry.source_ip,
            "action": entry.action,
            "instance_id": entry.instance_id[:80] if entry.instance_id else entry.instance_id,
            "region": entry.region,
            "decision": entry.decision,
            "reason": entry.reason,
            "outcome": entry.outcome,
            "error_code": entry.error_code,
            "message": entry.message,
            "latency_ms": entry.latency_ms,
            "dry_run": entry.dry_run,
            "backend": entry.backend,
        }
        with self._writer.begin() as conn:
            return int(
                conn.execute(insert(AuditRow).values(values).returning(AuditRow.id)).scalar_one()
            )

    def start_audit(self, entry: AuditEntry) -> int:
        """Record the intent (outcome ``pending``), committed before anything is sent."""
        from dataclasses import replace

        return self.record_audit(replace(entry, outcome="pending"))

    def finish_audit(
        self,
        audit_id: int,
        *,
        outcome: str,
        error_code: str | None = None,
        message: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Complete a row that :meth:`start_audit` opened."""
        with self._writer.begin() as conn:
            result = conn.execute(
                update(AuditRow)
                .where(AuditRow.id == audit_id)
                .values(
                    outcome=outcome, error_code=error_code, message=message, latency_ms=latency_ms
                )
            )
            if result.rowcount == 0:
                raise NoSuchEntity(f"no audit row {audit_id}")

    def audit_rows(
        self,
        since: dt.datetime | None = None,
        limit: int | None = None,
        *,
        instance_id: str | None = None,
        request_id: str | None = None,
    ) -> list[AuditEntry]:
        """Audit rows, oldest first; ``limit`` keeps the newest ``limit`` of them."""
        with self._read() as session:
            query = select(AuditRow).order_by(AuditRow.id.desc())
            if since is not None:
                query = query.where(AuditRow.time >= since)
            if instance_id is not None:
                query = query.where(AuditRow.instance_id == instance_id)
            if request_id is not None:
                query = query.where(AuditRow.request_id == request_id)
            if limit is not None:
                query = query.limit(limit)
            rows = [self._audit(r) for r in session.scalars(query)]
        rows.reverse()
        return rows


def _filter_matches(instance: Instance, name: str, values: Sequence[str]) -> bool:
    if name.startswith("tag:"):
        key = name[4:]
        if key not in instance.tags:
            return False
        candidates = [instance.tags[key]]
    elif name == "tag-key":
        candidates = list(instance.tags)
    elif name == "tag-value":
        candidates = list(instance.tags.values())
    else:
        fields = {
            "instance-id": instance.id,
            "instance-state-name": instance.state,
            "availability-zone": instance.availability_zone,
            "architecture": instance.arch,
            "backend": instance.backend,
            "region": instance.region,
        }
        if name not in fields:
            raise ConfigError(f"unsupported filter {name!r}")
        candidates = [fields[name]]
    patterns = [_wildcard(v) for v in values]
    return any(p.fullmatch(c) for p in patterns for c in candidates)
