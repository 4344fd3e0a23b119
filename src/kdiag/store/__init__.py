"""The store: accounts, users, access keys, inline policies, instances and the audit log.

SQLAlchemy 2 with the Alembic migrations shipped in this package, run on :meth:`Store.open`.
SQLite (WAL) in the state directory by default; PostgreSQL by URL
(``postgresql+psycopg://…``, ``--db`` or ``$KDIAG_DB``).  The API hands out frozen
records, never ORM objects.
"""

from kdiag.store.engine import resolve_url, safe_url
from kdiag.store.ids import check_instance_id, new_instance_id
from kdiag.store.records import AccessKey, Account, AuditEntry, Instance, User
from kdiag.store.store import INSTANCE_STATES, Store

__all__ = (
    "INSTANCE_STATES",
    "AccessKey",
    "Account",
    "AuditEntry",
    "Instance",
    "Store",
    "User",
    "check_instance_id",
    "new_instance_id",
    "resolve_url",
    "safe_url",
)
