"""``kdiag doctor``: is this machine ready for the NMI to produce a crash dump?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ("register",)

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "n/a": "dim"}


def _print_table(report: Any, title: str) -> None:
    from rich.table import Table

    from kdiag.cli._output import stdout_console

    table = Table(title=title, show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("evidence", overflow="fold")
    table.add_column("fix", overflow="fold")
    for check in report.checks:
        style = _STYLE.get(check.status, "")
        table.add_row(check.id, f"[{style}]{check.status}[/]", check.evidence, check.fix)
    counts = {s: sum(1 for c in report.checks if c.status == s) for s in _STYLE}
    console = stdout_console()
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))


def doctor(
    *,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root", help="Read DIR/proc, DIR/sys and DIR/etc instead of the live system."
        ),
    ] = None,
    facts_file: Annotated[
        Path | None,
        typer.Option("--facts", help="Read the JSON printed by the collector (--print-collector)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    purpose: Annotated[
        str, typer.Option("--for", help="What must produce a dump: nmi, oops, hang or all.")
    ] = "nmi",
    windows_registry: Annotated[
        Path | None,
        typer.Option(
            "--windows-registry",
            help="Check an exported CrashControl key (reg export output) instead of Linux facts.",
        ),
    ] = None,
    print_collector: Annotated[
        bool,
        typer.Option(
            "--print-collector",
            help="Print the POSIX sh facts collector (run it anywhere, feed its JSON to --facts).",
        ),
    ] = False,
) -> None:
    """Check kdump readiness: every finding with its evidence and fix. Exit 1 on a failure."""
    from kdiag.cli._output import print_json
    from kdiag.errors import ConfigError

    if print_collector:
        from kdiag.readiness.facts import collector_source

        typer.echo(collector_source(), nl=False)
        return
    if windows_registry is not None:
        from kdiag.readiness.windows import check_registry

        report: Any = check_registry(windows_registry)
        title = f"Windows crash dump readiness: {windows_registry}"
    else:
        from kdiag.readiness import facts as facts_mod
        from kdiag.readiness.checks import run_checks

        if root is not None and facts_file is not None:
            raise ConfigError("--root and --facts exclude each other")
        if facts_file is not None:
            facts = facts_mod.load(facts_file)
        else:
            facts = facts_mod.read_root(root if root is not None else "/")
        report = run_checks(facts, purpose)
        source = str(facts_file or root or "this machine")
        title = f"kdump readiness ({source}, --for {purpose})"
    if json_out:
        print_json(report.to_json())
    else:
        _print_table(report, title)
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
