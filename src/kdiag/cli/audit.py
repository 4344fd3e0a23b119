"""``kdiag audit``: the audit log, every SendDiagnosticInterrupt whatever its fate."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer

from kdiag.cli._store import DbOption, JsonOption, open_store

__all__ = ("parse_since", "register")

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: an ISO 8601 time (UTC when no zone is given) or an age: 30m, 2h, 7d."""
    from kdiag.errors import ConfigError

    text = value.strip()
    match = _RELATIVE.fullmatch(text)
    if match:
        delta = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or dt.datetime.now(dt.UTC)) - delta
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"--since takes an ISO 8601 time or an age like 30m, 2h, 7d; not {value!r}"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def audit(
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time, or an age: 30m, 2h, 7d.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the newest N rows.")
    ] = None,
    instance_id: Annotated[str | None, typer.Option("--instance", metavar="INSTANCE_ID")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show the audit log, oldest first."""
    from kdiag.cli._output import print_json

    when = parse_since(since) if since else None
    with open_store(db) as store:
        rows = store.audit_rows(since=when, limit=limit, instance_id=instance_id)
    if json_out:
        print_json({"AuditLog": [r.to_json() for r in rows]})
        return
    from rich.table import Table

    from kdiag.cli._output import stdout_console

    table = Table(title="audit log")
    table.add_column("time", no_wrap=True)
    for column in ("principal", "source"):
        table.add_column(column, overflow="fold")
    table.add_column("instance", no_wrap=True)
    for column in ("decision", "outcome", "error", "ms"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.time.strftime("%Y-%m-%d %H:%M:%S"),
            (row.principal or "-").rpartition(":")[2],
            row.source_ip or "-",
            row.instance_id or "-",
            row.decision or "-",
            row.outcome + (" (dry run)" if row.dry_run and row.outcome != "dry-run" else ""),
            row.error_code or "",
            "" if row.latency_ms is None else f"{row.latency_ms:.1f}",
        )
    stdout_console().print(table)


def register(root: typer.Typer) -> None:
    root.command("audit")(audit)
