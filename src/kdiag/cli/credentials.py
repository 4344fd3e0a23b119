"""``kdiag credentials``: named BMC and API logins, sealed in the database.

``set NAME --username USER --password-stdin`` stores (or replaces) them; the password is
read from standard input only, never from the command line, where ``ps`` and shell
history would show it.  ``list`` shows names and usernames; ``delete NAME`` forgets them
(refused while an instance names them, unless ``--force``).  A target names them with
``"credentials": "name:NAME"``; the backend unseals them at delivery time.
"""

from __future__ import annotations

import sys
from typing import Annotated, BinaryIO

import typer

from kdiag.cli._output import Column, JsonOption, OutputOption, QueryOption, emit, print_json
from kdiag.cli._store import DbOption, open_store
from kdiag.errors import ConfigError

__all__ = ("read_password", "register")

#: Bytes read from standard input at most (a password is one line, far shorter).
MAX_STDIN = 4096

app = typer.Typer(
    help="Named BMC and API logins (sealed) that targets name instead of holding secrets.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help='Letters, digits and _.@+=,- (a target names it "credentials": "name:NAME").',
    ),
]


def read_password(stream: BinaryIO) -> str:
    """One line from ``stream``: the password, its line ending dropped.

    :raises ConfigError: nothing, more than one line, over :data:`MAX_STDIN` bytes, or not
        UTF-8 (never quoting what was read).
    """
    data = stream.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise ConfigError(f"--password-stdin: more than {MAX_STDIN} bytes on standard input")
    if data.endswith(b"\n"):
        data = data[:-1].removesuffix(b"\r")
    if b"\n" in data or b"\r" in data:
        raise ConfigError("--password-stdin: the password must be a single line")
    if not data:
        raise ConfigError("--password-stdin: standard input is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("--password-stdin: the password is not UTF-8 text") from None


@app.command("set", short_help="Store or replace a named login.")
def set_credentials(
    name: NameArg,
    *,
    username: Annotated[
        str, typer.Option("--username", metavar="USER", help="The login's user name.")
    ],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from standard input (required: never on the command line).",
        ),
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Store (or replace) credentials NAME, the password sealed with the key file.

    printf '%s\\n' "$BMC_PASSWORD" | kdiag credentials set bmc-lab --username admin
    --password-stdin; then register a target with "credentials": "name:bmc-lab".
    """
    if not password_stdin:
        raise ConfigError(
            "give the password on standard input with --password-stdin "
            "(a password on the command line would show in ps and shell history)"
        )
    password = read_password(sys.stdin.buffer)
    with open_store(db) as store:
        stored, created = store.set_credentials(name, username=username, password=password)
    if json_out:
        print_json({"Credentials": stored.to_json(), "Created": created})
    else:
        typer.echo(f"{'stored' if created else 'replaced'} credentials {stored.name}")


COLUMNS = (
    Column("name", "Name"),
    Column("username", "Username"),
    Column("updated", "UpdatedAt"),
)


@app.command("list", short_help="Names and usernames (never passwords).")
def list_credentials(
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """The named credentials: names and usernames, never a password."""
    with open_store(db) as store:
        found = [c.to_json() for c in store.list_credentials()]
    emit({"Credentials": found}, found, COLUMNS, output=output, query=query, json_flag=json_out)


@app.command("delete", short_help="Forget a named login.")
def delete_credentials(
    name: NameArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even while instances name them.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Forget credentials NAME (refused while an instance names them, unless --force)."""
    with open_store(db) as store:
        store.delete_credentials(name, force=force)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="credentials", short_help="Named BMC and API logins, sealed.")
