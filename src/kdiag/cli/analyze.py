"""``kdiag analyze DUMP...``: triage crash dumps without debuginfo.

One dump: crash's ``sys``-like block, the panic class and crash signature, and the last log
lines; ``--json`` one JSON object (``schema_version``, docs/analyze.md), ``--log`` the whole
kernel log exactly as ``makedumpfile --dump-dmesg`` writes it. ``--debuginfo VMLINUX``
(``kdiag[drgn]``) adds the task count and load average after checking that the vmlinux is the
dump's kernel. Several dumps, or a directory such as ``/var/crash``: one line per dump.
``-`` reads a dump from standard input.

Start-up matters (the budget is 0.25 s for ``kdiag analyze --json DUMP``): this command
parses its own arguments with argparse and ``kdiag.cli.main`` dispatches to :func:`run`
before it builds the Typer app, whose parameter coercion alone would import pydantic (about
90 ms). Rich and the ``--output``/``--query`` helpers are imported only when used.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdiag import vmcore
from kdiag.errors import ConfigError, KdiagError, TruncatedDump, UnsupportedDump
from kdiag.vmcore.debuginfo import check_vmlinux, drgn_facts
from kdiag.vmcore.describe import summary_block
from kdiag.vmcore.discover import find_dumps
from kdiag.vmcore.formats.diskdump import DISKDUMP_SIGNATURE, KdumpPages
from kdiag.vmcore.triage import SCHEMA_VERSION, Triage, triage

__all__ = ("build_parser", "register", "run")

_PROGRESS_AFTER = 1.0
EXIT_USAGE = 2

SUMMARY = "Triage Linux crash dumps: release, crash time, panic, class, signature, log."
_EPILOG = """\
DUMP is a crash dump (ELF, kdump, flattened, QEMU; also zstd, gzip, xz or
bzip2 compressed), a directory searched for dumps (vmcore, vmcore.*, dump.*:
the names kdump-tools and kexec-tools use under /var/crash), or - for standard
input. Several dumps or a directory print one line per dump.

exit status: 0 ok; 2 usage, or a dump that cannot be opened (missing,
permission denied); 5 a dump that cannot be read, or is incomplete (what could
be read is still printed)."""


class _UsageError(Exception):
    """argparse's complaint, turned into kdiag's one-line usage error by :func:`run`."""


class _Done(Exception):
    """argparse printed help and wants to exit with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's NoReturn hook
        raise _UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            sys.stderr.write(message)
        raise _Done(status)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``kdiag analyze`` (its ``--help`` is the command's reference)."""
    parser = _Parser(
        prog="kdiag analyze",
        description=SUMMARY,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("dumps", nargs="+", metavar="DUMP", help="dump file, directory, or -")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print one JSON document")
    shape.add_argument(
        "--log", action="store_true", help="print the whole kernel log as makedumpfile does"
    )
    shape.add_argument(
        "-o",
        "--output",
        choices=("json", "text", "table"),
        help="json, text (tab-separated) or table; default: the summary for one dump, "
        "a table (text in a pipe) for several",
    )
    parser.add_argument(
        "--query", metavar="JMESPATH", help="print only this part of the JSON document"
    )
    parser.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=30,
        metavar="N",
        help="log lines to show after the summary (default 30)",
    )
    parser.add_argument(
        "--debuginfo",
        type=Path,
        metavar="VMLINUX",
        help="the dump's vmlinux with debuginfo: adds tasks and load average through drgn "
        "(kdiag[drgn]); refused if it does not match the dump",
    )
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more")
    return value


def _usage(message: str) -> int:
    if "required" in message:
        code = "MissingParameter"
    elif message.startswith("argument ") and "not allowed with" not in message:
        code = "InvalidParameterValue"
    else:
        code = "UsageError"
    sys.stderr.write(f"error: {message} ({code})\ntry 'kdiag analyze --help'\n")
    return EXIT_USAGE


def run(args: Sequence[str]) -> int:
    """``kdiag analyze`` on its arguments (those after ``analyze``); returns the exit code.

    :raises KdiagError: for the caller's error boundary (one line, the class's exit code).
    """
    try:
        opts = build_parser().parse_args(list(args))
        _check_combinations(opts)
    except _UsageError as exc:
        return _usage(str(exc))
    except _Done as done:
        return done.status
    targets = _targets(opts.dumps)
    if len(opts.dumps) == 1 and not _is_dir(opts.dumps[0]):
        return _analyze_one(targets[0], opts)
    if not any(_is_dir(d) for d in opts.dumps) and "-" not in targets:
        members = _split_set(targets)
        if members is not None:  # the files of one makedumpfile --split set: one dump
            return _analyze_one(members, opts)
    try:
        _check_several(opts)
    except _UsageError as exc:
        return _usage(str(exc))
    return _analyze_many(targets, opts)


def _check_combinations(opts: argparse.Namespace) -> None:
    if opts.dumps.count("-") > 1:
        raise _UsageError("standard input (-) can be read only once")
    if "-" in opts.dumps and sys.stdin.isatty():
        raise _UsageError("- reads a dump from standard input, which is a terminal")


def _check_several(opts: argparse.Namespace) -> None:
    """What several dumps (not one split set) or a directory cannot be asked."""
    if opts.log:
        raise _UsageError("--log reads one dump, not several or a directory")
    if opts.debuginfo is not None:
        raise _UsageError("--debuginfo reads one dump, not several or a directory")


def _split_set(targets: Sequence[str]) -> list[str] | None:
    """``targets`` when every one is a file of one ``makedumpfile --split`` set, else None."""
    keys = {_split_key(target) for target in targets}
    if len(keys) == 1 and None not in keys:
        return list(targets)
    return None


def _split_key(target: str) -> tuple[object, ...] | None:
    """What the files of one ``makedumpfile --split`` set share (utsname, dump time, pfn
    count), read from the kdump header of an uncompressed file; None for anything else."""
    if target == "-":
        return None
    try:
        with open(target, "rb") as file:
            if file.read(8) != DISKDUMP_SIGNATURE:
                return None
        with vmcore.open(target) as dump:
            store = dump.layout.store
            if dump.split_range is None or not isinstance(store, KdumpPages):
                return None
            head = store.header
            return (head.utsname, head.timestamp_sec, head.timestamp_usec, store.max_mapnr)
    except (OSError, KdiagError):
        return None  # the dump's own line says what is wrong with it


def _is_dir(operand: str) -> bool:
    """A directory to search; a path that cannot even be looked at is left to the opener,
    which says why (permission denied, no such file)."""
    try:
        return operand != "-" and Path(operand).is_dir()
    except OSError:
        return False


def _targets(operands: Sequence[str]) -> list[str]:
    """Each operand, with directories replaced by the dumps found beneath them."""
    out: list[str] = []
    for operand in operands:
        if _is_dir(operand):
            found = find_dumps(operand)
            if not found:
                raise ConfigError(
                    f"no crash dumps under {operand} (looked for vmcore, vmcore.*, dump.*)"
                )
            out.extend(str(p) for p in found)
        else:
            out.append(operand)
    return out


# --- one dump ---------------------------------------------------------------------------------


def _open(target: str | list[str], progress: vmcore.ProgressFn) -> vmcore.Dump:
    if isinstance(target, list):
        return vmcore.open(target, progress=progress)
    if target == "-":
        return vmcore.open_stream(sys.stdin.buffer, name="-", progress=progress)
    if target.startswith("ssh://"):  # read in place over SFTP, by ranges (kdiag[fleet])
        from kdiag.fleet.remote import open_remote  # noqa: PLC0415 - asyncssh: only for ssh://

        return open_remote(target, progress=progress)
    return vmcore.open(target, progress=progress)


def _analyze_one(target: str | list[str], opts: argparse.Namespace) -> int:
    progress = _LazyProgress()
    extra: dict[str, Any] = {}
    try:
        with _open(target, progress) as dump:
            if opts.log:
                _write(vmcore.format_dmesg(dump.kernel_log()))
                _raise_if_incomplete(target, dump.complete, dump.incomplete_reason)
                return 0
            result = triage(dump)
            if opts.debuginfo is not None:
                extra = _drgn_extra(result, dump.tool_path, opts.debuginfo)
    finally:
        progress.close()
    document = {**result.to_json(), **extra}
    if opts.query is not None:
        _emit_with_helpers(document, opts)
    elif opts.json or opts.output == "json":
        _write(_json_text(document))
    else:
        _write(_summary_text(result, extra, opts.lines))
    _raise_if_incomplete(target, result.complete, result.incomplete_reason)
    return 0


def _drgn_extra(result: Triage, dump_path: str, vmlinux: Path) -> dict[str, Any]:
    check_vmlinux(result, vmlinux)
    if result.format == "qemu-kdump":
        # libkdumpfile (under drgn) finds no architecture in QEMU's kdump header.
        raise UnsupportedDump(
            "--debuginfo: drgn cannot open QEMU's kdump files (dump-guest-memory -z/-l/-s);"
            " take the dump in ELF format, or leave out --debuginfo"
        )
    facts = drgn_facts(dump_path, vmlinux)
    return {"tasks": facts.tasks, "load_average": list(facts.load_average)}


def _summary_text(result: Triage, extra: dict[str, Any], lines: int) -> str:
    block = summary_block(result)
    if extra:
        block += f"{'TASKS':>14}: {extra['tasks']}\n"
        block += f"{'LOAD AVERAGE':>14}: {', '.join(extra['load_average'])}\n"
    out = [block]
    if lines and result.log:
        text = vmcore.format_dmesg(result.log[-lines:]).splitlines()[-lines:]
        out.append(f"\nLAST {len(text)} LOG LINES:\n")
        out.append("".join(line + "\n" for line in text))
    return "".join(out)


def _raise_if_incomplete(target: str | list[str], complete: bool, reason: str | None) -> None:
    if not complete:
        raise TruncatedDump(
            f"{_name(target)} is incomplete ({reason or 'no reason given'}): what was printed comes"
            " from the part that is there; figures that need the rest are shown as unknown"
        )


# --- several dumps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    """One dump of a listing: its triage, or the error that stopped it."""

    path: str
    result: Triage | None
    error: KdiagError | None

    def to_json(self) -> dict[str, Any]:
        if self.result is not None:
            return self.result.to_json()
        assert self.error is not None
        return {
            "path": self.path,
            "error": {"code": self.error.code, "message": str(self.error)},
        }


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """The columns of one listing line, from a record of the JSON document."""
    if "error" in record:
        return {"path": record["path"], "class": "error", "signature": record["error"]["code"]}
    panic = record["panic"]
    return {
        "path": record["path"],
        "release": record["release"],
        "class": panic["class"],
        "signature": panic["signature_id"] or "-",
        "time": record["crash_time"],
    }


def _groups(targets: Sequence[str]) -> list[str | list[str]]:
    """The targets, with the files of each ``makedumpfile --split`` set gathered into one
    entry at the place of its first file."""
    out: list[str | list[str]] = []
    sets: dict[tuple[object, ...], list[str]] = {}
    for target in targets:
        key = _split_key(target)
        if key is None:
            out.append(target)
        elif key in sets:
            sets[key].append(target)
        else:
            sets[key] = [target]
            out.append(sets[key])
    return [g[0] if isinstance(g, list) and len(g) == 1 else g for g in out]


def _analyze_many(targets: Sequence[str], opts: argparse.Namespace) -> int:
    outcomes = [_triage_quietly(target) for target in _groups(targets)]
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "dumps": [o.to_json() for o in outcomes],
    }
    if opts.json or opts.output == "json":
        if opts.query is None:
            _write(_json_text(document))
        else:
            _emit_with_helpers(document, opts)
    else:
        _emit_with_helpers(document, opts, rows=[_row(r) for r in document["dumps"]])
    worst = 0
    for outcome in outcomes:
        error = outcome.error
        if error is None and outcome.result is not None and not outcome.result.complete:
            error = TruncatedDump(f"incomplete ({outcome.result.incomplete_reason})")
        if error is not None:
            sys.stderr.write(f"error: {outcome.path}: {error} ({error.code})\n")
            worst = max(worst, error.exit_code)
    return worst


def _triage_quietly(target: str | list[str]) -> _Outcome:
    try:
        with _open(target, _LazyProgress()) as dump:
            return _Outcome(_name(target), triage(dump), None)
    except KdiagError as exc:  # one bad dump must not hide the others: it gets its own line
        return _Outcome(_name(target), None, exc)


def _name(target: str | list[str]) -> str:
    """A dump's name in messages: its path, or the paths of a split set's files."""
    return target if isinstance(target, str) else " ".join(target)


# --- output -----------------------------------------------------------------------------------


def _json_text(document: Any) -> str:
    # The same form as kdiag.cli._output.print_json, without importing Typer for it.
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _emit_with_helpers(
    document: dict[str, Any], opts: argparse.Namespace, rows: list[dict[str, Any]] | None = None
) -> None:
    """``--query`` and the listing, through the shared ``--output`` helpers."""
    from kdiag.cli import _output  # noqa: PLC0415 - it imports Typer: only listings pay for it

    columns = [_output.Column(name.upper(), name) for name in _COLUMNS]
    _output.emit(
        document,
        rows if rows is not None else [],
        columns,
        output=opts.output,
        query=opts.query,
        json_flag=opts.json,
    )


_COLUMNS = ("path", "release", "class", "signature", "time")


def _write(text: str) -> None:
    # A failing stdout (a full disk, a closed pipe) is reported by kdiag.cli.main, which
    # flushes stdout inside its error boundary: one line, exit 1 (141 for a closed pipe).
    sys.stdout.write(text)


class _LazyProgress:
    """The ``progress`` callback of kdiag.vmcore.open: a Rich bar on stderr, but only for a
    step that has run longer than a second (small dumps never import Rich)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        now = time.monotonic()
        start = self.started.setdefault(step, now)
        if self.bar is None:
            if now - start < _PROGRESS_AFTER or not sys.stderr.isatty():
                return
            from rich.progress import Progress  # noqa: PLC0415 - Rich costs ~40 ms of start-up

            from kdiag.cli._output import err_console  # noqa: PLC0415 - imports Typer

            self.bar = Progress(console=err_console(), transient=True)
            self.bar.start()
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total or None)
        self.bar.update(self.tasks[step], completed=done, total=total or None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: Any) -> None:
    """List ``analyze`` in the Typer app (``kdiag --help``); its arguments are its own.

    ``kdiag.cli.main`` normally runs :func:`run` directly; this entry serves the rare line
    that reaches the Typer app (global options other than ``--traceback`` before it).
    """
    import typer  # noqa: PLC0415 - loaded already whenever a Typer app is being built

    def analyze(ctx: typer.Context) -> None:
        code = run(list(ctx.args))
        if code:
            raise typer.Exit(code)

    app.command(
        "analyze",
        help=SUMMARY + " See 'kdiag analyze --help'.",
        short_help="Triage crash dumps, no debuginfo needed.",
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(analyze)
