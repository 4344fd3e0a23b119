"""``kdiag completion SHELL``: print the shell completion script.

bash: ``source <(kdiag completion bash)`` (or save it under
``~/.local/share/bash-completion/completions/kdiag``); zsh: save it as ``_kdiag`` in a
directory on ``$fpath``; fish: ``kdiag completion fish > ~/.config/fish/completions/kdiag.fish``.
The script calls ``kdiag`` back with ``_KDIAG_COMPLETE`` set, which Typer answers with the
commands, options and choices that fit; ``kdiag --install-completion`` does the saving for the
shell it detects.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from typer.completion import (  # type: ignore[attr-defined]  # public module, no __all__
    get_completion_script,
)

__all__ = ("Shell", "register")


class Shell(enum.StrEnum):
    """The shells Typer writes completion scripts for."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


def completion(
    shell: Annotated[Shell, typer.Argument(metavar="SHELL")],
) -> None:
    """Print the shell completion script for SHELL.

    bash: source <(kdiag completion bash); fish: kdiag completion fish >
    ~/.config/fish/completions/kdiag.fish; zsh: save it as _kdiag on $fpath.
    """
    script = get_completion_script(
        prog_name="kdiag", complete_var="_KDIAG_COMPLETE", shell=shell.value
    )
    typer.echo(script)


def register(root: typer.Typer) -> None:
    root.command("completion")(completion)
