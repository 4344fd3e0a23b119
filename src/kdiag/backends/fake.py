"""FakeBackend: an in-library backend for tests, demos and benchmarks.

It records every call, and its behaviour is set per backend (constructor) or per instance
(the target settings stored with it, :class:`FakeSettings`):

``state``
    what :meth:`FakeBackend.state` reports (an :class:`~kdiag.backends.base.InstanceState`
    name; default ``running``);
``fail``
    make ``send_nmi`` raise: ``unavailable``, ``timeout``, ``not-found``,
    ``incorrect-state`` or ``unsupported``;
``supports_nmi``
    ``false`` to refuse NMIs whatever the architecture;
``record``
    a file that gets one line per delivered NMI (``<instance-id> <time> <pid>``), appended
    with ``O_APPEND`` so a test in another process can count deliveries even after the
    process that delivered them was killed;
``address``
    shown in listings, otherwise unused;
``credentials``
    a credentials reference (a stored NAME, ``file:/path`` or ``env:PREFIX``,
    :mod:`kdiag.backends.credentials`), resolved by ``send_nmi`` at delivery time as a
    real backend does: an unreadable, wrongly owned or group/world-readable file makes the
    delivery fail with ``BackendUnavailable``.  The resolved credentials are kept on the
    :class:`FakeCall` (in memory only) so tests can check what was delivered;
    ``FakeBackend(require_credentials=True)`` refuses a target without a reference.

Other keys are accepted and ignored, but never secret-looking ones (``password``,
``api_key``, URL userinfo, ...): those are refused like on every backend.

``handler(target)``, when given, runs inside ``send_nmi`` before the delivery is counted;
it may raise to simulate a failure or look around (for instance, at the database).
Thread-safe.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from kdiag.backends.base import (
    NMI_ARCHITECTURES,
    InstanceState,
    NMIResult,
    Target,
    TargetSettings,
)
from kdiag.backends.credentials import Credentials, CredentialsRef
from kdiag.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)

__all__ = ("FakeBackend", "FakeCall", "FakeSettings")

_FAILURES: dict[str, type[BackendError]] = {
    "unavailable": BackendUnavailable,
    "timeout": BackendTimeout,
    "not-found": TargetNotFound,
    "incorrect-state": IncorrectState,
    "unsupported": NMINotSupported,
}


@dataclass(frozen=True, slots=True)
class FakeSettings(TargetSettings):
    """A fake target: each setting, when present, overrides the backend's default."""

    BACKEND: ClassVar[str] = "fake"
    KEEPS_UNKNOWN: ClassVar[bool] = True

    state: InstanceState | None = None
    fail: str | None = None
    supports_nmi: bool | None = None
    record: str | None = None
    address: str | None = None
    credentials: CredentialsRef | None = None

    def validate(self) -> None:
        if self.fail is not None and self.fail not in _FAILURES:
            raise self.invalid("fail", f"one of {', '.join(_FAILURES)}, not {self.fail!r}")


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call the fake received."""

    verb: str  # "send_nmi" | "state" | "supports_nmi"
    instance_id: str
    time: dt.datetime
    credentials: Credentials | None = None


class FakeBackend:
    """A backend that delivers nothing and remembers everything."""

    name = "fake"

    def __init__(
        self,
        handler: Callable[[Target], None] | None = None,
        *,
        state: str = "running",
        supports_nmi: bool = True,
        fail: str | None = None,
        require_credentials: bool = False,
    ) -> None:
        defaults = FakeSettings.parse({"state": state, "fail": fail})
        self.handler = handler
        self.default_state = defaults.state or InstanceState.RUNNING
        self.default_supports_nmi = supports_nmi
        self.default_fail = fail
        self.require_credentials = require_credentials
        self._calls: list[FakeCall] = []
        self._lock = threading.Lock()
        self.closed = False

    # --- inspection -------------------------------------------------------------------

    @property
    def calls(self) -> list[FakeCall]:
        with self._lock:
            return list(self._calls)

    @property
    def sent(self) -> list[str]:
        """Instance ids of the NMIs delivered, in order."""
        return [c.instance_id for c in self.calls if c.verb == "send_nmi"]

    def _note(self, verb: str, target: Target, credentials: Credentials | None = None) -> None:
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            self._calls.append(FakeCall(verb, target.instance_id, now, credentials))

    # --- the Backend interface --------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> FakeSettings:
        return FakeSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        self._note("state", target)
        return FakeSettings.stored(target).state or self.default_state

    def supports_nmi(self, target: Target) -> bool:
        self._note("supports_nmi", target)
        allowed = FakeSettings.stored(target).supports_nmi
        if allowed is None:
            allowed = self.default_supports_nmi
        return allowed and target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        settings = FakeSettings.stored(target)
        fail = settings.fail or self.default_fail
        if fail is not None:
            cls = _FAILURES.get(fail, BackendError)
            raise cls(f"fake backend told to fail: {fail}", target=target.instance_id)
        credentials = self._credentials(target, settings.credentials)
        if self.handler is not None:
            self.handler(target)
        self._note("send_nmi", target, credentials)
        record = settings.record
        if record:
            line = f"{target.instance_id} {dt.datetime.now(dt.UTC).isoformat()} {os.getpid()}\n"
            fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return NMIResult(self.name, target.instance_id, "NMI recorded by the fake backend")

    def _credentials(self, target: Target, ref: CredentialsRef | None) -> Credentials | None:
        """The target's credentials, read now (delivery time), as a real backend would."""
        if ref is None:
            if self.require_credentials:
                raise BackendUnavailable(
                    f'instance {target.instance_id}: the fake backend requires "credentials"',
                    target=target.instance_id,
                )
            return None
        return target.credentials(ref)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
