"""``kdiag drill``: the fire drill, its schedule and its history.

- ``kdiag drill INSTANCE_ID``: send an NMI through the API as the drill's user, watch the
  panic, the capture and the reboot, find and triage the new vmcore; a live display on a
  terminal (plain progress lines on stderr otherwise), then the report.  Exit 0 pass,
  1 fail.
- ``kdiag drill --print-timer INSTANCE_ID`` / ``--cron``: a weekly schedule for it.
- ``kdiag drill history [INSTANCE_ID]``: verdicts, diagnoses and step timings over time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kdiag.cli._output import Column, emit, err_console, print_json
from kdiag.cli._store import DbOption, open_store
from kdiag.errors import ConfigError

if TYPE_CHECKING:
    from kdiag.drill.steps import ProgressEvent
    from kdiag.store import Store

__all__ = ("register",)

_STEP_ORDER = ("readiness", "send", "panic", "reboot", "dump", "triage")


def _steps_cell(record: dict[str, Any]) -> str:
    parts = []
    for step in record["steps"]:
        secs = step.get("seconds")
        mark = {"pass": "", "warn": "!", "fail": "x", "skipped": ""}.get(step["status"], "?")
        parts.append(f"{step['name']}={'-' if secs is None else f'{secs:.1f}'}{mark}")
    return " ".join(parts)


HISTORY_COLUMNS = (
    Column("id", "id"),
    Column("started", lambda r: r["started_at"][:19].replace("T", " ")),
    Column("instance", "instance_id"),
    Column("verdict", "verdict"),
    Column("diagnosis", "diagnosis"),
    Column("seconds", lambda r: f"{r['seconds']:.1f}"),
    Column("steps", _steps_cell, wrap=True),
)


# ---------------------------------------------------------------------------- progress


class _PlainProgress:
    """One line per step start, observation and result, on stderr (a pipe, a log, cron)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, event: ProgressEvent) -> None:
        at = time.monotonic() - self.t0
        if event.kind == "start":
            line = f"{event.step}: {event.message}"
        elif event.kind == "note":
            line = f"{event.step}:   {event.message}"
        else:
            assert event.result is not None
            secs = "" if event.result.seconds is None else f" ({event.result.seconds:.1f} s)"
            line = f"{event.step}: {event.result.status}{secs} {event.result.detail}".rstrip()
        sys.stderr.write(f"[{at:6.1f}s] {line}\n")
        sys.stderr.flush()


class _LiveProgress:
    """A Rich live table of the six steps: spinner and running time on the current one,
    status and time on the finished ones, the latest observation below."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live  # noqa: PLC0415 - Rich costs start-up time

        self.console = console
        self.state: dict[str, tuple[str, float | None, str]] = {}
        self.started: dict[str, float] = {}
        self.last_note = ""
        self.live = Live(self, console=console, refresh_per_second=4, transient=False)

    def __rich__(self) -> Any:
        from rich.spinner import Spinner  # noqa: PLC0415 - Rich costs start-up time
        from rich.table import Table  # noqa: PLC0415 - see above

        from kdiag.drill.steps import TITLES  # noqa: PLC0415 - not for --help

        table = Table.grid(padding=(0, 2))
        colours = {"pass": "green", "warn": "yellow", "fail": "red", "skipped": "bright_black"}
        for step in _STEP_ORDER:
            status, secs, detail = self.state.get(step, ("", None, ""))
            if status == "running":
                elapsed = time.monotonic() - self.started[step]
                table.add_row(Spinner("dots"), TITLES[step], f"{elapsed:5.1f} s", "")
            elif status:
                shown = "-" if secs is None else f"{secs:5.1f} s"
                table.add_row(
                    f"[{colours.get(status, 'white')}]{status}[/]",
                    TITLES[step],
                    shown,
                    detail[:60],
                )
            else:
                table.add_row("[bright_black]...[/]", f"[bright_black]{TITLES[step]}[/]", "", "")
        if self.last_note:
            table.add_row("", f"[bright_black]{self.last_note[:100]}[/]", "", "")
        return table

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "start":
            self.started[event.step] = time.monotonic()
            self.state[event.step] = ("running", None, "")
        elif event.kind == "note":
            self.last_note = f"{event.step}: {event.message}"
        elif event.result is not None:
            self.state[event.step] = (
                event.result.status,
                event.result.seconds,
                event.result.detail,
            )
        self.live.refresh()


@contextlib.contextmanager
def _progress(json_out: bool) -> Iterator[Any]:
    console = err_console()
    if console.is_terminal and not json_out:
        live = _LiveProgress(console)
        with live.live:
            yield live
    else:
        yield _PlainProgress()


@contextlib.contextmanager
def _endpoint(store: Store, given: str | None, region: str) -> Iterator[str]:
    """``--endpoint``, else ``$KDIAG_ENDPOINT``, else the API served by this process on a
    loopback port for the drill's duration (the same HTTP, SigV4, policy and audit path)."""
    url = given or os.environ.get("KDIAG_ENDPOINT")
    if url:
        yield url
        return
    from kdiag.backends.base import BackendPool  # noqa: PLC0415 - not for --help
    from kdiag.service import ServiceContext, create_app  # noqa: PLC0415 - see above
    from kdiag.service.server import ServerThread  # noqa: PLC0415 - see above

    ctx = ServiceContext(store, regions=(region,), backends=BackendPool())
    try:
        with ServerThread(create_app(ctx)) as server:
            sys.stderr.write(f"(serving the API for this drill at {server.url})\n")
            yield server.url
    finally:
        ctx.close()


@contextlib.contextmanager
def _none() -> Iterator[str]:
    yield ""


def _kdiag_path() -> str:
    argv0 = Path(sys.argv[0])
    if argv0.name == "kdiag" and argv0.exists():
        return str(argv0.resolve())
    beside = Path(sys.executable).parent / "kdiag"  # the venv this kdiag runs from
    found = str(beside) if beside.is_file() else shutil.which("kdiag")
    if found is None:
        raise ConfigError("cannot find the kdiag executable to schedule (put it on PATH)")
    return str(Path(found).resolve())


def _schedule(instance_id: str, options: list[str], timeout: float, *, cron: bool) -> None:
    from kdiag.drill.timers import cron_line, systemd_units  # noqa: PLC0415 - not for --help

    kdiag = _kdiag_path()
    if cron:
        sys.stdout.write(cron_line(instance_id, kdiag, options))
    else:
        sys.stdout.write(systemd_units(instance_id, kdiag, options, timeout=timeout).render())


def _history(instance_id: str | None, db: str | None, json_out: bool, limit: int) -> None:
    from kdiag.drill import history  # noqa: PLC0415 - not for --help
    from kdiag.store.ids import check_instance_id  # noqa: PLC0415 - see above

    if instance_id is not None:
        check_instance_id(instance_id)
    with open_store(db) as store:
        rows = [r.to_json() for r in history(store, instance_id, limit=limit)]
    emit({"Drills": rows}, rows, HISTORY_COLUMNS, json_flag=json_out)


def drill(
    instance_id: Annotated[
        str,
        typer.Argument(
            metavar="INSTANCE_ID|history",
            help="The instance to drill (i-...), or 'history' to list past drills.",
        ),
    ],
    history_of: Annotated[
        str | None,
        typer.Argument(metavar="[INSTANCE_ID]", help="With 'history': only this instance."),
    ] = None,
    *,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="The kdiag service to send through (default: $KDIAG_ENDPOINT, else the API "
            "served by this process on loopback for the drill).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="The whole drill's limit.")
    ] = 600.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    setup: Annotated[
        bool,
        typer.Option("--setup", help="First create the drill's IAM user, policy and key."),
    ] = False,
    dump_dir: Annotated[
        Path | None,
        typer.Option(
            "--dump-dir",
            metavar="DIR",
            help="Where the machine's dumps appear (a mounted or synced /var/crash).",
        ),
    ] = None,
    facts: Annotated[
        Path | None,
        typer.Option(
            "--facts", metavar="FILE", help="The machine's readiness facts (collector JSON)."
        ),
    ] = None,
    host_dump: Annotated[
        bool,
        typer.Option(
            "--host-dump",
            help="QEMU instances: when the guest's capture fails, dump its memory from the host.",
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Send nothing: follow and judge the next NMI anyone sends through the API.",
        ),
    ] = False,
    print_timer: Annotated[
        bool,
        typer.Option("--print-timer", help="Print a weekly systemd timer + service; no drill."),
    ] = False,
    cron: Annotated[
        bool, typer.Option("--cron", help="Print a weekly crontab line instead; no drill.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=1000, help="History: newest N.")
    ] = 100,
    db: DbOption = None,
) -> None:
    """Fire drill: NMI through the API, panic, kdump, reboot, vmcore, triage. Exit 1 on fail.

    'kdiag drill history [INSTANCE_ID]' lists past drills with their step timings.
    """
    if instance_id == "history":
        _history(history_of, db, json_out, limit)
        return
    if history_of is not None:
        raise ConfigError(f"unexpected argument {history_of!r} (only 'history' takes two)")
    from kdiag.store.ids import check_instance_id  # noqa: PLC0415 - not for --help

    check_instance_id(instance_id)
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout}")
    if print_timer or cron:
        options = [f"--timeout={timeout:g}"]
        options += [f"--endpoint={endpoint}"] if endpoint else []
        options += [f"--dump-dir={dump_dir.resolve()}"] if dump_dir else []
        options += [f"--facts={facts.resolve()}"] if facts else []
        options += ["--host-dump"] if host_dump else []
        options += [f"--db={db}"] if db else []
        _schedule(instance_id, options, timeout, cron=cron)
        return
    if dump_dir is not None and not dump_dir.is_dir():
        raise ConfigError(f"--dump-dir {dump_dir} is not a directory")
    _run(
        instance_id,
        endpoint=endpoint,
        timeout=timeout,
        json_out=json_out,
        setup=setup,
        dump_dir=dump_dir,
        facts=facts,
        host_dump=host_dump,
        watch=watch,
        db=db,
    )


def _run(
    instance_id: str,
    *,
    endpoint: str | None,
    timeout: float,
    json_out: bool,
    setup: bool,
    dump_dir: Path | None,
    facts: Path | None,
    host_dump: bool,
    watch: bool,
    db: str | None,
) -> None:
    from kdiag.drill import format_report, run_drill  # noqa: PLC0415 - not for --help
    from kdiag.drill import setup as drill_setup  # noqa: PLC0415 - see above
    from kdiag.errors import InvalidInstanceIDNotFound  # noqa: PLC0415 - see above

    with open_store(db) as store:
        instance = store.get_instance(instance_id)
        if instance is None:
            raise InvalidInstanceIDNotFound(f"the instance ID '{instance_id}' does not exist")
        if setup:
            for line in drill_setup(store, instance):
                sys.stderr.write(f"setup: {line}\n")
        endpoint_of = _endpoint(store, endpoint, instance.region) if not watch else _none()
        with endpoint_of as url, _progress(json_out) as show:
            report = run_drill(
                store,
                instance_id,
                endpoint=url,
                timeout=timeout,
                progress=show,
                dump_dir=dump_dir,
                facts_path=facts,
                host_dump=host_dump,
                watch_api=watch,
            )
    if json_out:
        print_json(report.to_json())
    else:
        sys.stdout.write(format_report(report))
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("drill", short_help="Fire drill: prove an NMI gives a usable dump.")(drill)
