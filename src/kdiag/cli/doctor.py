"""``kdiag doctor``: is this machine ready for the NMI to produce a crash dump?

The report is one line per check, its status and id, with the evidence and the fix on
indented lines below.  On a terminal the status is coloured and long lines wrap at spaces
only (never inside an id, a path or a value); through a pipe the same layout is printed
unwrapped and uncoloured, so ``grep`` sees each finding on its own lines.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from kdiag.errors import ConfigError
from kdiag.readiness.registry import TRIGGERS

__all__ = ("format_report", "register")

_COLOURS = {"fail": "red", "warn": "yellow", "pass": "green", "n/a": "bright_black"}
_INDENT = " " * 6
_OUTPUTS = ("text", "json")


def _lines(text: str, width: int | None) -> list[str]:
    if width is None:
        return [_INDENT + text]
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=_INDENT,
        subsequent_indent=_INDENT + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    ) or [_INDENT]


def format_report(
    title: str, checks: Iterable[Any], *, width: int | None = None, colour: bool = False
) -> str:
    """The text report: ``title``, then per check ``STATUS ID`` with the evidence and
    ``fix: ...`` indented below, then the counts.  ``width`` wraps at spaces (a terminal);
    None prints every line whole (a pipe)."""
    out = [title, ""]
    counts: dict[str, int] = dict.fromkeys(_COLOURS, 0)
    for check in checks:
        counts[check.status] = counts.get(check.status, 0) + 1
        status = f"{check.status:<5}"
        if colour:
            status = typer.style(status, fg=_COLOURS.get(check.status), bold=check.status == "fail")
        out.append(f"{status} {check.id}")
        if check.evidence:
            out += _lines(check.evidence, width)
        if check.fix:
            out += _lines(f"fix: {check.fix}", width)
    out += ["", ", ".join(f"{n} {s}" for s, n in counts.items() if n)]
    return "\n".join(out) + "\n"


def _print_text(report: Any, title: str) -> None:
    tty = sys.stdout.isatty()
    width = max(40, shutil.get_terminal_size().columns) if tty else None
    sys.stdout.write(format_report(title, report.checks, width=width, colour=tty))


def _list_checks() -> None:
    from kdiag.readiness.checks import REGISTRY  # noqa: PLC0415 - not for --help

    for spec in REGISTRY.specs:
        serves = "all" if spec.for_ == ("nmi", "oops", "hang") else ", ".join(spec.for_)
        typer.echo(f"{spec.id}  (needs {spec.needs}; --for {serves})")
        typer.echo(f"{_INDENT}pass: {spec.passes.replace('`', '')}")
        typer.echo(f"{_INDENT}otherwise: {spec.otherwise.replace('`', '')}")


def doctor(
    *,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Judge the image or chroot at DIR (its /etc; its /proc and /sys when there).",
        ),
    ] = None,
    facts_file: Annotated[
        Path | None,
        typer.Option(
            "--facts",
            metavar="FILE",
            help="Judge FILE, the JSON that the collector script printed.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --output json.")] = False,
    output: Annotated[
        str | None,
        typer.Option("--output", metavar="FORMAT", help="text (the default) or json."),
    ] = None,
    purpose: Annotated[
        str,
        typer.Option(
            "--for",
            metavar="TRIGGER",
            help=f"What must produce a dump: {', '.join(TRIGGERS)} or all.",
        ),
    ] = "nmi",
    windows_registry: Annotated[
        Path | None,
        typer.Option(
            "--windows-registry",
            metavar="FILE",
            help="Check an exported CrashControl key (reg export output) instead of Linux facts.",
        ),
    ] = None,
    print_collector: Annotated[
        bool,
        typer.Option(
            "--print-collector",
            help="Print the collector: a POSIX sh script to run anywhere; give its JSON to "
            "--facts.",
        ),
    ] = False,
    list_checks: Annotated[
        bool, typer.Option("--list-checks", help="List every check and when it passes.")
    ] = False,
) -> None:
    """Check kdump readiness: every finding with its evidence and fix. Exit 1 on a failure."""
    from kdiag.cli._output import print_json  # noqa: PLC0415 - not for --help

    if output is not None and output not in _OUTPUTS:
        raise ConfigError(f"--output must be one of {', '.join(_OUTPUTS)}, not {output!r}")
    if print_collector:
        from kdiag.readiness.facts import collector_source  # noqa: PLC0415 - not for --help

        typer.echo(collector_source(), nl=False)
        return
    if list_checks:
        _list_checks()
        return
    report, title = _report(root, facts_file, windows_registry, purpose)
    if json_out or output == "json":
        print_json(report.to_json())
    else:
        _print_text(report, title)
    if report.failed:
        raise typer.Exit(1)


def _report(
    root: Path | None, facts_file: Path | None, windows_registry: Path | None, purpose: str
) -> tuple[Any, str]:
    if sum(x is not None for x in (root, facts_file, windows_registry)) > 1:
        raise ConfigError("--root, --facts and --windows-registry exclude each other")
    if windows_registry is not None:
        from kdiag.readiness.windows import check_registry  # noqa: PLC0415 - not for --help

        return check_registry(
            windows_registry
        ), f"Windows crash dump readiness of {windows_registry}"
    from kdiag.readiness import facts as facts_mod  # noqa: PLC0415 - not for --help
    from kdiag.readiness.checks import run_checks  # noqa: PLC0415 - not for --help

    if facts_file is not None:
        facts = facts_mod.load(facts_file)
    else:
        facts = facts_mod.read_root(root if root is not None else "/")
    source = str(facts_file or root or "this machine")
    if not facts.booted:
        source += ", an offline image: runtime checks are n/a"
    return run_checks(facts, purpose), f"kdump readiness of {source} (--for {purpose})"


def register(app: typer.Typer) -> None:
    app.command("doctor", short_help="Check that a freeze would give a crash dump.")(doctor)
