"""``kdiag fleet``: doctor, configure (and drill) across an Ansible inventory."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kdiag.cli._output import err_console, print_json
from kdiag.cli._store import DbOption, open_store

if TYPE_CHECKING:
    from kdiag.fleet.doctor import FleetReport, HostVerdict

__all__ = ("register",)

fleet_app = typer.Typer(
    help="kdiag across an Ansible inventory: readiness, configuration, drills.",
    short_help="Readiness and fixes across an Ansible inventory.",
    no_args_is_help=True,
)

_Inventory = Annotated[
    str,
    typer.Option(
        "-i",
        "--inventory",
        metavar="INVENTORY",
        help="Ansible inventory: a file, a directory, a plugin's YAML or 'host1,host2,'.",
    ),
]
_Limit = Annotated[
    str | None,
    typer.Option("--limit", "-l", metavar="PATTERN", help="Only hosts matching PATTERN."),
]
_Forks = Annotated[int, typer.Option("--forks", "-f", help="Hosts worked on at once.")]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_Timeout = Annotated[
    int,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Per host: the collect task's limit, counted here from the connection on.",
    ),
]


class _Bar:
    """Hosts answered so far: a Rich bar on a terminal, one line per host otherwise."""

    def __init__(self, total_hint: str) -> None:
        self.tty = sys.stderr.isatty()
        self.console = err_console()
        self.total_hint = total_hint
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self.tty:
            from rich.progress import Progress  # noqa: PLC0415 - Rich only on a terminal

            self._progress = Progress(console=self.console, transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.total_hint, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def __call__(self, verdict: HostVerdict, done: int, total: int) -> None:
        what = ", ".join(verdict.findings) or "ok"
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)
            self._progress.console.print(f"[dim]{done}/{total}[/] {verdict.host}: {what}")
        else:
            self.console.print(f"{done}/{total} {verdict.host}: {verdict.status} ({what})")


def _check_options(
    *,
    forks: int = 1,
    purpose: str = "nmi",
    canary: int = 0,
    batch: int = 1,
    timeout: int = 1,
) -> None:
    """Refuse bad options before the inventory is read (ansible-inventory takes seconds)."""
    from kdiag.errors import ConfigError  # noqa: PLC0415 - not for --help
    from kdiag.fleet.doctor import MAX_COLLECT_TIMEOUT  # noqa: PLC0415 - see above
    from kdiag.readiness.registry import TRIGGERS  # noqa: PLC0415 - see above

    if purpose not in (*TRIGGERS, "all"):
        raise ConfigError(f"--for must be one of {', '.join((*TRIGGERS, 'all'))}")
    for name, value, low in (("--forks", forks, 1), ("--canary", canary, 0), ("--batch", batch, 1)):
        if not low <= value <= 1000:
            raise ConfigError(f"{name} must be {low} to 1000, not {value}")
    if not 1 <= timeout <= MAX_COLLECT_TIMEOUT:
        raise ConfigError(f"--timeout must be 1 to {MAX_COLLECT_TIMEOUT} seconds")


def _print_report(report: FleetReport, run_id: int | None) -> None:
    counts = report.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    stored = f" [run {run_id}]" if run_id is not None else ""
    typer.echo(
        f"kdump readiness of {len(report.hosts)} hosts (--for {report.purpose}): {summary}{stored}"
    )
    messages = {h.host: h.message for h in report.hosts if h.message}
    for finding, hosts in report.findings().items():
        typer.echo("")
        typer.echo(f"{finding}  ({len(hosts)} host{'s' if len(hosts) != 1 else ''})")
        for host in hosts:
            note = messages.get(host)
            typer.echo(f"    {host}" + (f": {note}" if note else ""))


@fleet_app.command("doctor", short_help="Readiness of every host; exit 1 if any fails.")
def doctor_cmd(
    *,
    inventory: _Inventory,
    limit: _Limit = None,
    forks: _Forks = 5,
    purpose: Annotated[
        str,
        typer.Option("--for", metavar="TRIGGER", help="nmi, oops, hang or all."),
    ] = "nmi",
    via: Annotated[
        str,
        typer.Option("--via", metavar="ansible|ssm", help="ssm: AWS Systems Manager Run Command."),
    ] = "ansible",
    region: Annotated[
        str | None, typer.Option("--region", metavar="REGION", help="AWS region (--via ssm).")
    ] = None,
    ssm_timeout: Annotated[
        float,
        typer.Option("--ssm-timeout", metavar="SECONDS", help="Per host, with --via ssm."),
    ] = 300.0,
    timeout: _Timeout = 600,
    db: DbOption = None,
    json_out: _Json = False,
) -> None:
    """Run the readiness collector on every host (Ansible's script module: a POSIX shell is
    enough; or, with --via ssm, AWS Systems Manager Run Command on hosts with an EC2
    instance_id), judge the facts here, keep them in the store, and print the hosts grouped
    by finding. Unreachable hosts are a finding. Exit 1 when any host fails."""
    from kdiag.errors import ConfigError  # noqa: PLC0415 - not for --help
    from kdiag.fleet.ansible import list_hosts  # noqa: PLC0415 - ansible, SQLAlchemy: not --help
    from kdiag.fleet.doctor import fleet_doctor, record_report  # noqa: PLC0415 - see above

    _check_options(forks=forks, purpose=purpose, timeout=timeout)
    if via not in ("ansible", "ssm"):
        raise ConfigError("--via must be ansible or ssm")
    if not 1 <= ssm_timeout <= 86_400:
        raise ConfigError("--ssm-timeout must be 1..86400 seconds")
    hostvars = list_hosts(inventory, limit)
    names = list(hostvars)
    bar = _Bar(f"{len(names)} hosts")
    context: AbstractContextManager[Any] = bar if names else nullcontext()
    with context:
        if via == "ssm":
            from kdiag.fleet.ssm import SSMOptions, fleet_doctor_ssm  # noqa: PLC0415 - boto3

            report = fleet_doctor_ssm(
                inventory,
                hostvars,
                limit=limit,
                forks=forks,
                purpose=purpose,
                options=SSMOptions(region=region, timeout=ssm_timeout),
                progress=bar,
            )
        else:
            report = fleet_doctor(
                inventory,
                limit=limit,
                forks=forks,
                purpose=purpose,
                progress=bar,
                hosts=names,
                timeout=timeout,
            )
    with open_store(db) as store:
        run = record_report(store, report)
    if json_out:
        print_json({"run_id": run.id, **report.to_json()})
    else:
        _print_report(report, run.id)
    if report.failed:
        raise typer.Exit(1)


@fleet_app.command("configure", short_help="Apply kdiag configure's fixes to every host.")
def configure_cmd(
    *,
    inventory: _Inventory,
    limit: _Limit = None,
    forks: _Forks = 5,
    check: Annotated[
        bool, typer.Option("--check", help="Ansible's dry run: change nothing.")
    ] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show each file's diff.")] = False,
    purpose: Annotated[
        str,
        typer.Option("--for", metavar="TRIGGER", help="nmi, oops, hang or all."),
    ] = "nmi",
    panic_timeout: Annotated[
        int, typer.Option("--panic-timeout", metavar="SECONDS", help="kernel.panic.")
    ] = 10,
    timeout: _Timeout = 600,
    json_out: _Json = False,
) -> None:
    """Plan each host's fixes from its own files (as kdiag configure would) and apply them
    with the playbook kdiag ships: idempotent, never reboots (the hosts that need one are
    listed). Hosts without Python get the same edits through raw shell commands (detected;
    the host variable kdiag_raw overrides). Exit 1 if a host failed."""
    from kdiag.fleet.ansible import list_hosts  # noqa: PLC0415 - ansible: not for --help
    from kdiag.fleet.configure import fleet_configure  # noqa: PLC0415 - see above

    _check_options(forks=forks, purpose=purpose, timeout=timeout)
    names = list(list_hosts(inventory, limit))
    with _Bar(f"{len(names)} hosts") as bar:
        report = fleet_configure(
            inventory,
            progress=bar,
            limit=limit,
            forks=forks,
            check=check,
            diff=diff,
            purpose=purpose,
            panic_timeout=panic_timeout,
            timeout=timeout,
        )
    if json_out:
        print_json(report.to_json())
    else:
        verb = "would change" if check else "changed"
        for host in report.hosts:
            if host.status == "changed":
                typer.echo(f"{host.host}: {verb} {', '.join(host.changed)}")
            elif host.status == "unchanged":
                typer.echo(f"{host.host}: nothing to change")
            else:
                typer.echo(f"{host.host}: {host.status}: {host.message}")
            for text in host.diffs if diff else ():
                sys.stdout.write(text)
        if report.reboot:
            typer.echo("")
            typer.echo(f"reboot needed (kdiag never reboots){' after applying' if check else ''}:")
            for name, paths in report.reboot.items():
                typer.echo(f"    {name}: {', '.join(paths)}")
    if report.failed:
        raise typer.Exit(1)


@fleet_app.command("drill", short_help="Drills across the inventory: canary, then batches.")
def drill_cmd(
    *,
    inventory: _Inventory,
    limit: _Limit = None,
    canary: Annotated[int, typer.Option("--canary", help="Hosts drilled first, alone.")] = 1,
    batch: Annotated[
        int, typer.Option("--batch", help="Hosts drilled (down) at once after the canary.")
    ] = 1,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="The kdiag service to send through (default: $KDIAG_ENDPOINT, else one "
            "served by this process on loopback).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Each drill's limit.")
    ] = 600.0,
    setup: Annotated[
        bool, typer.Option("--setup", help="First create the drill's IAM user and policy.")
    ] = False,
    db: DbOption = None,
    json_out: _Json = False,
) -> None:
    """Fire drills across the inventory's hosts (kdiag instances import them first): the
    canary first, then BATCH at a time, stopping at the first failure with its diagnosis.
    Every drill is recorded. Exit 1 when a drill failed."""
    from kdiag.cli.drill import _endpoint  # noqa: PLC0415 - the drill's own API fallback
    from kdiag.drill import setup as drill_setup  # noqa: PLC0415 - not for --help
    from kdiag.fleet.ansible import list_hosts, play_order  # noqa: PLC0415 - see above
    from kdiag.fleet.drill import (  # noqa: PLC0415 - see above
        DrillOutcome,
        fleet_drill,
        resolve_instances,
    )

    _check_options(canary=canary, batch=batch)
    hostvars = play_order(inventory, list_hosts(inventory, limit), limit)
    console = err_console()

    def show(o: DrillOutcome) -> None:
        why = f" ({o.code}: {o.summary})" if o.status != "pass" else ""
        console.print(f"{o.phase}: {o.host} {o.instance_id}: {o.status}{why}")

    with open_store(db) as store:
        ids = resolve_instances(store, hostvars)
        if setup:
            for iid in dict.fromkeys(ids.values()):
                instance = store.get_instance(iid)
                if instance is not None:
                    drill_setup(store, instance)
        first = store.get_instance(next(iter(ids.values())))
        region = first.region if first is not None else "us-east-1"
        with _endpoint(store, endpoint, region) as url:
            report = fleet_drill(
                store,
                inventory,
                endpoint=url,
                limit=limit,
                canary=canary,
                batch=batch,
                timeout=timeout,
                progress=show,
                hostvars=hostvars,
            )
    if json_out:
        print_json(report.to_json())
    else:
        for o in report.hosts:
            typer.echo(f"{o.host}\t{o.instance_id}\t{o.phase}\t{o.status}\t{o.code or '-'}")
        if report.stopped_at is not None:
            s = report.stopped_at
            typer.echo("")
            typer.echo(f"stopped at {s.host} ({s.instance_id}): {s.code}: {s.summary}")
            if s.fix:
                typer.echo(f"fix: {s.fix}")
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(fleet_app, name="fleet")
