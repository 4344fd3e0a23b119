"""``kdiag configure``: render and apply the kdump configuration doctor asks for."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kdiag.errors import ConfigError, ReadinessError
from kdiag.readiness.registry import TRIGGERS

__all__ = ("register",)


def configure(
    *,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Configure the image or chroot at DIR instead of this machine.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the unified diff (and, on stderr, what --install would install); "
            "change nothing.",
        ),
    ] = False,
    panic_timeout: Annotated[
        int,
        typer.Option(
            "--panic-timeout", metavar="SECONDS", help="kernel.panic: seconds before the reboot."
        ),
    ] = 10,
    crashkernel: Annotated[
        str | None,
        typer.Option(
            "--crashkernel",
            metavar="VALUE",
            help="crashkernel= value (e.g. 256M, or 1G-4G:192M,4G-:256M by RAM); default: "
            "keep the configured one when it is enough, else the architecture's "
            "recommendation.",
        ),
    ] = None,
    purpose: Annotated[
        str,
        typer.Option(
            "--for",
            metavar="TRIGGER",
            help=f"{', '.join(TRIGGERS)} or all: hang and all add the lockup and hung-task panics.",
        ),
    ] = "nmi",
    hyperv_fallback: Annotated[
        bool,
        typer.Option(
            "--hyperv-fallback",
            help="Keep Hyper-V's synthetic drivers out of the capture kernel even on current "
            "kernels (after an end-to-end test hung; never on Generation 2 VMs).",
        ),
    ] = False,
    install: Annotated[
        bool,
        typer.Option(
            "--install",
            help="First install the missing kdump packages, without prompts (apt-get update "
            "first on Debian and Ubuntu).",
        ),
    ] = False,
    user_data: Annotated[
        bool,
        typer.Option(
            "--user-data",
            help="Print a cloud-init script for a target machine instead (--distro, --arch, "
            "--ram; what is not given is read from --root or this machine).",
        ),
    ] = False,
    distro: Annotated[
        str | None,
        typer.Option(
            "--distro",
            metavar="ID",
            help="Target of --user-data: an os-release ID (debian, ubuntu, rhel, sles, ...).",
        ),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            metavar="ARCH",
            help="Target of --user-data: x86_64, aarch64, ppc64le or s390x.",
        ),
    ] = None,
    ram: Annotated[
        str | None,
        typer.Option(
            "--ram",
            metavar="SIZE",
            help="Target of --user-data: its RAM (e.g. 2G), to explain crashkernel=.",
        ),
    ] = None,
    ansible: Annotated[
        bool,
        typer.Option(
            "--ansible",
            help="Print an idempotent Ansible playbook applying these fixes instead (never "
            "reboots); kdiag fleet configure plans each host of an inventory.",
        ),
    ] = False,
) -> None:
    """Make doctor pass: kdump, the panic sysctls and crashkernel= for the distribution
    found. Shows the diff, edits in place, keeps FILE.kdiag-bak backups."""
    target = str(root) if root is not None else "/"
    if user_data:
        sys.stdout.write(
            _user_data(
                target,
                distro,
                arch,
                ram,
                panic_timeout=panic_timeout,
                crashkernel_size=crashkernel,
                purpose=purpose,
            )
        )
        return
    if distro or arch or ram:
        raise ConfigError("--distro, --arch and --ram describe a --user-data target")
    if ansible:
        from kdiag.fleet.configure import playbook_for  # noqa: PLC0415 - not for --help
        from kdiag.readiness import configure as cfg  # noqa: PLC0415 - not for --help

        plan = cfg.plan(
            target,
            panic_timeout=panic_timeout,
            crashkernel_size=crashkernel,
            purpose=purpose,
            hyperv_fallback=hyperv_fallback,
        )
        sys.stdout.write(playbook_for(plan))
        return
    _configure(
        target,
        dry_run=dry_run,
        install=install,
        panic_timeout=panic_timeout,
        crashkernel_size=crashkernel,
        purpose=purpose,
        hyperv_fallback=hyperv_fallback,
    )


def _user_data(
    root: str, distro: str | None, arch: str | None, ram: str | None, **options: Any
) -> str:
    from kdiag.readiness import crashkernel as ck  # noqa: PLC0415 - not for --help
    from kdiag.readiness import userdata  # noqa: PLC0415 - not for --help

    try:
        ram_bytes = ck.parse_size(ram) if ram is not None else None
    except ConfigError as exc:
        raise ConfigError(f"--ram: {exc}") from exc
    if distro and arch:
        target = userdata.Target(distro, arch, ram_bytes)
    else:
        found = userdata.target_of(root)
        target = userdata.Target(distro or found.distro, arch or found.arch, ram_bytes or found.ram)
    return userdata.user_data(target, **options)


def _configure(target: str, *, dry_run: bool, install: bool, **options: Any) -> None:
    from kdiag.readiness import configure as cfg  # noqa: PLC0415 - not for --help

    plan = cfg.plan(target, **options)
    commands = cfg.install_commands(plan) if plan.missing_packages else []
    shown = " && ".join(shlex.join(cmd) for cmd in commands)
    if install and commands and not dry_run:
        # Install first: the packages' own files (kdump-tools' conffiles among them) must
        # exist before configure edits them, or dpkg stops at a conffile prompt.
        _install(commands)
        plan = cfg.plan(target, **options)
    sys.stdout.write(plan.diff())
    if dry_run:
        if commands:
            verb = "would install" if install else "missing packages (--install runs)"
            typer.echo(f"{verb}: {shown}", err=True)
        for note in plan.notes:
            typer.echo(f"note: {note}", err=True)
        return
    if commands and not install:
        typer.echo(f"missing packages; install them with: {shown}")
    elif install and not commands:
        typer.echo("kdump packages already installed")
    _apply(target, plan)


def _install(commands: list[list[str]]) -> None:
    for cmd in commands:
        typer.echo(f"installing: {shlex.join(cmd)}")
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            raise ReadinessError(f"package installation failed (exit {proc.returncode})")


def _apply(target: str, plan: Any) -> None:
    """Write the plan and say what was written and what is left to do."""
    from kdiag.readiness import configure as cfg  # noqa: PLC0415 - not for --help

    out = typer.echo
    if not plan.changes:
        out(f"{target}: nothing to change ({plan.family} family)")
    for path in cfg.apply(plan):
        change = next(c for c in plan.changes if c.path == path)
        backup = f" (backup {path}{cfg.BACKUP_SUFFIX})" if change.old is not None else ""
        out(f"wrote {path}{backup}: {'; '.join(change.reasons)}")
    for note in plan.notes:
        out(f"note: {note}")
    if plan.commands:
        out("then run: " + "; ".join(plan.commands))
    if plan.needs_reboot:
        out("reboot needed for: " + ", ".join(plan.needs_reboot) + " (crashkernel=)")


def register(app: typer.Typer) -> None:
    app.command("configure", short_help="Apply the fixes doctor asks for.")(configure)
