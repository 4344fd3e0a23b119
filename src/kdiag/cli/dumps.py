"""``kdiag dumps``: the dump catalog — scan, list, show, group (docs/dumps.md).

A thin layer over :mod:`kdiag.catalog`: parse, call, print. Listings take ``--output
json|text|table``, ``--query`` and ``--json`` like every kdiag listing.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kdiag.cli._output import (
    Column,
    JsonOption,
    OutputOption,
    QueryOption,
    emit,
    err_console,
    print_json,
)
from kdiag.cli._store import DbOption, open_store
from kdiag.cli.audit import parse_since

__all__ = ("register",)

EXIT_REJECTED = 5

app = typer.Typer(
    help="The dump catalog: index crash dumps by content, list them, group them by "
    "crash signature.",
    short_help="Index, list and group crash dumps.",
    no_args_is_help=True,
)


def _when(value: str | None) -> str:
    return "-" if value is None else value[:19].replace("T", " ")


def _size(value: int) -> str:
    from kdiag.vmcore.describe import format_memory  # noqa: PLC0415 - keeps --help light

    return format_memory(value)


DUMP_COLUMNS = (
    Column("id", "id"),
    Column("time", lambda r: _when(r["time"])),
    Column("host", "host"),
    Column("release", "release"),
    Column("class", "class"),
    Column("signature", "signature_id"),
    Column("size", lambda r: _size(r["size"])),
    Column("ok", lambda r: "yes" if r["complete"] else "INCOMPLETE"),
    Column("paths", "paths"),
)

GROUP_COLUMNS = (
    Column("signature", "signature_id"),
    Column("count", lambda r: str(r["count"])),
    Column("class", "class"),
    Column("first seen", lambda r: _when(r["first_seen"])),
    Column("last seen", lambda r: _when(r["last_seen"])),
    Column("hosts", "hosts"),
    Column("releases", "releases"),
    Column("title", lambda r: r["signature"].partition(" | ")[0], wrap=True),
)

REJECT_COLUMNS = (
    Column("path", "path"),
    Column("error", "code"),
    Column("reason", "message", wrap=True),
)


class _Progress:
    """A Rich bar on stderr while a scan runs, on a terminal only."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int, path: str) -> None:
        if not sys.stderr.isatty():
            return
        if self.bar is None:
            from rich.progress import Progress  # noqa: PLC0415 - Rich only on a terminal

            self.bar = Progress(console=err_console(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("indexing", total=total)
        # The last file is drawn for sure: a fast scan can end before the first refresh.
        self.bar.update(
            self.task, completed=done, description=Path(path).name[:40], refresh=done == total
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command("scan", short_help="Index the crash dumps under paths.")
def scan_cmd(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...",
            help="/var/crash-style trees or dump files; ssh://[user@]HOST[:port]/var/crash "
            "reads a remote tree in place over SFTP.",
        ),
    ],
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="NAME", help="The machine these dumps come from."),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Index crash dumps: /var/crash trees (kexec-tools' <host>-<date>/vmcore,
    kdump-tools' <YYYYMMDDHHMM>/dump.*) and loose files, of any format kdiag analyze
    reads. Each dump is read once, as triage reads it, and identified by content:
    rescanning adds nothing, renamed copies are one dump with several paths. Files that
    are not readable dumps are recorded with the reason; the scan goes on.

    Exit status 0, or 5 when a file was rejected.
    """
    from kdiag import catalog  # noqa: PLC0415 - SQLAlchemy and the reader: not on --help

    progress = _Progress()
    remote = [p for p in paths if p.startswith("ssh://")]
    local = [p for p in paths if not p.startswith("ssh://")]
    with open_store(db) as store:
        try:
            reports = [catalog.scan(store, local, host=host, progress=progress)] if local else []
            if remote:
                from kdiag.fleet.remote_scan import scan_remote  # noqa: PLC0415 - asyncssh

                reports += [scan_remote(store, u, host=host, progress=progress) for u in remote]
        finally:
            progress.close()
    report = catalog.ScanReport(
        tuple(o for r in reports for o in r.outcomes),
        sum(r.seconds for r in reports),
        sum(r.bytes_read for r in reports),
    )
    if json_out:
        print_json(report.to_json())
    else:
        for outcome in report.outcomes:
            if outcome.error is not None:
                line = f"rejected  {' '.join(outcome.paths)}: {outcome.error.message} "
                sys.stdout.write(line + f"({outcome.error.code})\n")
            elif outcome.entry is not None:
                sys.stdout.write(
                    f"{outcome.status:<9} {outcome.entry.id}  {' '.join(outcome.paths)}\n"
                )
        doc = report.to_json()
        rate = len(report.outcomes) / report.seconds if report.seconds > 0 else 0.0
        sys.stdout.write(
            f"{doc['scanned']} scanned: {doc['new']} new, {doc['matched']} matched a known "
            f"dump, {doc['unchanged']} unchanged, {doc['rejected']} rejected "
            f"({report.seconds:.2f} s, {rate:.1f}/s, {report.bytes_read} bytes read)\n"
        )
    if report.count("rejected"):
        raise typer.Exit(EXIT_REJECTED)


def _since(value: str | None) -> dt.datetime | None:
    return parse_since(value) if value else None


SinceOption = Annotated[
    str | None,
    typer.Option("--since", metavar="WHEN", help="ISO 8601 time, or an age: 30m, 2h, 7d."),
]


@app.command("list", short_help="List the dumps in the catalog.")
def list_cmd(
    *,
    since: SinceOption = None,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="List the files scans could not index instead.")
    ] = False,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the catalog's dumps, newest crash first (or, with --rejected, the files that
    could not be indexed and why)."""
    from kdiag import catalog  # noqa: PLC0415 - SQLAlchemy: not on --help

    when = _since(since)
    with open_store(db) as store:
        if rejected:
            bad = [r.to_json() for r in catalog.list_rejects(store)]
            emit({"Rejected": bad}, bad, REJECT_COLUMNS, output=output, query=query,
                 json_flag=json_out)  # fmt: skip
            return
        rows = [d.to_json() for d in catalog.list_dumps(store, since=when)]
    emit({"Dumps": rows}, rows, DUMP_COLUMNS, output=output, query=query, json_flag=json_out)


@app.command("show", short_help="Show one dump: summary, signature, log tail.")
def show_cmd(
    dump_id: Annotated[str, typer.Argument(metavar="ID", help="A dump id (dumps list).")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show a dump: the kdiag analyze summary (class, signature), every file that holds
    it, and the last lines of its kernel log."""
    from kdiag import catalog  # noqa: PLC0415 - SQLAlchemy: not on --help

    with open_store(db) as store:
        detail = catalog.show_dump(store, dump_id)
    if json_out:
        print_json(detail.to_json())
        return
    entry = detail.entry
    out = [f"DUMP {entry.id}  (identity {entry.identity[:16]})\n", detail.summary_text]
    out.append(f"{'HOST':>14}: {entry.host or '-'}\n")
    out.append(f"{'INDEXED':>14}: {_when(entry.to_json()['indexed_at'])} ({entry.source})\n")
    out.append("\nFILES:\n")
    for file in detail.files:
        packed = f", {file.compression}" if file.compression else ""
        out.append(f"  {file.path}  ({file.size} bytes{packed})\n")
    if detail.log_tail:
        out.append(f"\nLAST {len(detail.log_tail)} LOG LINES:\n")
        out.extend(line + "\n" for line in detail.log_tail)
    sys.stdout.write("".join(out))


@app.command("group", short_help="Group the dumps by crash signature.")
def group_cmd(
    *,
    since: SinceOption = None,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Group the dumps by crash signature, as ABRT Analytics groups kernel oopses: count,
    first and last seen, hosts, releases. Dumps with no signature are left out."""
    from kdiag import catalog  # noqa: PLC0415 - SQLAlchemy: not on --help

    with open_store(db) as store:
        groups = [g.to_json() for g in catalog.group_dumps(store, since=_since(since))]
    emit({"Groups": groups}, groups, GROUP_COLUMNS, output=output, query=query,
         json_flag=json_out)  # fmt: skip


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dumps")
