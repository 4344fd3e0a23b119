"""``kdiag iam``: users, access keys and inline policies, straight in the database.

Like ``aws iam``: ``create-user``, ``create-access-key`` (the only time the secret is
shown), ``put-user-policy --policy-document file://policy.json`` (or the JSON itself),
``list-users``, ``list-access-keys``, ``list-user-policies`` (each with ``--output`` and
``--query``), ``get-user-policy``, ``update-access-key --status Active|Inactive``,
``simulate-principal-policy`` (which statement decides), ``delete-user``,
``delete-access-key``, ``delete-user-policy``.  IAM's quotas hold: two access keys per user,
2,048 characters of inline policy per user (whitespace not counted).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kdiag import policy
from kdiag.cli._output import (
    Column,
    JsonOption,
    OutputFormat,
    OutputOption,
    QueryOption,
    emit,
    print_json,
    resolve_format,
)
from kdiag.cli._store import DbOption, open_store
from kdiag.errors import ConfigError

if TYPE_CHECKING:
    from kdiag.store import Store, User

__all__ = ("read_policy_document", "register")

app = typer.Typer(
    help="Users, access keys and inline policies, in the database.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The user name.")]
PolicyNameOption = Annotated[
    str, typer.Option("--policy-name", metavar="NAME", help="The policy's name.")
]


def read_policy_document(value: str) -> str:
    """The policy text from ``file://PATH`` (as the aws CLI takes it) or a literal JSON."""
    if value.startswith("file://"):
        path = Path(value[len("file://") :]).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read policy document {path}: {exc.strerror}") from exc
    if value.lstrip().startswith("{"):
        return value
    raise ConfigError("--policy-document takes file://PATH or the JSON policy itself")


@app.command("create-user")
def create_user(name: NameArg, db: DbOption = None, json_out: JsonOption = False) -> None:
    """Create a user in the default account."""
    with open_store(db) as store:
        user = store.create_user(name)
    if json_out:
        print_json({"User": user.to_json()})
    else:
        typer.echo(f"{user.name}\t{user.id}\t{user.arn}")


@app.command("create-access-key")
def create_access_key(name: NameArg, db: DbOption = None, json_out: JsonOption = False) -> None:
    """Create an access key for a user and print it.

    The secret access key is shown this once and never again.
    """
    with open_store(db) as store:
        key, secret = store.create_access_key(name)
    body = {"AccessKeyId": key.id, "SecretAccessKey": secret}
    if json_out:
        print_json({"AccessKey": {"UserName": key.user_name, "Status": key.status, **body}})
    else:
        for field, value in body.items():
            typer.echo(f"{field}\t{value}")
        typer.echo("note: the secret access key is shown only now; store it safely.", err=True)


@app.command("put-user-policy", short_help="Attach or replace an inline policy.")
def put_user_policy(
    name: NameArg,
    policy_name: PolicyNameOption,
    policy_document: Annotated[
        str,
        typer.Option("--policy-document", help="file://PATH, or the policy JSON itself."),
    ],
    db: DbOption = None,
) -> None:
    """Attach or replace an inline policy (validated first)."""
    text = read_policy_document(policy_document)
    with open_store(db) as store:
        store.put_user_policy(name, policy_name, text)


@app.command("delete-user-policy")
def delete_user_policy(
    name: NameArg,
    policy_name: PolicyNameOption,
    db: DbOption = None,
) -> None:
    """Remove an inline policy from a user."""
    with open_store(db) as store:
        store.delete_user_policy(name, policy_name)


@app.command("delete-access-key")
def delete_access_key(
    key_id: Annotated[str | None, typer.Argument(metavar="ACCESS_KEY_ID")] = None,
    *,
    access_key_id: Annotated[
        str | None, typer.Option("--access-key-id", metavar="AKIA...", help="As aws takes it.")
    ] = None,
    user_name: Annotated[
        str | None, typer.Option("--user-name", metavar="NAME", help="Only if it is theirs.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Delete an access key.

    Give its id by position or --access-key-id; with --user-name, only that user's key.
    """
    if (key_id is None) == (access_key_id is None):
        raise ConfigError("give the access key id once: ACCESS_KEY_ID or --access-key-id")
    with open_store(db) as store:
        store.delete_access_key(key_id or access_key_id or "", user=user_name)


@app.command("delete-user", short_help="Delete a user, its keys and policies.")
def delete_user(name: NameArg, db: DbOption = None) -> None:
    """Delete a user with its access keys and policies."""
    with open_store(db) as store:
        store.delete_user(name)


def _key_ids(user: dict[str, Any]) -> list[str]:
    return [
        k["AccessKeyId"] + ("" if k["Status"] == "Active" else " (inactive)")
        for k in user["AccessKeys"]
    ]


USER_COLUMNS = (
    Column("user", "UserName"),
    Column("user id", "UserId"),
    Column("access keys", _key_ids),
    Column("policies", lambda u: sorted(u["Policies"])),
)


def list_users(
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Users with their access key ids and policy names.

    Secrets are never listed; --json has each policy document.
    """
    with open_store(db) as store:
        users: list[dict[str, Any]] = []
        for user in store.list_users():
            policies = store.get_user_policies(user)
            keys = store.list_access_keys(user)
            users.append(
                {
                    **user.to_json(),
                    "AccessKeys": [k.to_json() for k in keys],
                    "Policies": {n: json.loads(doc) for n, doc in policies.items()},
                }
            )
    emit({"Users": users}, users, USER_COLUMNS, output=output, query=query, json_flag=json_out)


app.command("list-users", short_help="Users, their key ids and policy names.")(list_users)
app.command("list", hidden=True)(list_users)  # the name before list-users; scripts use it


KEY_COLUMNS = (
    Column("access key id", "AccessKeyId"),
    Column("user", "UserName"),
    Column("status", "Status"),
    Column("created", "CreateDate"),
)


@app.command("list-access-keys", short_help="Access keys: id, user, status.")
def list_access_keys(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Only this user's keys.")
    ] = None,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Access keys: id, user and status (never the secret)."""
    with open_store(db) as store:
        keys = [k.to_json() for k in store.list_access_keys(name)]
    document = {"AccessKeyMetadata": keys}
    emit(document, keys, KEY_COLUMNS, output=output, query=query, json_flag=json_out)


@app.command("list-user-policies")
def list_user_policies(
    name: NameArg,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """The names of a user's inline policies."""
    with open_store(db) as store:
        names = sorted(store.get_user_policies(name))
    document = {"PolicyNames": names}
    rows = [{"PolicyName": n} for n in names]
    emit(
        document,
        rows,
        (Column("policy", "PolicyName"),),
        output=output,
        query=query,
        json_flag=json_out,
    )


@app.command("get-user-policy")
def get_user_policy(
    name: NameArg,
    *,
    policy_name: PolicyNameOption,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Print one inline policy document.

    text and table print the policy document itself (ready to edit and put back); json is
    aws's envelope with UserName, PolicyName and PolicyDocument, which --query reads.
    """
    with open_store(db) as store:
        text = store.get_user_policy(name, policy_name)
    document = json.loads(text)
    envelope = {"UserName": name, "PolicyName": policy_name, "PolicyDocument": document}
    if query is None and resolve_format(output, json_out) is not OutputFormat.json:
        print_json(document)
    else:
        emit(envelope, [], (), output=output, query=query, json_flag=json_out)


class KeyStatus(enum.StrEnum):
    """An access key's status."""

    Active = "Active"
    Inactive = "Inactive"


@app.command("update-access-key")
def update_access_key(
    name: NameArg,
    access_key_id: Annotated[
        str, typer.Option("--access-key-id", metavar="AKIA...", help="The user's key.")
    ],
    status: Annotated[
        KeyStatus, typer.Option("--status", help="Inactive keys authenticate nothing.")
    ],
    db: DbOption = None,
) -> None:
    """Make a user's access key Active or Inactive."""
    with open_store(db) as store:
        store.set_access_key_status(access_key_id, status.value, user=name)


def _split(values: list[str]) -> list[str]:
    """Options given repeatedly, or comma/space separated in one value (as aws takes them)."""
    return [item for value in values for item in value.replace(",", " ").split()]


def _simulation_context(store: Store, user: User, resource: str) -> dict[str, str | list[str]]:
    """The condition keys the service would see for ``user`` acting on ``resource``: the
    user's identity, the region of an EC2 ARN, and an instance's id, zone and tags when the
    ARN names an instance of the store in the user's account."""
    parts = resource.split(":", 5)
    ec2 = len(parts) == 6 and parts[2] == "ec2"
    region = parts[3] if ec2 and parts[3] else "us-east-1"
    instance_id = (
        parts[5].removeprefix("instance/") if ec2 and parts[5].startswith("instance/") else None
    )
    from kdiag import authz  # noqa: PLC0415 - it imports the store (SQLAlchemy): not on --help

    caller = authz.Caller.of(user)
    instance = authz.instance_in_scope(store, caller, region, instance_id) if instance_id else None
    return authz.condition_context(
        caller, region=region, instance_id=instance_id, instance=instance
    )


def _where(statement: dict[str, Any]) -> str:
    sid = f' (Sid "{statement["Sid"]}")' if statement["Sid"] else ""
    return (
        f'policy "{statement["SourcePolicyId"]}" Statement[{statement["StatementIndex"]}]'
        f"{sid} {statement['Effect']}"
    )


SIMULATION_COLUMNS = (
    Column("decision", "EvalDecision"),
    Column("action", "EvalActionName"),
    Column("resource", "EvalResourceName"),
    Column("decided by", lambda r: [_where(s) for s in r["MatchedStatements"]]),
    Column(
        "stopped by",
        lambda r: [f"{s['FailedCondition']}: {_where(s)}" for s in r["StoppedStatements"]],
    ),
    Column("missing context keys", "MissingContextValues"),
)


def _simulation_layout(results: Sequence[dict[str, Any]]) -> str:
    """The terminal layout: one line per decision, what decided it indented below."""
    lines: list[str] = []
    for result in results:
        lines.append(
            f"{result['EvalDecision']}\t{result['EvalActionName']}\t{result['EvalResourceName']}"
        )
        lines += [f"    decided by: {_where(s)}" for s in result["MatchedStatements"]]
        lines += [
            f"    stopped by {s['FailedCondition']}: {_where(s)}"
            for s in result["StoppedStatements"]
        ]
        if result["MissingContextValues"]:
            lines.append(f"    missing context keys: {', '.join(result['MissingContextValues'])}")
    return "".join(line + "\n" for line in lines)


@app.command("simulate-principal-policy")
def simulate_principal_policy(
    name: NameArg,
    *,
    action_names: Annotated[
        list[str],
        typer.Option("--action-names", metavar="ACTION", help="e.g. ec2:SendDiagnosticInterrupt"),
    ],
    resource_arns: Annotated[
        list[str] | None,
        typer.Option("--resource-arns", metavar="ARN", help="Default: *."),
    ] = None,
    context_entries: Annotated[
        list[str] | None,
        typer.Option(
            "--context-entries",
            metavar="ENTRY",
            help="key=K,values=V[,V...],type=T (aws long names or JSON too).",
        ),
    ] = None,
    db: DbOption = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Say which statement decides an action.

    Each action on each resource is decided with the user's policies: allowed,
    explicitDeny or implicitDeny, the statements that decided, those a condition stopped.

    The context is what the service would see: the user, the region, and the instance's
    tags when the ARN names a known instance.  Entries given with --context-entries are
    added and win.
    """
    actions = _split(action_names)
    resources = _split(resource_arns or []) or ["*"]
    extra: dict[str, str | list[str]] = {}
    for entry in context_entries or []:
        extra.update(policy.parse_context_entry(entry))
    results: list[dict[str, Any]] = []
    with open_store(db) as store:
        user = store.user(name)
        policies = store.get_user_policies(user)
        for resource in resources:
            context = {**_simulation_context(store, user, resource), **extra}
            results += policy.simulate(policies, actions, [resource], context)
    results.sort(key=lambda r: actions.index(r["EvalActionName"]))
    emit(
        {"EvaluationResults": results},
        results,
        SIMULATION_COLUMNS,
        output=output,
        query=query,
        json_flag=json_out,
        layout=_simulation_layout,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="iam")
