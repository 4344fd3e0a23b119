"""A command group used only by the CLI tests: each command raises one kind of failure."""

import sys

import typer

from kdiag import errors


def register(app: typer.Typer) -> None:
    sample = typer.Typer(help="Test-only commands.")

    @sample.command("fail")
    def fail(kind: str) -> None:
        """Raise the kdiag error named KIND."""
        raise getattr(errors, kind)("it went wrong")

    @sample.command("ok")
    def ok() -> None:
        """Print a line."""
        typer.echo("fine")

    @sample.command("flood")
    def flood() -> None:
        """Write far more than a pipe holds."""
        for i in range(200_000):
            sys.stdout.write(f"line {i}\n")

    app.add_typer(sample, name="sample")
