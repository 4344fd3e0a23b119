"""The Store: kdiag's accounts, users, keys, policies, instances and audit log.

Every method runs its own short transaction and returns plain frozen records
(:mod:`kdiag.store.records`); a Store is safe to share between threads.

>>> store = Store.open("sqlite:///:memory:")          # doctest: +SKIP
>>> alice = store.create_user("alice")                 # doctest: +SKIP
>>> key, secret = store.create_access_key("alice")     # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from kdiag.errors import ConfigError
from kdiag.paths import state_dir
from kdiag.store.audit import AuditLog
from kdiag.store.engine import create_store_engine, resolve_url, safe_url
from kdiag.store.identity import Identity
from kdiag.store.inventory import INSTANCE_STATES, Inventory
from kdiag.store.keyfile import KEY_FILE_NAME, SecretBox
from kdiag.store.migrate import upgrade

__all__ = ("INSTANCE_STATES", "Store")


class Store(Identity, Inventory, AuditLog):
    """Access to kdiag's database.  Open with :meth:`open`; close with :meth:`close`."""

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
