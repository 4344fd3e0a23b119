"""Several worker processes on one listening socket (``kdiag serve --workers N``).

The supervisor (the ``kdiag serve`` process) binds the socket, migrates and reconciles the
database once, then forks ``N`` workers, each serving the inherited socket with its own
store connection, backends and event loop; the kernel hands each new connection to one of
them.  They share nothing in memory: the replay ledger, the token buckets and the audit
log are in the database, so one worker or ``N`` (or ``N`` hosts on one PostgreSQL) answer
alike.

SIGTERM or SIGINT to the supervisor is passed to every worker, which finishes its requests
in flight and exits; the supervisor returns the signal once all have exited.  A worker that
dies otherwise (SIGKILL, a crash) is replaced, at most :data:`MAX_RESTARTS` times in
:data:`RESTART_WINDOW` seconds; past that the supervisor stops the others and gives up.
The supervisor holds no threads when it forks (the caller must not have started any).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

__all__ = ("MAX_RESTARTS", "RESTART_WINDOW", "WorkersFailed", "run_workers")

log = logging.getLogger("kdiag.service")

#: Worker replacements allowed within :data:`RESTART_WINDOW` seconds.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WorkersFailed(RuntimeError):
    """Workers kept dying: the supervisor stopped the others and gave up."""


def _start(worker: Callable[[int], int], index: int) -> int:
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the supervisor's code
        status = 1
        try:
            for sig in _STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            status = worker(index)
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            logging.shutdown()
            os._exit(status)
    return pid


def run_workers(
    count: int, worker: Callable[[int], int], *, on_start: Callable[[int, int], None] | None = None
) -> signal.Signals | None:
    """Run ``worker(index)`` in ``count`` forked processes until they all exit; the signal
    that stopped them (None: they stopped on their own).

    :param on_start: called with (index, pid) whenever a worker starts (tests, logging).
    :raises WorkersFailed: workers died more than :data:`MAX_RESTARTS` times in a window.
    """
    received: list[signal.Signals] = []
    workers: dict[int, int] = {}  # pid -> index

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in _STOP_SIGNALS}
    deaths: list[float] = []
    try:
        for index in range(count):
            pid = _start(worker, index)
            workers[pid] = index
            if on_start is not None:
                on_start(index, pid)
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = workers.pop(pid, -1)
            if index < 0 or received:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d (pid %d) ended with status %d: replacing it", index, pid, code)
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
            if len(deaths) > MAX_RESTARTS:
                forward(signal.SIGTERM, None)
                received.clear()
                _reap(workers)
                raise WorkersFailed(
                    f"workers died {len(deaths)} times within {RESTART_WINDOW:g} s; stopped"
                )
            pid = _start(worker, index)
            workers[pid] = index
            if on_start is not None:
                on_start(index, pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else None


def _reap(workers: dict[int, int]) -> None:
    while workers:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            return
        workers.pop(pid, None)
