"""``kdiag configure``: render and apply the kdump configuration doctor asks for."""

from __future__ import annotations

import typer

__all__ = ("register",)


def register(app: typer.Typer) -> None:
    del app
