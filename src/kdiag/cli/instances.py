"""``kdiag instances``: the machines kdiag may interrupt, and how to reach each one."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from kdiag.backends.base import InstanceState, Target, check_target, get_backend
from kdiag.backends.probe import Probe, probe
from kdiag.cli._output import Column, JsonOption, OutputOption, QueryOption, emit, print_json
from kdiag.cli._store import DbOption, open_store
from kdiag.errors import ConfigError, InvalidInstanceIDNotFound

__all__ = ("parse_tags", "parse_target", "register")

_INVENTORY_STATES = tuple(s.value for s in InstanceState if s.code is not None)

app = typer.Typer(
    help="The instances kdiag may interrupt, and how to reach them.",
    no_args_is_help=True,
)

IdArg = Annotated[str, typer.Argument(metavar="INSTANCE_ID")]


def parse_target(value: str) -> dict[str, Any]:
    """``--target``: a JSON object of backend settings, or a bare address (socket, host)."""
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ConfigError(f"--target is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ConfigError("--target JSON must be an object")
        return parsed
    return {"address": value}


def parse_tags(values: list[str]) -> dict[str, str]:
    """``--tag K=V`` options as a dict."""
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag takes KEY=VALUE, not {item!r}")
        tags[key] = value
    return tags


@app.command("add")
def add(
    *,
    backend: Annotated[str, typer.Option("--backend", help="Backend name: qmp, fake, ...")],
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="The backend target: an address (QMP socket path, host:port) or JSON "
            'settings such as \'{"address": "/run/vm.qmp", "timeout": 3}\'.  Targets hold '
            "no secrets: a password, token, API or private key, or user:pass@ in a URL is "
            'refused.  Name them instead with "credentials": "name:NAME" (kept sealed by '
            'kdiag credentials set), "file:/path" (a file owned by '
            "you, mode 0600 or stricter, holding JSON or key=value lines such as "
            'username=... and password=...) or "env:PREFIX" (PREFIX_USERNAME, '
            "PREFIX_PASSWORD, ... in the environment of the process that delivers the "
            "NMI); the backend reads them at delivery time, never before.",
        ),
    ],
    instance_id: Annotated[
        str | None, typer.Option("--id", help="i- + 17 hex digits (default: a new id).")
    ] = None,
    region: Annotated[
        str, typer.Option("--region", help="An AWS-style region name.")
    ] = "us-east-1",
    availability_zone: Annotated[
        str | None, typer.Option("--az", help="Availability zone (default: REGION + 'a').")
    ] = None,
    arch: Annotated[str, typer.Option("--arch", help="x86_64, arm64, ...")] = "x86_64",
    tags: Annotated[
        list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="Repeatable.")
    ] = None,
    state: Annotated[
        str,
        typer.Option("--state", help="The inventory state: " + ", ".join(_INVENTORY_STATES) + "."),
    ] = "running",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Before storing, connect through the backend and read the machine's "
            "state (nothing is sent); store nothing when it does not answer.",
        ),
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Register an instance; prints its id.  The backend checks the target settings.

    Secrets never go in --target: give a credentials reference, e.g.
    --target '{"url": "https://bmc", "credentials": "file:/etc/kdiag/bmc.cred"}'
    with bmc.cred mode 0600 holding username=admin and password=... lines.

    libvirt: --target '{"uri": "qemu:///system", "domain": "NAME-or-UUID"}'
    (optional "timeout" in seconds, default 10).  --check tries it first.

    redfish: --target '{"url": "https://bmc", "system": "1", "credentials": "name:bmc"}'
    (optional "verify": false, "timeout").  ipmi: --target '{"address": "bmc", "port": 623,
    "credentials": "name:bmc"}' (optional "timeout").  The login: kdiag credentials set.

    aws: '{"region": "us-east-1", "instance_id": "i-...", "endpoint_url": "https://..."
    (optional: another kdiag), "credentials": "name:keys"}' (access_key_id and
    secret_access_key; without it boto3's default chain; optional "timeout").

    openstack: '{"cloud": "clouds.yaml entry", "server": "id-or-name"}'.

    gcp: '{"project": "p", "zone": "europe-west1-b", "instance": "name", "credentials":
    "file:/sa-key.json"}' (else Application Default Credentials; optional "endpoint_url").

    azure: '{"subscription": "id", "resource_group": "rg", "vm": "name", "credentials":
    "env:SP"}' (tenant_id, client_id, client_secret; else DefaultAzureCredential).
    Details: docs/backends.md.
    """
    settings = parse_target(target)
    with open_store(db) as store:
        checked = _check_new(store, backend, settings, instance_id, arch) if check else None
        inst = store.add_instance(
            backend=backend,
            target=settings,
            instance_id=instance_id,
            region=region,
            availability_zone=availability_zone,
            arch=arch,
            state=state,
            tags=parse_tags(tags or []),
        )
    if json_out:
        doc = {"Instance": inst.to_json()}
        print_json(doc if checked is None else {**doc, "Check": checked.to_json()})
    else:
        typer.echo(inst.id)
        if checked is not None:
            typer.echo(f"checked: {_summary(checked)}", err=True)


def _vault_kwargs(store: Any, account_id: str) -> dict[str, Any]:
    """``vault=`` for a :class:`Target`: the account's named credentials, when this
    store keeps them."""
    vault_of = getattr(store, "credentials_vault", None)
    return {} if vault_of is None else {"vault": vault_of(account_id)}


def _target_of(store: Any, instance: Any) -> Target:
    """What the backend acts on for a stored ``instance`` (as a send would build it)."""
    target_of = getattr(store, "target_of", None)
    if target_of is not None:
        return target_of(instance)  # type: ignore[no-any-return]
    return Target(instance.id, instance.target, instance.arch)


def _check_new(
    store: Any, backend: str, settings: dict[str, Any], instance_id: str | None, arch: str
) -> Probe:
    """``add --check``: parse the settings, then ask the backend for the machine's state.

    :raises BackendError: the backend's own error when it does not answer (nothing stored).
    """
    from kdiag.store.inventory import normalize_arch  # noqa: PLC0415 - loads the store: add only

    check_target(backend, settings)
    account = store.default_account().id
    target = Target(
        instance_id or "(new instance)",
        settings,
        normalize_arch(arch),
        **_vault_kwargs(store, account),
    )
    with get_backend(backend) as impl:
        state = InstanceState(impl.state(target))  # raises: unreachable, unknown, timeout
        return Probe(target.instance_id, backend, True, state, impl.supports_nmi(target))


def _summary(found: Probe) -> str:
    nmi = "NMI supported" if found.supports_nmi else "NMI not supported"
    if not found.reachable:
        return f"unreachable ({found.error_code}: {found.error}); {nmi}"
    return f"state {found.state}; {nmi}"


def _target(instance: dict[str, Any]) -> str:
    target = instance["Target"]
    if set(target) == {"address"}:
        return str(target["address"])
    return json.dumps(target, sort_keys=True, separators=(",", ":"))


INSTANCE_COLUMNS = (
    Column("instance", "InstanceId"),
    Column("state", "State"),
    Column("zone", "AvailabilityZone"),
    Column("arch", "Architecture"),
    Column("backend", "Backend"),
    Column("target", _target),
    Column("tags", lambda i: [f"{k}={v}" for k, v in sorted(i["Tags"].items())]),
)


@app.command("list")
def list_instances(
    db: DbOption = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="KEY=VALUE", help="Only instances with this tag."),
    ] = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """The instances kdiag manages.

    Targets hold no secrets (only credentials references); should a row hold one anyway
    (written by hand or by an older kdiag), values under secret-looking keys, at any depth,
    and URL passwords are shown as ***.
    """
    filters = {f"tag:{k}": [v] for k, v in parse_tags(tags or []).items()}
    with open_store(db) as store:
        found = [i.to_json() for i in store.list_instances(filters=filters)]
    emit(
        {"Instances": found},
        found,
        INSTANCE_COLUMNS,
        output=output,
        query=query,
        json_flag=json_out,
    )


@app.command("check", short_help="Reachability, state and NMI capability.")
def check_instance(instance_id: IdArg, db: DbOption = None, json_out: JsonOption = False) -> None:
    """Ask the instance's backend whether it answers, the machine's state and whether it
    can take an NMI.  Sends nothing.  Exit 0 when an NMI could be sent now, 1 otherwise.
    """
    from kdiag.store.ids import check_instance_id  # noqa: PLC0415 - with the store only

    check_instance_id(instance_id)
    with open_store(db) as store:
        inst = store.get_instance(instance_id)
        if inst is None:
            raise InvalidInstanceIDNotFound(
                f"The instance ID '{instance_id}' does not exist", target=instance_id
            )
        with get_backend(inst.backend) as impl:
            found = probe(impl, _target_of(store, inst))
    if json_out:
        print_json({"Check": found.to_json()})
    else:
        typer.echo(f"{found.instance_id} ({found.backend}): {_summary(found)}")
    if not found.ready:
        raise typer.Exit(1)


@app.command("set-state")
def set_state(
    instance_id: IdArg,
    state: Annotated[str, typer.Argument(help="running, stopped, pending, ...")],
    db: DbOption = None,
) -> None:
    """Set an instance's state (only running ones take an NMI)."""
    with open_store(db) as store:
        store.set_instance_state(instance_id, state)


@app.command("remove")
def remove(instance_id: IdArg, db: DbOption = None) -> None:
    """Forget an instance (its audit rows stay)."""
    with open_store(db) as store:
        store.remove_instance(instance_id)


@app.command("import", short_help="Register an Ansible inventory's hosts.")
def import_cmd(
    *,
    inventory: Annotated[
        str,
        typer.Option("-i", "--inventory", metavar="INVENTORY", help="Ansible inventory."),
    ],
    limit: Annotated[
        str | None, typer.Option("--limit", "-l", metavar="PATTERN", help="Only these hosts.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be added; store nothing.")
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Register the inventory's hosts as instances, from host variables: kdiag_backend and
    kdiag_target (optional kdiag_instance_id, kdiag_region, kdiag_arch, kdiag_tags), or the
    instance_id and placement.region of the aws_ec2 plugin (backend aws). Tagged Name=HOST;
    hosts already imported are skipped."""
    from kdiag.fleet.importer import import_inventory  # noqa: PLC0415 - ansible: not --help

    with open_store(db) as store:
        outcomes = import_inventory(store, inventory, limit=limit, dry_run=dry_run)
    if json_out:
        print_json({"Hosts": [o.to_json() for o in outcomes]})
        return
    for o in outcomes:
        detail = o.instance_id or "-"
        typer.echo(
            f"{o.host}\t{o.status}\t{o.backend or '-'}\t{detail}"
            + (f"\t{o.reason}" if o.reason else "")
        )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="instances")
