"""Shared by the admin command groups (iam, instances, audit): the ``--db`` option and
opening the store.  Heavy imports stay inside the functions."""

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
    from kdiag.store import Store

    return Store.open(db)
