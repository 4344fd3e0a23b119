"""The six steps of a drill, their results, and the progress events a caller sees.

A step is timed from the moment the drill starts it to the moment its outcome is known;
``status`` is ``pass``, ``warn`` (readiness only: the drill goes on and proves what the
checks predict), ``fail`` or ``skipped`` (an earlier step failed, so it could not run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = (
    "STEPS",
    "TITLES",
    "ProgressEvent",
    "ProgressFn",
    "StepClock",
    "StepResult",
)

#: The steps in order (issue 13): readiness, send, panic observed, capture and reboot
#: observed, the new vmcore found, the vmcore triaged.
STEPS = ("readiness", "send", "panic", "reboot", "dump", "triage")

TITLES = {
    "readiness": "readiness (doctor on the instance's facts)",
    "send": "SendDiagnosticInterrupt through the API",
    "panic": "panic observed",
    "reboot": "capture and reboot observed (new boot)",
    "dump": "the new vmcore found",
    "triage": "the vmcore triaged (class nmi, after our send, same release)",
}

STATUSES = ("pass", "warn", "fail", "skipped")


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step's outcome: ``seconds`` is ``None`` for a step that never ran."""

    name: str
    status: str
    seconds: float | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        seconds = None if self.seconds is None else round(self.seconds, 3)
        return {"name": self.name, "status": self.status, "seconds": seconds, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What a progress callback receives: ``kind`` is ``start`` (a step begins), ``note``
    (something was observed during it: ``message``) or ``done`` (``result`` is set)."""

    step: str
    kind: str
    message: str = ""
    result: StepResult | None = None


ProgressFn = Callable[[ProgressEvent], None]


def _quiet(_event: ProgressEvent) -> None:
    return None


class StepClock:
    """Times the steps and tells the progress callback; collects the results in order."""

    def __init__(self, progress: ProgressFn | None = None) -> None:
        self._progress = progress or _quiet
        self._started: dict[str, float] = {}
        self.results: dict[str, StepResult] = {}

    def start(self, step: str) -> None:
        self._started[step] = time.monotonic()
        self._emit(ProgressEvent(step, "start", TITLES.get(step, step)))

    def note(self, step: str, message: str) -> None:
        self._emit(ProgressEvent(step, "note", message))

    def finish(self, step: str, status: str, detail: str = "") -> StepResult:
        begun = self._started.get(step)
        seconds = None if begun is None else time.monotonic() - begun
        result = StepResult(step, status, seconds, detail)
        self.results[step] = result
        self._emit(ProgressEvent(step, "done", detail, result))
        return result

    def skip_rest(self, detail: str = "an earlier step failed") -> None:
        for step in STEPS:
            if step not in self.results:
                self.results[step] = StepResult(step, "skipped", None, detail)
                self._emit(ProgressEvent(step, "done", detail, self.results[step]))

    def ordered(self) -> tuple[StepResult, ...]:
        return tuple(self.results[s] for s in STEPS if s in self.results)

    def _emit(self, event: ProgressEvent) -> None:
        try:
            self._progress(event)
        except Exception:  # noqa: BLE001 - a broken display must not break the drill
            self._progress = _quiet
