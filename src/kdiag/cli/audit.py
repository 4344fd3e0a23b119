"""``kdiag audit``: the audit log, every SendDiagnosticInterrupt whatever its fate."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import typer

from kdiag.cli._output import Column, JsonOption, OutputOption, QueryOption, emit
from kdiag.cli._store import DbOption, open_store
from kdiag.errors import ConfigError

__all__ = ("COLUMNS", "parse_since", "register")

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: an ISO 8601 time (UTC when no zone is given) or an age: 30m, 2h, 7d."""
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


def _outcome(row: dict[str, Any]) -> str:
    dry = row["dry_run"] and row["outcome"] != "dry-run"
    return str(row["outcome"]) + (" (dry run)" if dry else "")


def _latency(row: dict[str, Any]) -> str | None:
    return None if row["latency_ms"] is None else f"{row['latency_ms']:.1f}"


COLUMNS = (
    Column("id", lambda r: str(r["id"])),  # the "audit row N" DeliveryUnconfirmed names
    Column("time", lambda r: r["time"][:19] + "Z"),
    Column("principal", lambda r: (r["principal"] or "-").rpartition(":")[2]),
    Column("source", "source_ip"),
    Column("instance", "instance_id"),
    Column("decision", "decision"),
    Column("outcome", _outcome),
    Column("error", "error_code"),
    Column("ms", _latency),
)


def audit(
    *,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="ISO 8601 time, or an age: 30m, 2h, 7d."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", min=1, help="Only the newest N rows.")
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option("--instance", metavar="INSTANCE_ID", help="Only rows for this instance."),
    ] = None,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show the audit log, oldest first: every request, its outcome.

    Outcomes: sent, dry-run, denied, rejected, failed (nothing was sent), pending (in
    flight) and unknown (the NMI may have been sent: delivery unconfirmed; check the guest).
    """
    from kdiag.store.ids import check_instance_id  # noqa: PLC0415 - SQLAlchemy, not on --help

    when = parse_since(since) if since else None
    if instance_id is not None:
        check_instance_id(instance_id)  # a guest's name finds nothing: say so
    with open_store(db) as store:
        rows = [
            r.to_json() for r in store.audit_rows(since=when, limit=limit, instance_id=instance_id)
        ]
    document = {"AuditLog": rows}
    emit(document, rows, COLUMNS, output=output, query=query, json_flag=json_out)


def register(root: typer.Typer) -> None:
    root.command("audit")(audit)
