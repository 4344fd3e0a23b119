"""``kdiag configure``: render and apply the kdump configuration doctor asks for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ("register",)


def configure(
    *,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Configure the tree at DIR instead of this machine."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the unified diff only; change nothing.")
    ] = False,
    panic_timeout: Annotated[
        int, typer.Option("--panic-timeout", help="kernel.panic: seconds before the reboot.")
    ] = 10,
    crashkernel: Annotated[
        str | None,
        typer.Option(
            "--crashkernel",
            help="crashkernel= value (e.g. 256M or 2G-64G:256M,64G-:512M); default: keep the "
            "configured one, else the architecture's recommendation.",
        ),
    ] = None,
    purpose: Annotated[
        str,
        typer.Option(
            "--for", help="nmi (default), oops, hang or all: hang adds the lockup panics."
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
        typer.Option("--install", help="Install missing kdump packages with the package manager."),
    ] = False,
    user_data: Annotated[
        bool,
        typer.Option("--user-data", help="Print the configuration as a cloud-init script."),
    ] = False,
) -> None:
    """Configure kdump, the panic sysctls and crashkernel= for the distribution found."""
    from kdiag.errors import ReadinessError
    from kdiag.readiness import configure as cfg

    target = str(root) if root is not None else "/"
    plan = cfg.plan(
        target,
        panic_timeout=panic_timeout,
        crashkernel_size=crashkernel,
        purpose=purpose,
        hyperv_fallback=hyperv_fallback,
    )
    if user_data:
        sys.stdout.write(cfg.user_data(plan))
        return
    diff = plan.diff()
    sys.stdout.write(diff)
    if dry_run:
        return
    out = typer.echo
    if plan.missing_packages:
        command = cfg.install_command(plan)
        if install:
            out(f"installing: {' '.join(command)}")
            proc = subprocess.run(command, check=False)
            if proc.returncode != 0:
                raise ReadinessError(f"package installation failed (exit {proc.returncode})")
        else:
            out(f"missing packages; install them with: {' '.join(command)}")
    elif install:
        out("kdump packages already installed")
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
    app.command("configure")(configure)
