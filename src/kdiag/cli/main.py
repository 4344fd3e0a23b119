"""Entry point: global options, lazy command registration, and the one error boundary.

Exit codes (DESIGN.md): 0 ok, 1 a check or drill failed, 2 usage, 3 access denied,
4 backend, 5 bad dump; 130 on Ctrl-C, 141 when stdout is a closed pipe.

Every failure is one line on stderr, ``error: <what> (<code>)``; usage errors (a missing
argument, an unknown option, a bad value) too, with ``MissingParameter``,
``InvalidParameterValue`` or ``UsageError`` as the code and a ``try 'kdiag ... --help'``
hint below.  Shell completion comes from Typer: ``kdiag completion bash|zsh|fish`` prints
the script, ``kdiag --install-completion`` installs it for the shell it detects.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from collections.abc import Sequence

import typer

try:  # Typer >= 0.25 vendors its own copy of click; its exceptions are the ones raised.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer on the real click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from kdiag._version import __version__
from kdiag.errors import KdiagError

__all__ = ("COMMANDS", "build_app", "main")

#: command or group name -> module exposing ``register(app: typer.Typer) -> None``.
#: Add one line per group; the module is imported only when its command runs (or for --help).
COMMANDS: dict[str, str] = {
    "analyze": "kdiag.cli.analyze",
    "audit": "kdiag.cli.audit",
    "completion": "kdiag.cli.completion",
    "iam": "kdiag.cli.iam",
    "lab": "kdiag.cli.lab",
    "instances": "kdiag.cli.instances",
    "configure": "kdiag.cli.configure",
    "credentials": "kdiag.cli.credentials",
    "doctor": "kdiag.cli.doctor",
    "fleet": "kdiag.cli.fleet",
    "drill": "kdiag.cli.drill",
    "dumps": "kdiag.cli.dumps",
    "send": "kdiag.cli.send",
    "serve": "kdiag.cli.serve",
}

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class _State:
    traceback = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kdiag {__version__}")
        raise typer.Exit


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    traceback: bool = typer.Option(
        False, "--traceback", help="Show the Python stack when a command fails."
    ),
) -> None:
    """kdiag: send a diagnostic NMI, make sure kdump catches it, and read the crash dump."""
    _State.traceback = traceback


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every group registered, or just ``only`` when it is known."""
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    names = [only] if only in COMMANDS else sorted(COMMANDS)
    for name in names:
        module = importlib.import_module(COMMANDS[name])
        module.register(app)
    return app


def _command_name(args: Sequence[str]) -> str | None:
    for arg in args:
        if not arg.startswith("-"):
            return arg
    return None


def _fail(message: str, code: str, exit_code: int) -> int:
    sys.stderr.write(f"error: {message} ({code})\n")
    sys.stderr.flush()
    return exit_code


def _usage_code(exc: click_exceptions.ClickException) -> str:
    if isinstance(exc, click_exceptions.MissingParameter):
        return "MissingParameter"
    if isinstance(exc, click_exceptions.BadParameter):
        return "InvalidParameterValue"
    return "UsageError"


def _usage_error(exc: click_exceptions.ClickException) -> int:
    """Click's usage errors in kdiag's one-line form, plus a hint naming the help option."""
    if isinstance(exc, click_exceptions.NoArgsIsHelpError):
        exc.show()  # a bare group (``kdiag iam``) prints its help, as git does
        return EXIT_USAGE
    text = " ".join(exc.format_message().split()).rstrip(".")
    text = text.replace(": Value error, ", ": ")  # pydantic's prefix on Typer's coercion errors
    _fail(text[:1].lower() + text[1:], _usage_code(exc), EXIT_USAGE)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        sys.stderr.write(f"try '{ctx.command_path} --help'\n")
    return EXIT_USAGE


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    _State.traceback = "--traceback" in args
    try:
        return _dispatch(args)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return _fail("interrupted", "Interrupted", EXIT_INTERRUPTED)
    except click_exceptions.ClickException as exc:
        return _usage_error(exc)
    except KdiagError as exc:
        if _State.traceback:
            raise
        return _fail(str(exc), exc.code, exc.exit_code)
    except KeyboardInterrupt:
        if _State.traceback:
            raise
        return _fail("interrupted", "Interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        raise
    except OSError as exc:
        if _State.traceback:
            raise
        return _os_error(exc)


def _dispatch(args: list[str]) -> int:
    """Run one command: ``analyze`` through its own fast parser, the rest through Typer."""
    name = _command_name(args)
    stdout = sys.stdout
    try:
        if name == "analyze" and set(args[: args.index(name)]) <= {"--traceback"}:
            # analyze parses its own arguments (argparse) and never builds the Typer app, whose
            # parameter coercion imports pydantic: ~90 ms of its 0.25 s budget.
            analyze = importlib.import_module(COMMANDS[name])
            result = analyze.run(args[args.index(name) + 1 :])
        else:
            command = typer.main.get_command(build_app(name))
            result = command.main(args=args, prog_name="kdiag", standalone_mode=False)
        sys.stdout.flush()
    except SystemExit as exc:
        if sys.stdout is not stdout:
            # Typer met EPIPE on stdout, wrapped the streams to silence them and exited 1;
            # report the broken pipe as such.
            sys.stdout = stdout
            raise BrokenPipeError from exc
        raise
    return result if isinstance(result, int) else 0


_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _os_error(exc: OSError) -> int:
    """The last net under every command: an OSError nothing mapped to a kdiag error, most
    often stdout failing (``kdiag audit > /dev/full``), as one line instead of a traceback."""
    if exc.filename is None and exc.errno in _WRITE_ERRORS:
        # Keep Python's flush at exit from failing a second time on the same buffer.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        error = KdiagError(f"cannot write the output: {exc.strerror}")
    else:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        error = KdiagError(f"{where}{exc.strerror or exc}")
    return _fail(str(error), error.code, error.exit_code)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        code = run(argv)
    except BrokenPipeError:
        # The reader went away (``kdiag analyze --log DUMP | head``): stop quietly, and keep
        # Python's shutdown flush from printing a second error on the dead pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    except KdiagError as exc:  # --traceback let it through run(): the stack, then the same exit
        import traceback  # noqa: PLC0415 - 5 ms of start-up (linecache, tokenize), errors only

        traceback.print_exc()
        code = _fail(str(exc), exc.code, exc.exit_code)
    sys.exit(code)
