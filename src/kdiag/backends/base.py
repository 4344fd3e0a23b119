"""Backends: the one small interface every NMI path implements, and the registry.

A backend turns "interrupt this machine" into a hypervisor, BMC or cloud call.  It is
handed a :class:`Target` (the instance id, its architecture and the backend settings stored
with the instance) and answers three questions: what state is the machine in
(:meth:`Backend.state`), can it take an NMI at all (:meth:`Backend.supports_nmi`), and
:meth:`Backend.send_nmi`, which returns an :class:`NMIResult` only when the backend
*accepted* the interrupt.  Anything else raises a :class:`~kdiag.errors.BackendError`;
a backend never reports success it could not confirm.

Backends are found through the ``kdiag.backends`` entry-point group, the built-ins
included.  Because an NMI is destructive, ``$KDIAG_BACKENDS`` (comma-separated allow-list)
and ``$KDIAG_DISABLE_BACKENDS`` (deny-list) restrict which ones load; a plugin that fails
to import is logged and skipped.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, Protocol, Self, runtime_checkable

from kdiag.errors import BackendUnavailable

__all__ = (
    "ENTRY_POINT_GROUP",
    "NMI_ARCHITECTURES",
    "Backend",
    "BackendPool",
    "NMIResult",
    "Target",
    "available_backends",
    "get_backend",
)

log = logging.getLogger("kdiag.backends")

ENTRY_POINT_GROUP = "kdiag.backends"

#: Architectures whose guests take a diagnostic interrupt as an NMI.  arm64 guests
#: (Graviton in EC2, QEMU's ``virt`` machine) cannot: EC2 answers ``UnsupportedOperation``.
NMI_ARCHITECTURES = frozenset({"x86_64", "i386", "s390x", "ppc64", "ppc64le"})


@dataclass(frozen=True, slots=True)
class Target:
    """What a backend is asked to act on."""

    instance_id: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    arch: str = "x86_64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def address(self) -> str:
        """``settings["address"]``: the socket, host or URL; empty when not set."""
        return str(self.settings.get("address", ""))


@dataclass(frozen=True, slots=True)
class NMIResult:
    """The backend accepted the NMI.  This is *not* proof that the guest panicked or that
    a dump was written: only that the hypervisor or BMC took the request."""

    backend: str
    instance_id: str
    detail: str


@runtime_checkable
class Backend(Protocol):
    """The interface of an NMI backend (a context manager; :meth:`close` frees it)."""

    name: str

    def send_nmi(self, target: Target) -> NMIResult:
        """Deliver one diagnostic interrupt; raise a BackendError when not accepted."""
        ...

    def state(self, target: Target) -> str:
        """The machine's state as EC2 names it (``running``, ``stopped``, ...)."""
        ...

    def supports_nmi(self, target: Target) -> bool:
        """Whether this backend and the target's architecture can take an NMI at all."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def _name_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _allowed(name: str) -> bool:
    allow = _name_list("KDIAG_BACKENDS")
    deny = _name_list("KDIAG_DISABLE_BACKENDS") or set()
    return name not in deny and (allow is None or name in allow)


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            log.warning("backend %r is registered twice; using %s", ep.name, found[ep.name].value)
            continue
        found[ep.name] = ep
    return found


def _load(ep: EntryPoint) -> Callable[[], Backend] | None:
    try:
        factory = ep.load()
    except Exception:  # a broken plugin must not take kdiag down
        log.exception("backend plugin %r (%s) failed to load; skipped", ep.name, ep.value)
        return None
    if not callable(factory):
        log.error("backend plugin %r (%s) is not callable; skipped", ep.name, ep.value)
        return None
    return factory  # type: ignore[no-any-return]  # entry points are untyped


def available_backends() -> list[str]:
    """Names of the backends that are registered and allowed, sorted."""
    return sorted(n for n in _entry_points() if _allowed(n))


def get_backend(name: str) -> Backend:
    """A new instance of the backend registered as ``name``.

    :raises BackendUnavailable: not registered, disabled by ``$KDIAG_BACKENDS`` /
        ``$KDIAG_DISABLE_BACKENDS``, or its plugin failed to load.
    """
    if not _allowed(name):
        raise BackendUnavailable(
            f"backend {name!r} is disabled by KDIAG_BACKENDS/KDIAG_DISABLE_BACKENDS"
        )
    ep = _entry_points().get(name)
    if ep is None:
        known = ", ".join(available_backends()) or "none"
        raise BackendUnavailable(f"no backend named {name!r} (available: {known})")
    factory = _load(ep)
    if factory is None:
        raise BackendUnavailable(f"backend {name!r} failed to load (see the log)")
    try:
        backend = factory()
    except BackendUnavailable:
        raise
    except Exception as exc:
        log.exception("backend %r could not be created", name)
        raise BackendUnavailable(f"backend {name!r} could not be created: {exc}") from exc
    return backend


class BackendPool(Mapping[str, Backend]):
    """Backends by name, created on first use and shared; :meth:`close` closes them all.

    ``BackendPool({"fake": FakeBackend()})`` pins instances (tests); other names load
    through :func:`get_backend`.
    """

    def __init__(self, preset: Mapping[str, Backend] | None = None) -> None:
        self._backends: dict[str, Backend] = dict(preset or {})
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Backend:
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._backends[name] = get_backend(name)
            return backend

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._backends))

    def __len__(self) -> int:
        return len(self._backends)

    def close(self) -> None:
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
