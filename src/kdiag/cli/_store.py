"""Shared by the admin command groups (iam, instances, audit): the ``--db`` option and
opening the store.  The store is imported only when a command opens it: ``kdiag --help``
imports every command module and must not pay for SQLAlchemy and Alembic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from kdiag.store import Store

__all__ = ("DbOption", "open_store")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Database URL (sqlite:///PATH or postgresql+psycopg://...); "
        "default $KDIAG_DB, else kdiag.db in the state directory.",
    ),
]


def open_store(db: str | None) -> Store:
    """Open (and migrate) the store at ``db``."""
    from kdiag.store import Store  # noqa: PLC0415 - SQLAlchemy + Alembic: 0.3-0.8 s, not on --help

    return Store.open(db)
