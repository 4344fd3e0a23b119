"""Database URLs and engines: SQLite (WAL, busy timeout) by default, PostgreSQL by URL.

``resolve_url(None)`` is ``$KDIAG_DB`` when set, else ``sqlite:///<state_dir>/kdiag.db``.
A bare path is taken as a SQLite file.  PostgreSQL URLs use psycopg 3:
``postgresql+psycopg://user@127.0.0.1:5432/kdiag`` (``postgresql://`` is accepted too).

SQLite runs every write transaction as ``BEGIN IMMEDIATE``, so two writers queue on the
busy timeout instead of failing when a read lock cannot be upgraded.

Durability on SQLite: WAL with ``synchronous=NORMAL`` by default, so a commit survives the
process being killed but not a power loss (the WAL is not fsynced at each commit).  A
transaction run with the ``kdiag_durable`` execution option commits with
``synchronous=FULL``: the WAL is fsynced before the commit returns, and because the WAL is
append-only that also makes every earlier commit durable.  The store uses it for the audit
intent that must be on disk before an NMI goes out (one fsync per NMI, not per write).
PostgreSQL commits durably by default (``synchronous_commit=on``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from kdiag.errors import ConfigError
from kdiag.paths import state_dir

__all__ = (
    "BUSY_TIMEOUT_MS",
    "DB_FILE_NAME",
    "DURABLE",
    "WRITE",
    "create_store_engine",
    "resolve_url",
    "safe_url",
)

DB_FILE_NAME = "kdiag.db"
BUSY_TIMEOUT_MS = 10_000
WRITE = "kdiag_write"  # execution option: a write transaction (BEGIN IMMEDIATE on SQLite)
DURABLE = "kdiag_durable"  # execution option: a write fsynced before its commit returns


def resolve_url(url: str | None = None) -> URL:
    """The database URL to use: ``url``, else ``$KDIAG_DB``, else SQLite in the state dir."""
    raw = url or os.environ.get("KDIAG_DB") or ""
    if not raw:
        return make_url(f"sqlite:///{state_dir() / DB_FILE_NAME}")
    if "://" not in raw:
        return make_url(f"sqlite:///{Path(raw).expanduser().resolve()}")
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {safe_url(raw)}") from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, fit for messages and logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def _create_file(path: Path) -> None:
    """Create the SQLite file (mode 0600) if it is not there; its directory must be.

    A mistyped ``--db`` path must not quietly start an empty database somewhere new; only
    the state directory (the default location) is created, by :func:`kdiag.paths.state_dir`.
    """
    if path.is_dir():
        raise ConfigError(f"the database path {path} is a directory, not a SQLite file")
    if not path.parent.is_dir() and path.parent.resolve() != state_dir().resolve():
        raise ConfigError(
            f"cannot create the database {path}: directory {path.parent} does not exist"
        )
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ConfigError(f"cannot create the database {path}: {exc.strerror}") from exc


def _sqlite_engine(url: URL, *, autocheckpoint: bool) -> Engine:
    database = url.database
    if database and database != ":memory:":
        _create_file(Path(database))
    if not database or database == ":memory:":
        # One in-memory database shared by every thread (tests, examples).
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below choose BEGIN or BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:  # someone else checkpoints (Store.open(checkpoint_every=...))
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        durable = options.get(DURABLE, False)
        immediate = durable or options.get(WRITE, False)
        # Only writes care; set outside the transaction, and only when it changes
        # (conn.info belongs to the DBAPI connection, so it follows it through the pool).
        synchronous = "FULL" if durable else "NORMAL"
        if immediate and conn.info.get("synchronous", "NORMAL") != synchronous:
            conn.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
            conn.info["synchronous"] = synchronous
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_store_engine(url: URL, *, autocheckpoint: bool = True) -> Engine:
    """An engine for ``url`` set up the way the store needs it.

    :param autocheckpoint: SQLite: let a committing connection checkpoint the WAL when it
        passes 1000 pages (SQLite's default).  ``False`` leaves it to the caller, who then
        must checkpoint (a long-running server does it from a thread of its own).
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, autocheckpoint=autocheckpoint)
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the {url.get_backend_name()} driver is not installed: pip install 'kdiag[postgres]'"
        ) from exc
