"""BoundedCall: the worker, the wait and the gate that libvirt, redfish and ipmi share."""

from __future__ import annotations

import threading

import pytest

from kdiag.backends.bounded import BoundedCall
from kdiag.errors import BackendTimeout, DeliveryUnconfirmed

IID = "i-0123456789abcdef0"


def _call(timeout: float = 0.2) -> BoundedCall:
    return BoundedCall("bmc 1", "the reset", IID, timeout)


def test_the_work_answers_or_raises_through_the_call():
    assert _call(30).run(lambda: 42, thread_name="t") == 42

    def fails() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        _call(30).run(fails, thread_name="t")


def test_a_timeout_raised_by_the_work_is_its_own_not_the_deadline():
    def times_out() -> None:
        raise TimeoutError("the SDK's own")

    with pytest.raises(TimeoutError, match="the SDK's own"):
        _call(30).run(times_out, thread_name="t")


def test_given_up_before_the_gate_is_a_timeout_and_the_worker_never_sends_later():
    call = _call()
    release, finished = threading.Event(), threading.Event()
    sent: list[str] = []
    outcome: list[BaseException] = []
    names: list[tuple[str, bool]] = []

    def work() -> None:
        me = threading.current_thread()
        names.append((me.name, me.daemon))
        release.wait(60)
        try:
            call.send()
            sent.append("NMI")
        except BackendTimeout as exc:
            outcome.append(exc)
        finally:
            finished.set()

    with pytest.raises(BackendTimeout, match=r"^bmc 1: no answer in 0\.2 s$") as caught:
        call.run(work, thread_name="kdiag-test")
    assert caught.value.target == IID
    assert not call.sent.is_set()
    release.set()  # the abandoned worker reaches the gate now
    assert finished.wait(60)
    assert sent == []
    assert "abandoned before the reset was sent" in str(outcome[0])
    assert names == [("kdiag-test", True)]


def test_given_up_after_the_gate_is_unconfirmed():
    call = _call()
    release = threading.Event()

    def work() -> None:
        call.send()
        release.wait(60)

    try:
        with pytest.raises(DeliveryUnconfirmed, match="after the reset was sent") as caught:
            call.run(work, thread_name="t")
    finally:
        release.set()
    assert "delivery of the NMI is unconfirmed" in str(caught.value)
    assert call.sent.is_set()
