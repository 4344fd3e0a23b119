"""Check a target without interrupting it: reachability, state and NMI capability.

:func:`probe` asks a backend only :meth:`~kdiag.backends.base.Backend.state` and
:meth:`~kdiag.backends.base.Backend.supports_nmi`, never ``send_nmi``, so it is safe on a
production machine.  ``kdiag instances check`` prints it; ``kdiag instances add --check``
runs it before storing a new instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdiag.backends.base import Backend, InstanceState, Target
from kdiag.backends.credentials import mask_text
from kdiag.errors import BackendError, ConfigError

__all__ = ("Probe", "probe")


@dataclass(frozen=True, slots=True)
class Probe:
    """What a backend said about a target.

    ``reachable``: the backend answered ``state``; ``state`` is its answer (``None`` when
    unreachable); ``supports_nmi``: the backend and architecture can take an NMI;
    ``error_code`` / ``error``: why it was not reachable.
    """

    instance_id: str
    backend: str
    reachable: bool
    state: InstanceState | None
    supports_nmi: bool
    error_code: str | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        """Reachable, running and able to take an NMI: a send would go out now."""
        return self.reachable and self.state is InstanceState.RUNNING and self.supports_nmi

    def to_json(self) -> dict[str, Any]:
        return {
            "InstanceId": self.instance_id,
            "Backend": self.backend,
            "Reachable": self.reachable,
            "State": None if self.state is None else self.state.value,
            "SupportsNmi": self.supports_nmi,
            "Ready": self.ready,
            "ErrorCode": self.error_code,
            "Error": self.error,
        }


def probe(backend: Backend, target: Target) -> Probe:
    """Ask ``backend`` for ``target``'s state and NMI capability; sends nothing.

    A :class:`~kdiag.errors.BackendError` (unreachable, unknown target, timeout) or a
    stored target that no longer parses becomes an unreachable :class:`Probe` naming it.
    """
    supports = backend.supports_nmi(target)
    try:
        state = InstanceState(backend.state(target))
    except (BackendError, ConfigError) as exc:
        return Probe(
            target.instance_id,
            backend.name,
            reachable=False,
            state=None,
            supports_nmi=supports,
            error_code=exc.code,
            error=mask_text(str(exc)),
        )
    return Probe(target.instance_id, backend.name, True, state, supports)
