"""Run the store's Alembic migrations from code (``Store.open`` calls :func:`upgrade`).

The migration scripts ship inside the package (``kdiag/store/migrations``), so an installed
kdiag needs no ``alembic.ini``.  Concurrent openers are serialised: PostgreSQL with a
transaction-scoped advisory lock, SQLite with an exclusive lock on a file beside the database.

Alembic's own INFO records (plugin set-up, "Context impl", one per step) are left to the
application's logging configuration; kdiag logs one line of its own, on ``kdiag.store``, when a
migration really runs (``kdiag serve`` shows it, library callers see it at INFO).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

__all__ = ("HEAD", "MIGRATIONS", "current_revision", "downgrade", "upgrade")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0007"
_PG_LOCK_KEY = 0x6B64696167  # "kdiag"

log = logging.getLogger("kdiag.store")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Bring the database up to ``revision`` (default: the newest)."""
    before = current_revision(engine)
    if revision == "head" and before == HEAD:
        return
    _run(engine, "upgrade", revision)
    log.info(
        "database %s: schema %s -> %s",
        engine.url.render_as_string(hide_password=True),
        before or "empty",
        revision if revision != "head" else HEAD,
    )


def downgrade(engine: Engine, *, revision: str = "base") -> None:
    """Take the database down to ``revision`` (``base``: no kdiag tables at all)."""
    _run(engine, "downgrade", revision)
    log.info(
        "database %s: schema down to %s", engine.url.render_as_string(hide_password=True), revision
    )


def _run(engine: Engine, direction: str, revision: str) -> None:
    cfg = _config()
    lock: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        lock = _file_lock(Path(database + ".migrate-lock"))
    with lock, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)
