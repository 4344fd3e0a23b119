"""``kdiag lab``: real Linux guests under QEMU with kdump armed, for demos and tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kdiag.cli._output import (
    Column,
    JsonOption,
    OutputOption,
    QueryOption,
    emit,
    emit_record,
    err_console,
    print_json,
)
from kdiag.errors import BackendTimeout, ConfigError

__all__ = ("register",)

lab_app = typer.Typer(
    help="Real Debian guests under QEMU with kdump armed: build, boot, crash, collect.",
    short_help="Real Debian guests under QEMU, kdump armed.",
    no_args_is_help=True,
)

_Root = Annotated[
    Path | None,
    typer.Option(
        "--root",
        metavar="DIR",
        help="Lab directory (default: the state dir's lab/).",
        envvar="KDIAG_LAB_ROOT",
    ),
]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_Arch = Annotated[
    str,
    typer.Option(
        "--arch",
        help="Guest architecture: x86_64 (-M pc) or arm64 (qemu-system-aarch64 -M virt, TCG).",
    ),
]
_Name = Annotated[str, typer.Argument(metavar="NAME", help="The guest's name.")]
_Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the vmcore (with --wait).")
]
_WaitDump = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait for the vmcore and print its path.")
]


def _lab(root: Path | None) -> Any:
    from kdiag.lab import Lab  # noqa: PLC0415 - kdiag.lab (qemu.qmp, asyncio) costs ~90 ms

    return Lab(root)


class _Progress:
    """A Rich status line on stderr for the long steps (downloads, unpacking, packing)."""

    def __init__(self) -> None:
        self.console = err_console()
        self.start = time.monotonic()
        self.status = self.console.status("lab build")

    def __enter__(self) -> _Progress:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.__exit__(None, None, None)

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        self.console.print(f"[dim]{elapsed:6.1f}s[/] {message}")
        self.status.update(message)


@lab_app.command("build", short_help="Assemble the guest image (cached).")
def build_cmd(
    root: _Root = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if nothing changed.")
    ] = False,
    arch: _Arch = "x86_64",
    json_out: _Json = False,
) -> None:
    """Download the Debian packages (cached) and assemble the guest kernel and initramfs."""
    with _Progress() as progress:
        info = _lab(root).build(progress, force=force, arch=arch)
    if json_out:
        print_json(info.to_json())
        return
    state = "cached" if info.cached else "built"
    typer.echo(f"{state}: {info.directory}")
    typer.echo(
        f"{info.arch} kernel {info.kernel_release} ({info.kernel_package} {info.kernel_version})"
    )
    typer.echo(
        f"main initramfs {info.main_initrd.stat().st_size} B, capture initramfs "
        f"{info.capture_initrd.stat().st_size} B"
    )
    no_crashme = "linux-headers missing" if info.arch == "x86_64" else f"not built for {info.arch}"
    typer.echo(
        f"crashme module: {'yes' if info.crashme else f'no ({no_crashme})'}; "
        f"facts collector: {'yes' if info.collector else 'no'}"
    )


@lab_app.command("up", short_help="Boot a guest.")
def up_cmd(
    *,
    name: Annotated[
        str, typer.Option("--name", help="Guest name: lowercase letters, digits, '-'.")
    ] = "lab",
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="Guest RAM (512M, 2G; default 512M, 1G on arm64)."),
    ] = None,
    cpus: Annotated[int, typer.Option("--cpus", help="Virtual CPUs (1-255).")] = 2,
    profile: Annotated[
        str, typer.Option("--profile", help="Guest profile (see `lab profiles`).")
    ] = "default",
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the readiness marker.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for readiness.")
    ] = 300.0,
    root: _Root = None,
    arch: _Arch = "x86_64",
    debian: Annotated[
        str | None,
        typer.Option(
            "--debian",
            help="Boot a real Debian 12 system instead (fresh or configured; see docs/lab.md).",
        ),
    ] = None,
    json_out: _Json = False,
) -> None:
    """Boot a guest (QMP socket, serial console to a file, kdump armed per profile).

    Ctrl-C before the guest is ready stops it again; with --no-wait it boots on its own.
    """
    _check_timeout(timeout)
    err = err_console()
    try:
        with _Progress() as progress:
            if debian is not None:
                from kdiag.lab.distro import debian_up  # noqa: PLC0415 - as _lab: start-up time

                if arch != "x86_64" or profile != "default":
                    raise ConfigError("--debian boots an x86_64 Debian image: no --arch/--profile")
                guest = debian_up(
                    _lab(root), name, debian, memory=memory or "512M", cpus=cpus, progress=progress
                )
            else:
                guest = _lab(root).up(
                    name=name,
                    profile=profile,
                    memory=memory or ("512M" if arch == "x86_64" else "1G"),
                    cpus=cpus,
                    progress=progress,
                    arch=arch,
                )
    except KeyboardInterrupt:
        err.print(f"{name}: interrupted; the guest is not running")  # Lab.up stopped it
        raise
    err.print(f"{guest.name}: accelerator {guest.accel} ({guest.config['accel_reason']})")
    if wait:
        started = time.monotonic()
        _wait_ready_or_stop(guest, timeout)
        err.print(
            f"{guest.name}: ready in {time.monotonic() - started:.1f}s, "
            f"kdump_loaded={int(bool(guest.status().get('kdump_loaded')))}"
        )
    if json_out:
        print_json(guest.to_json())
    else:
        typer.echo(f"qmp: {guest.qmp_socket}")
        typer.echo(f"console: {guest.console_path}")
        typer.echo(f"crash tree: {guest.crash_dir}")


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout}")


def _wait_ready_or_stop(guest: Any, timeout: float) -> None:
    """Wait for the readiness marker.  Ctrl-C stops the guest (it was started for this
    command); a timeout leaves it running for a look at its console, and says so."""
    err = err_console()
    try:
        with err.status(f"waiting for {guest.name} to be ready"):
            guest.wait_ready(timeout)
    except KeyboardInterrupt:
        with err.status(f"interrupted: stopping {guest.name}"):
            guest.down()
        err.print(f"{guest.name}: interrupted before it was ready; stopped")
        raise
    except BackendTimeout as exc:
        raise BackendTimeout(
            f"{exc}; the guest keeps running (kdiag lab down {guest.name} stops it)",
            target=guest.name,
        ) from exc


def _kdump(guest: dict[str, Any]) -> str:
    return {True: "loaded", False: "not loaded", None: "-"}[guest["kdump_loaded"]]


GUEST_COLUMNS = (
    Column("name", "name"),
    Column("profile", "profile"),
    Column("phase", "phase"),
    Column("kdump", _kdump),
    Column("accel", "accel"),
    Column("memory", lambda g: f"{g['memory_mib']}M"),
    Column("boots", "boots"),
    Column("dumps", "dumps"),
)

STATUS_COLUMNS = (
    *GUEST_COLUMNS,
    Column("arch", lambda g: g.get("arch", "x86_64")),
    Column("cpus", "cpus"),
    Column("crashes", "crashes"),
    Column("kernel", "kernel_release"),
    Column("qmp socket", "qmp_socket"),
    Column("console", "console_path"),
    Column("crash dir", "crash_dir"),
    Column("facts", "facts_path"),
    Column("last dump", "last_dump"),
    Column("dumps saved", "dumps_saved"),
)


@lab_app.command("list")
def list_cmd(
    root: _Root = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the lab's guests, running or stopped."""
    if root is not None and not root.is_dir():  # a typo must not read as "no guests"
        raise ConfigError(f"--root {root}: no such lab directory")
    guests = [g.to_json() for g in _lab(root).list()]
    emit(guests, guests, GUEST_COLUMNS, output=output, query=query, json_flag=json_out)


@lab_app.command("status")
def status_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The guest's name.")],
    root: _Root = None,
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one guest: phase, kdump, sockets, crash tree, dumps."""
    guest = _lab(root).get(name)
    data = guest.to_json()
    data["dumps_saved"] = [str(p) for p in guest.dumps()]
    emit_record(data, STATUS_COLUMNS, output=output, query=query, json_flag=json_out)


@lab_app.command("down")
def down_cmd(name: _Name, root: _Root = None) -> None:
    """Stop a guest (its console log and crash tree stay)."""
    guest = _lab(root).get(name)
    guest.down()
    typer.echo(f"{name}: stopped")


@lab_app.command(
    "ssh",
    short_help="SSH into a guest (or run one command).",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def ssh_cmd(
    ctx: typer.Context,
    name: _Name,
    root: _Root = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the ssh command instead of running it.")
    ] = False,
) -> None:
    """SSH into a running guest as root with the lab's key (host key pinned); words after
    NAME (after ``--``) are run as one command. Exit status is ssh's."""
    import os  # noqa: PLC0415 - only this command replaces the process
    import shlex  # noqa: PLC0415 - see above

    from kdiag.errors import IncorrectState  # noqa: PLC0415 - see above

    guest = _lab(root).get(name)
    access = guest.ssh
    if access is None:
        raise ConfigError(f"lab guest {name} was started without SSH (kdiag lab up it again)")
    if not guest.running:
        raise IncorrectState(f"lab guest {name} is not running")
    argv = access.argv(list(ctx.args))
    if print_only:
        typer.echo(shlex.join(argv))
        return
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - argv is a list; ssh replaces this process
    except FileNotFoundError:
        raise ConfigError("ssh is not installed (apt-get install openssh-client)") from None


@lab_app.command("inventory", short_help="An Ansible inventory of the running guests.")
def inventory_cmd(root: _Root = None) -> None:
    """Print an Ansible INI inventory of the running guests that have SSH (group ``lab``):
    loopback port, the lab's key and its pinned host key (for ``kdiag fleet``)."""
    from kdiag.lab.ssh import ansible_inventory  # noqa: PLC0415 - see _lab

    if root is not None and not root.is_dir():
        raise ConfigError(f"--root {root}: no such lab directory")
    hosts = [(g.name, g.ssh) for g in _lab(root).list() if g.running and g.ssh is not None]
    typer.echo(ansible_inventory([(n, a) for n, a in hosts if a is not None]), nl=False)


@lab_app.command("console", short_help="Print and follow a guest's serial console.")
def console_cmd(
    name: _Name,
    root: _Root = None,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", "-f", help="Keep following.")
    ] = True,
) -> None:
    """Print the guest's serial console and follow it until the guest stops (Ctrl-C ends)."""
    from kdiag.lab.console import follow as follow_lines  # noqa: PLC0415 - see _lab

    guest = _lab(root).get(name)
    if not follow:
        if guest.console_path.exists():
            sys.stdout.write(guest.console_path.read_text(errors="replace"))
        else:
            err_console().print(f"{guest.name}: no console output (the guest never started)")
        return
    for line in follow_lines(guest.console_path, stop=lambda: not guest.running):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@lab_app.command("define", short_help="Define a guest as a libvirt domain.")
def define_cmd(
    *,
    name: Annotated[
        str, typer.Option("--name", help="Guest and domain name: lowercase letters, digits, '-'.")
    ] = "lab",
    libvirt_uri: Annotated[
        str,
        typer.Option(
            "--libvirt-uri", metavar="URI", help="The libvirtd to define it in (qemu:///system)."
        ),
    ],
    memory: Annotated[str, typer.Option("--memory", help="Guest RAM (512M, 2G).")] = "512M",
    cpus: Annotated[int, typer.Option("--cpus", help="Virtual CPUs.")] = 2,
    profile: Annotated[
        str, typer.Option("--profile", help="Guest profile (see `lab profiles`).")
    ] = "default",
    accel: Annotated[str, typer.Option("--accel", help="tcg or kvm (domain type).")] = "tcg",
    start: Annotated[bool, typer.Option("--start/--no-start", help="Start the domain.")] = True,
    root: _Root = None,
) -> None:
    """Define (and start) a lab guest as a domain of a libvirtd, x86_64 only.

    Its files (kernel, initramfs, dump disk, console.log, crash/) go in the lab
    directory, which the daemon's QEMU user must be able to reach.  Prints the
    libvirt backend's target settings, for kdiag instances add --backend libvirt.
    """
    from kdiag.backends.libvirt import LibvirtSettings  # noqa: PLC0415 - see _lab
    from kdiag.lab.build import build  # noqa: PLC0415 - see _lab
    from kdiag.lab.domain import check_daemon, define  # noqa: PLC0415 - see _lab
    from kdiag.lab.guest import GuestSpec  # noqa: PLC0415 - see _lab

    LibvirtSettings.parse({"uri": libvirt_uri, "domain": name})  # refuse a bad URI first
    spec = GuestSpec.check(name, profile, memory, cpus)
    check_daemon(libvirt_uri, name)  # before a build that may download
    with _Progress() as progress:
        info = build(progress)
    defined = define(libvirt_uri, _lab(root).root, spec, info, accel=accel, start=start)
    err_console().print(
        f"{name}: defined in {libvirt_uri}{' and started' if defined.started else ''}; "
        f"console {defined.files.console}, crash tree {defined.files.crash_dir}"
    )
    print_json(defined.target)


@lab_app.command("nmi", short_help="Send an NMI through the qmp backend.")
def nmi_cmd(
    name: _Name,
    root: _Root = None,
    wait: _WaitDump = False,
    timeout: _Timeout = 300.0,
) -> None:
    """Send a diagnostic NMI through kdiag's qmp backend (inject-nmi on a running guest)."""
    _check_timeout(timeout)
    guest = _lab(root).get(name)
    result = guest.inject_nmi()
    typer.echo(f"{name}: {result.detail}")
    if wait:
        typer.echo(str(guest.wait_dump(timeout)))


@lab_app.command("trigger", short_help="Crash a guest the chosen way.")
def trigger_cmd(
    name: _Name,
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="sysrq-c, oom, hung-task, null, bug, gpf, warn, softlockup or rcu.",
        ),
    ],
    root: _Root = None,
    wait: _WaitDump = False,
    timeout: _Timeout = 300.0,
) -> None:
    """Crash the guest one of the KIND ways, through its command channel."""
    _check_timeout(timeout)
    guest = _lab(root).get(name)
    guest.trigger(kind)
    typer.echo(f"{name}: {kind} triggered")
    if wait:
        typer.echo(str(guest.wait_dump(timeout)))


PROFILE_COLUMNS = (Column("profile", "name"), Column("description", "description", wrap=True))


@lab_app.command("profiles")
def profiles_cmd(
    output: OutputOption = None,
    query: QueryOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the guest profiles.

    The JSON document maps each profile's name to its description.
    """
    from kdiag.lab.profiles import PROFILES  # noqa: PLC0415 - see _lab

    document = {p.name: p.description for p in PROFILES.values()}
    rows = [{"name": n, "description": d} for n, d in document.items()]
    emit(document, rows, PROFILE_COLUMNS, output=output, query=query, json_flag=json_out)


@lab_app.command("corpus", short_help="Crash a guest once per trigger, keep the dumps.")
def corpus_cmd(
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT_DIR", help="Where the dumps and manifest.json go.")
    ],
    *,
    trigger: Annotated[
        list[str] | None,
        typer.Option(
            "--trigger",
            metavar="KIND",
            help="nmi or a `lab trigger` KIND (repeat; default: all).",
        ),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="kdump-zlib, kdump-lzo, kdump-none, flattened-zlib or elf (repeat; default: all).",
        ),
    ] = None,
    memory: Annotated[str, typer.Option("--memory", help="Guest RAM (512M, 2G).")] = "512M",
    root: _Root = None,
    json_out: _Json = False,
) -> None:
    """Crash a guest once per trigger and save each dump in several formats, with a manifest."""
    from kdiag.lab.corpus import (  # noqa: PLC0415 - see _lab
        CORPUS_FORMATS,
        CORPUS_TRIGGERS,
        make_corpus,
    )

    with _Progress() as progress:
        manifest = make_corpus(
            out_dir,
            triggers=trigger or CORPUS_TRIGGERS,
            formats=fmt or tuple(CORPUS_FORMATS),
            memory=memory,
            lab=_lab(root),
            progress=progress,
        )
    if json_out:
        print_json(manifest)
    else:
        typer.echo(f"{len(manifest['dumps'])} dumps in {out_dir} (manifest.json)")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
