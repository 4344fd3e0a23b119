"""``kdiag analyze DUMP``: triage a crash dump without debuginfo.

Prints crash's ``sys``-like block, the panic class and crash signature, and the last log
lines; ``--json`` one JSON object, ``--log`` the whole kernel log exactly as
``makedumpfile --dump-dmesg`` writes it. ``--debuginfo VMLINUX`` (``kdiag[drgn]``) adds the
task count and load average after checking that the vmlinux is the dump's kernel.

Start-up matters (a second on a slow box is the budget for the whole run): Rich is imported
only when a step has already taken a second and a progress bar is worth showing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ("analyze", "register")

_PROGRESS_AFTER = 1.0


class _LazyProgress:
    """The ``progress`` callback of kdiag.vmcore.open: a Rich bar on stderr, but only for a
    step that has run longer than a second (small dumps never import Rich)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        now = time.monotonic()
        start = self.started.setdefault(step, now)
        if self.bar is None:
            if now - start < _PROGRESS_AFTER or not sys.stderr.isatty():
                return
            from rich.progress import Progress

            from kdiag.cli._output import err_console

            self.bar = Progress(console=err_console(), transient=True)
            self.bar.start()
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total or None)
        self.bar.update(self.tasks[step], completed=done, total=total or None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _parse_rest(args: list[str]) -> tuple[Path, int, Path | None]:
    """DUMP, ``--lines N`` and ``--debuginfo VMLINUX`` from the arguments Typer left over.

    Typer (0.2x) builds a pydantic adapter for every non-boolean parameter, and importing
    pydantic alone costs about 90 ms, a third of the start-up budget of ``kdiag analyze``; so
    only the boolean flags are declared to Typer and the rest is parsed here.
    """
    dump: Path | None = None
    lines = 30
    debuginfo: Path | None = None
    it = iter(args)
    for arg in it:
        name, eq, inline = arg.partition("=")
        if name in ("--lines", "-n", "--debuginfo"):
            value = inline if eq else next(it, None)
            if value is None:
                raise typer.BadParameter(f"{name} needs a value")
            if name == "--debuginfo":
                debuginfo = Path(value)
            else:
                try:
                    lines = int(value)
                except ValueError:
                    raise typer.BadParameter(f"{name}: {value!r} is not a number") from None
                if lines < 0:
                    raise typer.BadParameter(f"{name} must be 0 or more")
        elif arg.startswith("-") and arg != "-":
            raise typer.BadParameter(f"no such option: {arg}")
        elif dump is None:
            dump = Path(arg)
        else:
            raise typer.BadParameter(f"unexpected extra argument {arg!r}")
    if dump is None:
        raise typer.BadParameter("missing argument DUMP")
    return dump, lines, debuginfo


def analyze(
    ctx: typer.Context,
    *,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    log: Annotated[
        bool, typer.Option("--log", help="Print the whole kernel log as makedumpfile does.")
    ] = False,
) -> None:
    """Triage a Linux crash dump: release, crash time, panic, class, signature, log.

    \b
    Usage: kdiag analyze [--json | --log] [--lines N] [--debuginfo VMLINUX] DUMP
      DUMP                 the crash dump (ELF, kdump, flattened, QEMU)
      --lines, -n N        log lines to show after the summary (default 30)
      --debuginfo VMLINUX  the dump's vmlinux with debuginfo: adds tasks and load
                           average through drgn (kdiag[drgn]); refused if it does not match
    """
    dump, lines, debuginfo = _parse_rest(list(ctx.args))
    from kdiag import vmcore
    from kdiag.vmcore.triage import triage

    progress = _LazyProgress()
    try:
        with vmcore.open(dump, progress=progress) as d:
            if log:
                sys.stdout.write(vmcore.format_dmesg(d.kernel_log()))
                return
            result = triage(d)
    finally:
        progress.close()

    extra: dict[str, Any] = {}
    if debuginfo is not None:
        from kdiag.vmcore.debuginfo import check_vmlinux, drgn_facts

        check_vmlinux(result, debuginfo)
        facts = drgn_facts(dump, debuginfo)
        extra = {"tasks": facts.tasks, "load_average": list(facts.load_average)}

    if json_out:
        from kdiag.cli._output import print_json

        print_json({**result.to_json(), **extra})
        return

    from kdiag.vmcore.describe import summary_block

    block = summary_block(result)
    if extra:
        block += f"{'TASKS':>14}: {extra['tasks']}\n"
        block += f"{'LOAD AVERAGE':>14}: {', '.join(extra['load_average'])}\n"
    out = [block]
    if lines and result.log:
        text = vmcore.format_dmesg(result.log[-lines:]).splitlines()[-lines:]
        out.append(f"\nLAST {len(text)} LOG LINES:\n")
        out.append("".join(line + "\n" for line in text))
    sys.stdout.write("".join(out))


def _bool_flags_without_pydantic() -> None:
    """Keep Typer from importing pydantic (about 90 ms) to coerce boolean flags.

    Typer 0.2x coerces every parameter through a pydantic ``TypeAdapter`` unless the value
    is already a bool; an absent ``--help`` arrives as ``None`` and so pulls pydantic in on
    every run. A bool flag only ever holds a bool or ``None``, so a pass-through coercion is
    exact. Applied only in processes that load this command; harmless if Typer changes (the
    private names are looked up defensively).
    """
    try:
        from typer import _coercion, core
    except ImportError:  # pragma: no cover - another Typer layout
        return
    param_cls: Any = getattr(core, "_TyperParameter", None)
    passthrough: Any = getattr(_coercion, "PassThroughRuntimeParam", None)
    if param_cls is None or passthrough is None or getattr(param_cls, "_kdiag_fast_bool", False):
        return
    original = param_cls.get_runtime_param

    def get_runtime_param(self: Any) -> Any:
        desc: Any = getattr(self, "type_descriptor", None)
        if getattr(self, "_runtime_param", 1) is None and getattr(desc, "annotation", None) is bool:
            self._runtime_param = passthrough(annotation=bool, parameter_info=desc.parameter_info)
        return original(self)

    param_cls.get_runtime_param = get_runtime_param
    param_cls._kdiag_fast_bool = True


def register(app: typer.Typer) -> None:
    _bool_flags_without_pydantic()
    app.command(
        "analyze",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(analyze)
