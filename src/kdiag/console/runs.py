"""Drills started from the console: each runs in a worker thread, its progress kept here.

:class:`DrillRuns` starts :func:`kdiag.drill.run_drill` for one instance (at most one run
per instance and :data:`MAX_RUNNING` in all), collects its progress events, and keeps the
finished run (verdict, diagnosis, steps) for the page that watches it.  A run belongs to
the account that started it; a page of another account never finds it.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kdiag import drill
from kdiag.console.sources import DrillStep
from kdiag.console.stored import drill_steps
from kdiag.errors import KdiagError, RequestLimitExceeded
from kdiag.store import Store

__all__ = ("MAX_RUNNING", "DrillRun", "DrillRuns", "RunDrill")

#: Drills the console runs at once (each holds a worker thread for minutes).
MAX_RUNNING = 4
#: Finished runs kept for their pages.
MAX_KEPT = 100
#: Progress lines kept per run.
MAX_EVENTS = 200

#: What runs a drill: ``(store, instance_id, endpoint, account_id, progress)`` -> report.
RunDrill = Callable[..., drill.DrillReport]


@dataclass
class DrillRun:
    """One drill started from the console (mutable: its worker fills it in)."""

    id: str
    account_id: str
    instance_id: str
    user_name: str
    started_at: dt.datetime
    events: list[str] = field(default_factory=list)
    step: str = ""
    done: bool = False
    verdict: str | None = None
    diagnosis: str | None = None
    steps: tuple[DrillStep, ...] = ()
    error: str | None = None

    def note(self, event: drill.ProgressEvent) -> None:
        if len(self.events) >= MAX_EVENTS:
            return
        self.step = event.step
        if event.kind == "start":
            self.events.append(f"{event.step}: started")
        elif event.kind == "done" and event.result is not None:
            r = event.result
            took = "" if r.seconds is None else f" in {r.seconds:.1f} s"
            self.events.append(
                f"{r.name}: {r.status}{took}" + (f" ({r.detail})" if r.detail else "")
            )
        elif event.message:
            self.events.append(f"{event.step}: {event.message}")


class DrillRuns:
    """The console's drill runs, shared by its request threads."""

    def __init__(self, store: Store, run: RunDrill | None = None, *, timeout: float = 600.0):
        self.store = store
        self._run = run if run is not None else _run_drill
        self.timeout = timeout
        self._runs: dict[str, DrillRun] = {}
        self._lock = threading.Lock()

    def start(self, account_id: str, instance_id: str, user_name: str, endpoint: str) -> DrillRun:
        """Start a drill of ``instance_id`` in a worker thread; the run to watch.

        :raises RequestLimitExceeded: a drill of that instance is running already, or
            :data:`MAX_RUNNING` drills are.
        """
        with self._lock:
            running = [r for r in self._runs.values() if not r.done]
            if any(r.instance_id == instance_id for r in running):
                raise RequestLimitExceeded(f"a drill of {instance_id} is running already")
            if len(running) >= MAX_RUNNING:
                raise RequestLimitExceeded(f"{MAX_RUNNING} drills are running; try again later")
            run = DrillRun(
                secrets.token_urlsafe(12),
                account_id,
                instance_id,
                user_name,
                dt.datetime.now(dt.UTC),
            )
            self._runs[run.id] = run
            finished = [r for r in self._runs.values() if r.done]
            for old in finished[: max(0, len(finished) - MAX_KEPT)]:
                del self._runs[old.id]
        thread = threading.Thread(
            target=self._work,
            args=(run, endpoint),
            name=f"console-drill-{instance_id}",
            daemon=True,
        )
        thread.start()
        return run

    def _work(self, run: DrillRun, endpoint: str) -> None:
        try:
            report = self._run(
                self.store,
                run.instance_id,
                endpoint=endpoint,
                account_id=run.account_id,
                timeout=self.timeout,
                progress=run.note,
            )
            run.verdict = "passed" if report.passed else "failed"
            run.diagnosis = (
                None if report.passed else (f"{report.diagnosis.code}: {report.diagnosis.summary}")
            )
            run.steps = drill_steps(report.steps)
        except KdiagError as exc:
            run.verdict, run.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - the worker ends the run whatever happened
            run.verdict, run.error = "failed", f"internal error: {type(exc).__name__}"
        finally:
            run.done = True

    def get(self, account_id: str, run_id: str) -> DrillRun | None:
        with self._lock:
            run = self._runs.get(run_id)
        return run if run is not None and run.account_id == account_id else None


def _run_drill(store: Store, instance_id: str, **kwargs: object) -> drill.DrillReport:
    return drill.run_drill(store, instance_id, **kwargs)  # type: ignore[arg-type]
