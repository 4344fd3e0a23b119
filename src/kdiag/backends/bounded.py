"""A backend call bounded by its timeout, for SDKs that block and take no deadline of their
own (libvirt's C calls, sushy, pyghmi's login).

The call runs on a worker thread of its own, and the caller waits for it at most
``timeout`` seconds.  What a call abandoned at its deadline means depends on one thing:
whether the request that delivers the NMI had started.  So the worker passes a gate just
before it sends (:meth:`BoundedCall.send`), and the caller closes the gate when it gives
up; both under one lock, so exactly one of them wins:

- the caller gave up first: :class:`~kdiag.errors.BackendTimeout`, nothing was sent, and
  the abandoned worker, should it ever reach the gate, is refused there and never sends
  (a retry cannot make a second NMI);
- the worker passed first: :class:`~kdiag.errors.DeliveryUnconfirmed`, the NMI may have
  left (never a success, never retried).

Workers are daemon threads: one stuck in C or in an SDK's login must not hold up the
interpreter's exit, and cannot be stopped, only abandoned.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

from kdiag.errors import BackendTimeout, DeliveryUnconfirmed

__all__ = ("BoundedCall",)

_T = TypeVar("_T")


class BoundedCall:
    """One call: the gate its delivering request passes, and the wait for it.

    :param where: the target as messages name it (``"Redfish https://bmc system 1 (i-...)"``).
    :param request: what delivers the NMI, in ``"after {request} was sent"``.
    :param instance_id: the instance the errors are about.
    :param timeout: seconds the caller waits for the whole call.
    """

    def __init__(self, where: str, request: str, instance_id: str, timeout: float) -> None:
        self.where = where
        self.request = request
        self.instance_id = instance_id
        self.timeout = timeout
        self.sent = threading.Event()
        """Set once the worker passed the gate: the request may be on its way."""
        self._lock = threading.Lock()
        self._open = True

    def send(self) -> None:
        """Called by the worker just before the delivering request.

        :raises BackendTimeout: the caller already gave up; the request must not start.
        """
        with self._lock:
            if not self._open:
                raise BackendTimeout(
                    f"{self.where}: abandoned before {self.request} was sent; NMI not sent",
                    target=self.instance_id,
                )
            self.sent.set()

    def _give_up(self) -> bool:
        """Close the gate; whether the worker had passed it."""
        with self._lock:
            self._open = False
            return self.sent.is_set()

    def run(self, work: Callable[[], _T], *, thread_name: str) -> _T:
        """``work()`` on a worker thread, waited for at most ``timeout`` seconds; its result
        or its exception.

        :raises BackendTimeout: no answer in time, before the gate was passed.
        :raises DeliveryUnconfirmed: no answer in time, after it.
        """
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def worker() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(work())
            except Exception as exc:  # noqa: BLE001 - handed to the caller via the future
                future.set_exception(exc)

        threading.Thread(target=worker, name=thread_name, daemon=True).start()
        # wait() rather than result(timeout): a TimeoutError raised *by* the work is its own
        # error to map, not the caller's deadline
        done, _ = concurrent.futures.wait([future], self.timeout)
        if done:
            return future.result()
        if self._give_up():
            raise DeliveryUnconfirmed(
                f"{self.where}: no answer in {self.timeout:g} s after {self.request} was "
                "sent; delivery of the NMI is unconfirmed",
                target=self.instance_id,
            )
        raise BackendTimeout(
            f"{self.where}: no answer in {self.timeout:g} s", target=self.instance_id
        )
