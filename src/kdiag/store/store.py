"""The Store: kdiag's accounts, users, keys, policies, instances and audit log.

Every method runs its own short transaction and returns plain frozen records
(:mod:`kdiag.store.records`); a Store is safe to share between threads.

>>> store = Store.open("sqlite:///:memory:")          # doctest: +SKIP
>>> alice = store.create_user("alice")                 # doctest: +SKIP
>>> key, secret = store.create_access_key("alice")     # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from kdiag.errors import ConfigError
from kdiag.paths import state_dir
from kdiag.store.audit import AuditLog
from kdiag.store.credentials import NamedCredentials
from kdiag.store.engine import create_store_engine, resolve_url, safe_url
from kdiag.store.identity import Identity
from kdiag.store.inventory import INSTANCE_STATES, Inventory
from kdiag.store.keyfile import KEY_FILE_NAME, SecretBox
from kdiag.store.ledger import Ledger
from kdiag.store.migrate import upgrade

__all__ = ("INSTANCE_STATES", "Store")

log = logging.getLogger("kdiag.store")


def _first_line(exc: Exception) -> str:
    """The driver's own reason, on one line: SQLAlchemy appends the statement and a
    "Background on this error" link, psycopg a hint on a second line."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class Store(Identity, Inventory, AuditLog, NamedCredentials, Ledger):
    """Access to kdiag's database.  Open with :meth:`open`; close with :meth:`close`."""

    _checkpoints: tuple[threading.Event, threading.Thread] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        key_file: str | os.PathLike[str] | None = None,
        checkpoint_every: float | None = None,
    ) -> Store:
        """Open (and migrate to the newest schema) the database at ``url``.

        :param url: a SQLAlchemy URL or a SQLite file path; default ``$KDIAG_DB``, else
            ``<state dir>/kdiag.db``.
        :param key_file: the Fernet key file for secret keys; default ``$KDIAG_KEY_FILE``,
            else ``<state dir>/kdiag.key`` (created mode 0600 on first use).
        :param checkpoint_every: SQLite file databases: checkpoint the WAL from a thread of
            the store's own every so many seconds, instead of inside whichever write
            crosses 1000 WAL pages (its copying and two fsyncs then land on a request).
            For long-running servers; ignored for PostgreSQL and in-memory databases.
        """
        resolved = resolve_url(url)
        background = (
            checkpoint_every is not None
            and resolved.get_backend_name() == "sqlite"
            and resolved.database not in (None, "", ":memory:")
        )
        engine = create_store_engine(resolved, autocheckpoint=not background)
        try:
            upgrade(engine)
        except ConfigError:
            engine.dispose()
            raise
        except Exception as exc:
            engine.dispose()
            raise ConfigError(
                f"cannot open the database {safe_url(resolved)}: {_first_line(exc)}"
            ) from exc
        key_path = Path(key_file or os.environ.get("KDIAG_KEY_FILE") or state_dir() / KEY_FILE_NAME)
        try:
            store = cls(engine, SecretBox.from_file(key_path))
        except BaseException:
            engine.dispose()
            raise
        if background:
            store._start_checkpoints(checkpoint_every or 1.0)
        return store

    def checkpoint(self) -> tuple[int, int] | None:
        """SQLite: copy the WAL into the database file now (``PRAGMA wal_checkpoint``,
        PASSIVE: it waits for no reader or writer); the WAL's frames and how many of them
        are now in the database.  ``None`` on PostgreSQL."""
        if self.dialect != "sqlite":
            return None
        raw = self._engine.raw_connection()  # not in a transaction: a checkpoint needs that
        try:
            cursor = raw.cursor()
            _busy, frames, done = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            cursor.close()
        finally:
            raw.close()
        return int(frames), int(done)

    def _start_checkpoints(self, interval: float) -> None:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    self.checkpoint()
                except Exception:  # keep trying: a stopped checkpointer lets the WAL grow
                    log.exception("WAL checkpoint failed")

        thread = threading.Thread(target=run, name="kdiag-checkpoint", daemon=True)
        thread.start()
        self._checkpoints = (stop, thread)

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return safe_url(self._engine.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def close(self) -> None:
        if self._checkpoints is not None:
            stop, thread = self._checkpoints
            stop.set()
            thread.join()
            self._checkpoints = None
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
