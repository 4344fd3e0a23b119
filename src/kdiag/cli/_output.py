"""Output for people and for pipes, the way the aws CLI does it.

Every listing command takes ``--output json|text|table`` (``-o``) and ``--query JMESPATH``:

* ``json``: the command's JSON document (what ``--json`` has always printed; ``--json``
  stays as an alias of ``--output json``).
* ``text``: one record per line, fields separated by tabs, no header; the default when
  stdout is not a terminal, so ``kdiag audit | grep UnauthorizedOperation`` finds rows.
* ``table``: aligned columns under a header; the default on a terminal.  Ids, paths and
  numbers are never cut or folded: only columns marked ``wrap`` (free text) fold, at word
  boundaries, and if the line still does not fit it runs long.

``KDIAG_OUTPUT`` sets the default format (as ``AWS_DEFAULT_OUTPUT`` does for aws).
``--query`` is applied to the JSON document first, as the aws CLI does; its result is then
printed in the chosen format (a list of records one per line, a list of values on one line
for ``text``).  An empty field is ``-`` in a listing's text and table; in a ``--query``
result JSON null prints as ``None`` and booleans as ``True``/``False``, as aws prints them.

A command declares its columns once and hands over its document::

    from kdiag.cli._output import Column, JsonOption, OutputOption, QueryOption, emit

    COLUMNS = (
        Column("instance", "InstanceId"),                  # a key of each record ...
        Column("tags", lambda r: sorted(r["Tags"]), wrap=True),  # ... or a function of it
    )

    def list_cmd(output: OutputOption = None, query: QueryOption = None,
                 json_out: JsonOption = False) -> None:
        document = {"Instances": [...]}
        emit(document, document["Instances"], COLUMNS,
             output=output, query=query, json_flag=json_out)

``layout=`` replaces the table with a command's own people-facing layout (one line per
result and details indented below, say) while text, json and ``--query`` stay the same.
A column's value may be a list of strings: one per line in a table cell, joined by commas in
``text``.  :func:`emit_record` does the same for a single object (``lab status``): a table
of one field per line, and one ``text`` line.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from kdiag.errors import ConfigError

__all__ = (
    "Column",
    "JsonOption",
    "OutputFormat",
    "OutputOption",
    "QueryOption",
    "emit",
    "emit_record",
    "err_console",
    "print_json",
    "render_table",
    "resolve_format",
    "stdout_console",
)


class OutputFormat(enum.StrEnum):
    """The three output formats of the aws CLI."""

    json = "json"
    text = "text"
    table = "table"


OutputOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        case_sensitive=False,
        help="json, text or table (default: $KDIAG_OUTPUT, else table on a terminal and "
        "tab-separated text in a pipe).",
    ),
]
QueryOption = Annotated[
    str | None,
    typer.Option(
        "--query",
        metavar="JMESPATH",
        help="A JMESPath expression applied to the JSON document before output.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
"""``--json``: where a command has ``--output``, the same as ``--output json``."""

Cell = str | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a listing.

    :param header: the table header (printed upper-case).
    :param value: the key of the record, or a function of the record giving a string, a
        list of strings (several lines in a table) or ``None`` (shown as ``-``).
    :param wrap: free text that may fold at word boundaries to fit the terminal; ids and
        paths never set this.
    """

    header: str
    value: str | Callable[[Any], Cell]
    wrap: bool = False

    def cell(self, record: Any) -> Cell:
        if callable(self.value):
            return self.value(record)
        found = record.get(self.value) if isinstance(record, dict) else None
        if isinstance(found, list) and not any(isinstance(x, (dict, list)) for x in found):
            return [_scalar(x) for x in found]
        return None if found is None else _scalar(found)


def print_json(obj: Any) -> None:
    """Write one JSON document to stdout, keys in a stable order, newline-terminated."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str))
    sys.stdout.write("\n")


def stdout_console() -> Any:
    """A Rich console on stdout (imported lazily: Rich costs start-up time)."""
    from rich.console import Console  # noqa: PLC0415 - Rich costs ~40 ms of start-up

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Any:
    """A Rich console on stderr, for progress bars and notes that must not pollute stdout."""
    from rich.console import Console  # noqa: PLC0415 - Rich costs ~40 ms of start-up

    return Console(stderr=True, highlight=False)


def resolve_format(output: OutputFormat | str | None, json_flag: bool = False) -> OutputFormat:
    """The format to print: ``--json``, else ``--output``, else ``$KDIAG_OUTPUT``, else
    ``table`` on a terminal and ``text`` in a pipe.

    :raises typer.BadParameter: ``--json`` together with another ``--output``.
    :raises kdiag.errors.ConfigError: ``$KDIAG_OUTPUT`` names no format.
    """
    if output is not None:
        chosen = OutputFormat(output)
        if json_flag and chosen is not OutputFormat.json:
            raise typer.BadParameter(
                f"--json contradicts --output {chosen.value}", param_hint="'--json'"
            )
        return chosen
    if json_flag:
        return OutputFormat.json
    env = os.environ.get("KDIAG_OUTPUT", "").strip().lower()
    if env:
        try:
            return OutputFormat(env)
        except ValueError:
            raise ConfigError(f"KDIAG_OUTPUT must be json, text or table, not {env!r}") from None
    return OutputFormat.table if sys.stdout.isatty() else OutputFormat.text


def _apply_query(document: Any, query: str) -> Any:
    import jmespath  # noqa: PLC0415 - 10-30 ms of start-up, paid only with --query

    try:
        return jmespath.search(query, document)
    except jmespath.exceptions.JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise typer.BadParameter(message, param_hint="'--query'") from exc


# ---------------------------------------------------------------------------- cells


def _scalar(value: Any) -> str:
    """A JSON value as the aws CLI's text output shows it (``None``, ``True``, 1.5, compact
    JSON for nested values)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _text_cell(cell: Cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, str):
        return _one_line(cell)
    return ",".join(_one_line(part) for part in cell) or "-"


def _table_lines(cell: Cell) -> list[str]:
    if cell is None:
        return ["-"]
    if isinstance(cell, str):
        return cell.splitlines() or [""]
    return [line for part in cell for line in (part.splitlines() or [""])] or ["-"]


# ---------------------------------------------------------------------------- tables


def _terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def _fit(natural: list[int], floor: list[int], wrap: list[bool], width: int) -> list[int]:
    """Column widths: natural widths, with the wrap columns narrowed (never below their
    longest word) until the row fits ``width``, if it can."""
    widths = list(natural)
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        candidates = [i for i, w in enumerate(wrap) if w and widths[i] > floor[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def render_table(
    headers: Sequence[str] | None,
    rows: Sequence[Sequence[Cell]],
    wrap: Sequence[bool] | None = None,
    width: int | None = None,
    *,
    upper: bool = True,
) -> str:
    """Aligned columns, two spaces apart, under a header (upper-case unless ``upper`` is
    false; none when ``headers`` is ``None``).  Only ``wrap`` columns fold, at spaces, to fit
    ``width`` (default: the terminal's); nothing is cut, and a row that cannot fit runs long."""
    count = len(headers) if headers is not None else max((len(r) for r in rows), default=0)
    wraps = list(wrap) if wrap is not None else [False] * count
    cells = [[_table_lines(c) for c in row] + [[""]] * (count - len(row)) for row in rows]
    head = [h.upper() if upper else h for h in headers] if headers is not None else None
    natural = [
        max([len(head[i]) if head else 0] + [len(line) for row in cells for line in row[i]])
        for i in range(count)
    ]
    floor = [
        max(
            [len(head[i]) if head else 0]
            + [len(word) for row in cells for line in row[i] for word in line.split()]
        )
        for i in range(count)
    ]
    widths = _fit(natural, floor, wraps, width or _terminal_width())
    out: list[str] = []

    def emit_row(columns: list[list[str]]) -> None:
        folded = [
            [
                part
                for line in col
                for part in (
                    textwrap.wrap(line, widths[i], break_long_words=False, break_on_hyphens=False)
                    or [""]
                )
            ]
            if wraps[i] and widths[i] < natural[i]
            else col
            for i, col in enumerate(columns)
        ]
        for n in range(max((len(c) for c in folded), default=1)):
            parts = [(c[n] if n < len(c) else "").ljust(widths[i]) for i, c in enumerate(folded)]
            out.append("  ".join(parts).rstrip())

    if head is not None:
        emit_row([[h] for h in head])
    for row in cells:
        emit_row(row)
    return "\n".join(out) + "\n" if out else ""


def _generic_table(value: Any) -> str:
    """A table of whatever a ``--query`` left: records, lists, a mapping or one value."""
    if isinstance(value, dict):
        return render_table(None, [[k, _scalar(v)] for k, v in value.items()])
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            rows = [[_scalar(v[k]) if k in v else None for k in keys] for v in value]
            return render_table(keys, rows, upper=False)
        rows = [[_scalar(x) for x in v] if isinstance(v, list) else [_scalar(v)] for v in value]
        return render_table(None, rows)
    return "" if value is None else _scalar(value) + "\n"


def _generic_text(value: Any) -> str:
    """aws-style text of a ``--query`` result: a list of records or of lists prints one line
    each, a list of plain values prints one line, a mapping prints its values."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "\t".join(_one_line(_scalar(v)) for v in value.values()) + "\n"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return "\t".join(_one_line(_scalar(v)) for v in value) + "\n" if value else ""
        return "".join(
            _generic_text(v) if isinstance(v, (dict, list)) else _one_line(_scalar(v)) + "\n"
            for v in value
        )
    return _one_line(_scalar(value)) + "\n"


# ---------------------------------------------------------------------------- emit


def emit(
    document: Any,
    records: Sequence[Any],
    columns: Sequence[Column],
    *,
    output: OutputFormat | str | None = None,
    query: str | None = None,
    json_flag: bool = False,
    layout: Callable[[Sequence[Any]], str] | None = None,
) -> None:
    """Print a listing: ``document`` is the JSON form, ``records`` its rows (usually a list
    inside ``document``), ``columns`` what text and table show of each row.

    ``layout``, when given, draws the ``table`` format instead of columns (for a command
    whose people-facing form is not columns, such as one line per result with details
    indented below); it takes ``records`` and returns the text.
    """
    fmt = resolve_format(output, json_flag)
    if query is not None:
        _write_generic(_apply_query(document, query), fmt)
        return
    if fmt is OutputFormat.json:
        print_json(document)
    elif fmt is OutputFormat.text:
        sys.stdout.write(
            "".join("\t".join(_text_cell(c.cell(r)) for c in columns) + "\n" for r in records)
        )
    elif layout is not None:
        sys.stdout.write(layout(records))
    else:
        sys.stdout.write(
            render_table(
                [c.header for c in columns],
                [[c.cell(r) for c in columns] for r in records],
                [c.wrap for c in columns],
            )
        )


def emit_record(
    document: Any,
    columns: Sequence[Column],
    *,
    output: OutputFormat | str | None = None,
    query: str | None = None,
    json_flag: bool = False,
) -> None:
    """Print one object: a ``field  value`` table, or one ``text`` line of the values."""
    fmt = resolve_format(output, json_flag)
    if query is not None:
        _write_generic(_apply_query(document, query), fmt)
    elif fmt is OutputFormat.table:
        rows = [[c.header, c.cell(document)] for c in columns]
        sys.stdout.write(render_table(None, rows))
    else:
        emit(document, [document], columns, output=fmt)


def _write_generic(value: Any, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print_json(value)
    elif fmt is OutputFormat.text:
        sys.stdout.write(_generic_text(value))
    else:
        sys.stdout.write(_generic_table(value))
