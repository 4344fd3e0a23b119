"""The drill's two progress displays: the live table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kdiag.cli.drill import _LiveProgress, _PlainProgress
from kdiag.drill.steps import ProgressEvent, StepClock


def _run_steps(show: object) -> None:
    clock = StepClock(show)  # type: ignore[arg-type]
    clock.start("readiness")
    clock.finish("readiness", "pass", "every check of the NMI chain passes")
    clock.start("send")
    clock.finish("send", "pass", "accepted")
    clock.start("panic")
    clock.note("panic", "QMP event GUEST_CRASHLOADED")


def test_live_table_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    live = _LiveProgress(console)
    with live.live:
        _run_steps(live)
        live(ProgressEvent("panic", "done", "", None))  # a done without a result is ignored
    text = out.getvalue()
    assert "SendDiagnosticInterrupt through the API" in text
    assert "pass" in text
    assert "panic: QMP event GUEST_CRASHLOADED" in text
    assert "the vmcore triaged" in text  # steps still to come are listed
    assert live.state["panic"][0] == "running"


def test_plain_lines_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    _run_steps(_PlainProgress())
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("] readiness: readiness (doctor on the instance's facts)")
    assert "readiness: pass (0.0 s) every check of the NMI chain passes" in lines[1]
    assert lines[-1].endswith("] panic:   QMP event GUEST_CRASHLOADED")
    assert all(line.startswith("[") for line in lines)
