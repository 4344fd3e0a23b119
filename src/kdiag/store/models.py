"""The ORM tables (SQLAlchemy 2 declarative).  Private to the store: queries turn rows into
:mod:`kdiag.store.records` before they leave it.

The schema itself is owned by the Alembic migrations in ``kdiag/store/migrations``; these
classes must describe the same tables (a test compares them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = (
    "AccessKeyRow",
    "AccountRow",
    "AuditRow",
    "Base",
    "DrillRow",
    "FleetHostRow",
    "FleetRunRow",
    "InstanceRow",
    "LedgerRow",
    "NamedCredentialsRow",
    "ThrottleBucketRow",
    "UserPolicyRow",
    "UserRow",
    "UtcDateTime",
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always handed back timezone-aware.

    SQLite keeps no zone, PostgreSQL's ``timestamptz`` does; both come back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_users_account_id_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AccessKeyRow(Base):
    __tablename__ = "access_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="Active")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class UserPolicyRow(Base):
    __tablename__ = "user_policies"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_user_policies_user_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    document: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class InstanceRow(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(19), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    region: Mapped[str] = mapped_column(String(32))
    availability_zone: Mapped[str] = mapped_column(String(40))
    backend: Mapped[str] = mapped_column(String(64))
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    arch: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str | None] = mapped_column(String(256))
    access_key_id: Mapped[str | None] = mapped_column(String(32))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(80), index=True)
    region: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    backend: Mapped[str | None] = mapped_column(String(64))


# --- drills (kdiag drill, issue 13; migration 0004) -------------------------------------------


class DrillRow(Base):
    """One fire drill: its verdict, diagnosis, timed steps and the dumps it found."""

    __tablename__ = "drills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[str] = mapped_column(String(19), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    verdict: Mapped[str] = mapped_column(String(8))
    diagnosis: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    steps: Mapped[list[Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    dump_path: Mapped[str | None] = mapped_column(Text)
    host_dump_path: Mapped[str | None] = mapped_column(Text)
    dump_id: Mapped[str | None] = mapped_column(String(80))


# --- named credentials (kdiag credentials, issue 12; migration 0007) ---------------------------


class NamedCredentialsRow(Base):
    """A BMC or API login a target names with ``"credentials": "NAME"``: the username in
    clear (``kdiag credentials list`` shows it), the password only Fernet-sealed."""

    __tablename__ = "named_credentials"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(256))
    password_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# --- console sessions (kdiag console, issue 15; migration 0006) ---------------------------


class ConsoleSessionRow(Base):
    """A signed-in browser: only the SHA-256 of its cookie's token is kept."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    user_name: Mapped[str] = mapped_column(String(64))
    access_key_id: Mapped[str] = mapped_column(String(32))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


# --- fleet (kdiag fleet, issue 14; migration 0005) -------------------------------------------


class FleetRunRow(Base):
    """One ``kdiag fleet`` run over an inventory (doctor, configure or drill)."""

    __tablename__ = "fleet_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    inventory: Mapped[str] = mapped_column(String(1024))
    limit_pattern: Mapped[str | None] = mapped_column(String(1024))
    purpose: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    hosts: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)


class FleetHostRow(Base):
    """One host's answer in a fleet run: its facts (collector JSON) and verdicts."""

    __tablename__ = "fleet_hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("fleet_runs.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    host: Mapped[str] = mapped_column(String(255), index=True)
    #: pass | fail | unreachable | error
    status: Mapped[str] = mapped_column(String(16))
    failing: Mapped[list[str]] = mapped_column(JSON)
    checks: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# --- serve hardening (issue 11): the replay ledger and the shared throttle buckets -----------


class LedgerRow(Base):
    """A signature the service accepted, kept until the signature itself expires, with the
    answer it got: a repeated signature is answered with it and does nothing again."""

    __tablename__ = "replay_ledger"
    __table_args__ = (
        Index("ix_replay_ledger_key_presigned", "access_key_id", "presigned", "expires_at"),
        Index("ix_replay_ledger_principal_presigned", "principal", "presigned", "expires_at"),
    )

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_key_id: Mapped[str] = mapped_column(String(32))
    principal: Mapped[str] = mapped_column(String(256))
    presigned: Mapped[bool] = mapped_column(Boolean)
    #: seconds since the epoch: when the signature stops being accepted (and the row may go)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    claimed_at: Mapped[float] = mapped_column(Float)
    request_id: Mapped[str] = mapped_column(String(64))
    #: None while the first request runs; then its HTTP status
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(64))
    #: the answer's body, zlib-compressed; None with a status: too large to keep (a read)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)


class ThrottleBucketRow(Base):
    """One token bucket (``RequestLimitExceeded``), shared by every replica of the service."""

    __tablename__ = "throttle_buckets"

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    #: the throttle clock's seconds when ``tokens`` was computed
    updated_at: Mapped[float] = mapped_column(Float)
    #: the request that took the last token (tells a taker whether it got one)
    granted_to: Mapped[str] = mapped_column(String(64))


# --- dump catalog (kdiag dumps, issue 13; migration 0003) ----------------------------------


class DumpRow(Base):
    """One crash dump per account, by content identity (kdiag.catalog.identity)."""

    __tablename__ = "dumps"
    __table_args__ = (
        UniqueConstraint("account_id", "identity", name="uq_dumps_account_id_identity"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    identity: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    crash_time: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    format: Mapped[str] = mapped_column(String(32))
    compression: Mapped[str] = mapped_column(String(32))
    arch: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    release: Mapped[str | None] = mapped_column(String(128))
    klass: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str | None] = mapped_column(Text)
    signature_id: Mapped[str | None] = mapped_column(String(32), index=True)
    complete: Mapped[bool] = mapped_column(Boolean)
    incomplete_reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    log_tail: Mapped[str] = mapped_column(Text)
    indexed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DumpPathRow(Base):
    """A file holding a dump (copies, renames, split-set members); one per account and path."""

    __tablename__ = "dump_paths"
    __table_args__ = (
        UniqueConstraint("account_id", "path_key", name="uq_dump_paths_account_id_path_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dump_id: Mapped[str] = mapped_column(ForeignKey("dumps.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    path_key: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    part: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    compression: Mapped[str | None] = mapped_column(String(16))
    device: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DumpRejectRow(Base):
    """A file a scan could not index, with the typed reason; one per account and path."""

    __tablename__ = "dump_rejects"
    __table_args__ = (
        UniqueConstraint("account_id", "path_key", name="uq_dump_rejects_account_id_path_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    path_key: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
