"""Backends: the one small interface every NMI path implements, and the registry.

A backend turns "interrupt this machine" into a hypervisor, BMC or cloud call.  It is
handed a :class:`Target` (the instance id, its architecture and the backend settings stored
with the instance) and answers three questions: what state is the machine in
(:meth:`Backend.state`, an :class:`InstanceState`), can it take an NMI at all
(:meth:`Backend.supports_nmi`), and :meth:`Backend.send_nmi`, which returns an
:class:`NMIResult` only when the backend *accepted* the interrupt.  Anything else raises a
:class:`~kdiag.errors.BackendError`; a backend never reports success it could not confirm.

Each backend declares its target settings as a frozen dataclass derived from
:class:`TargetSettings` and parses them in :meth:`Backend.parse_target`, the one parser:
:func:`check_target` runs it when an instance is registered (``Store.add_instance``), and
the backend runs it again on what was stored before each call.

Backends are found through the ``kdiag.backends`` entry-point group, the built-ins
included.  Because an NMI is destructive, ``$KDIAG_BACKENDS`` (comma-separated allow-list)
and ``$KDIAG_DISABLE_BACKENDS`` (deny-list) restrict which ones load; a plugin that fails
to import is logged and skipped.
"""

from __future__ import annotations

import logging
import os
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from kdiag.backends.credentials import (
    Credentials,
    CredentialsRef,
    CredentialsVault,
    masked_settings,
    refuse_secrets,
)
from kdiag.errors import BackendUnavailable, ConfigError

__all__ = (
    "ENTRY_POINT_GROUP",
    "NMI_ARCHITECTURES",
    "Backend",
    "BackendPool",
    "InstanceState",
    "NMIResult",
    "Target",
    "TargetSettings",
    "available_backends",
    "check_target",
    "get_backend",
)

log = logging.getLogger("kdiag.backends")

ENTRY_POINT_GROUP = "kdiag.backends"

#: Architectures whose guests take a diagnostic interrupt as an NMI.  arm64 guests
#: (Graviton in EC2, QEMU's ``virt`` machine) cannot: EC2 answers ``UnsupportedOperation``.
NMI_ARCHITECTURES = frozenset({"x86_64", "i386", "s390x", "ppc64", "ppc64le"})


class InstanceState(StrEnum):
    """A machine's state, under the names EC2 uses (the inventory holds only those), plus
    ``paused``, which hypervisors report and EC2 has no name for.

    A ``StrEnum``: members compare equal to their names (``InstanceState.RUNNING ==
    "running"``).  Only ``running`` takes a diagnostic interrupt.
    """

    PENDING = "pending"
    """Starting (EC2 code 0); QEMU's ``prelaunch`` (``-S``) and ``inmigrate``."""
    RUNNING = "running"
    """Running (16): the only state that takes an NMI."""
    SHUTTING_DOWN = "shutting-down"
    """Being terminated (32)."""
    TERMINATED = "terminated"
    """Gone for good (48)."""
    STOPPING = "stopping"
    """Being stopped (64)."""
    STOPPED = "stopped"
    """Stopped (80); QEMU's ``shutdown``."""
    PAUSED = "paused"
    """The hypervisor holds the vCPUs (QEMU ``paused``, ``suspended``, ``guest-panicked``,
    ...).  Not an EC2 state: a backend may report it, the inventory never stores it."""

    @property
    def code(self) -> int | None:
        """EC2's ``instanceState.code``; ``None`` for ``paused``."""
        return _EC2_CODES.get(self)

    @classmethod
    def parse(cls, text: str, *, ec2_only: bool = False) -> InstanceState:
        """The member named ``text``.

        :param ec2_only: refuse ``paused`` (inventory states).
        :raises ConfigError: not a state name, listing the ones allowed.
        """
        allowed = [s for s in cls if not ec2_only or s.code is not None]
        if text not in allowed:
            names = ", ".join(allowed)
            raise ConfigError(f"invalid instance state {text!r}: one of {names}")
        return cls(text)


_EC2_CODES: dict[InstanceState, int] = {
    InstanceState.PENDING: 0,
    InstanceState.RUNNING: 16,
    InstanceState.SHUTTING_DOWN: 32,
    InstanceState.TERMINATED: 48,
    InstanceState.STOPPING: 64,
    InstanceState.STOPPED: 80,
}


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """Base of a backend's target settings: subclass it as a frozen dataclass whose fields
    (``str``, ``int``, ``float``, ``bool``, an ``Enum``,
    :class:`~kdiag.backends.credentials.CredentialsRef`, or one of those ``| None``) are
    the settings, and call :meth:`parse`.  Secrets are refused wherever they appear: a
    backend that needs one declares ``credentials: CredentialsRef | None`` and resolves
    it at delivery time.  Range checks go in :meth:`validate` and raise :meth:`invalid`.

    ``BACKEND`` names the backend in messages; ``KEEPS_UNKNOWN`` lets a backend accept
    (and ignore) keys it does not declare, which only the fake does.  A ``timeout``
    field (seconds) is bounded here, for every backend, by ``MAX_TIMEOUT``: every
    in-flight delivery must end well inside the store's ``PENDING_STALE_AFTER``, after
    which a pending audit row is reconciled to 'unknown'.  A backend whose calls may
    take longer (openstack waits for the compute host's verdict) raises it, and the
    store's bound with it.
    """

    BACKEND: ClassVar[str] = "backend"
    KEEPS_UNKNOWN: ClassVar[bool] = False
    MAX_TIMEOUT: ClassVar[float] = 300.0

    def __post_init__(self) -> None:
        self.validate()
        timeout = getattr(self, "timeout", None)
        if timeout is not None and not 0 < timeout <= self.MAX_TIMEOUT:
            raise self.invalid(
                "timeout", f"must be in (0, {self.MAX_TIMEOUT:g}] seconds, not {timeout!r}"
            )

    def validate(self) -> None:
        """The backend's own checks of its fields (formats, ranges), run on construction
        before the ``timeout`` bound; raise :meth:`invalid`.  None by default."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        """The settings from a stored mapping.

        :raises ConfigError: an unknown key, a missing required one, a value of the
            wrong type or range, or a secret anywhere in ``raw`` (targets name a
            ``credentials`` reference instead); the message names the field, never a secret.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{cls.BACKEND} target settings must be a JSON object")
        refuse_secrets(raw, cls.BACKEND)
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown and not cls.KEEPS_UNKNOWN:
            raise ConfigError(
                f'unknown {cls.BACKEND} target setting "{unknown[0]}" '
                f"(known: {', '.join(sorted(known))})"
            )
        values = {
            f.name: _coerce(cls, f.name, hints[f.name], raw[f.name])
            for f in fields(cls)
            if f.name in raw
        }
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            missing = [f.name for f in fields(cls) if f.name not in values]
            raise ConfigError(
                f'{cls.BACKEND} target setting "{missing[0]}" is required'
                if missing
                else f"{cls.BACKEND} target settings: {exc}"
            ) from exc

    @classmethod
    def stored(cls, target: Target) -> Self:
        """The settings stored with ``target``, parsed as at registration.  A row that no
        longer parses (written by hand, or by an older kdiag) makes the backend unusable
        for it, never a silent default.

        :raises BackendUnavailable: naming the instance and the field.
        """
        try:
            return cls.parse(target.settings)
        except ConfigError as exc:
            raise BackendUnavailable(
                f"instance {target.instance_id}: {exc}", target=target.instance_id
            ) from exc

    @classmethod
    def invalid(cls, name: str, problem: str) -> ConfigError:
        """The error for field ``name``: ``qmp target setting "timeout": <problem>``."""
        return ConfigError(f'{cls.BACKEND} target setting "{name}": {problem}')


def _coerce(cls: type[TargetSettings], name: str, hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` of field ``name``, or ``ConfigError`` naming it."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    kind = next(t for t in options if t is not type(None))
    shown = masked_settings(value)  # what a message may quote
    if kind is CredentialsRef:
        if not isinstance(value, str):
            raise cls.invalid(name, 'must be "name:NAME", "file:/path" or "env:PREFIX"')
        try:
            return CredentialsRef.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{cls.BACKEND} {exc}") from None
    if isinstance(kind, type) and issubclass(kind, Enum):
        choices = [m.value for m in kind]
        if value not in choices:
            raise cls.invalid(name, f"one of {', '.join(map(str, choices))}, not {shown!r}")
        return kind(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise cls.invalid(name, f"must be {_KIND_NAMES.get(kind, kind)}, not {shown!r}")


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


@dataclass(frozen=True, slots=True)
class Target:
    """What a backend is asked to act on.

    ``vault`` is where a ``credentials`` setting that names stored credentials is looked
    up (the instance's account in kdiag's store: ``Store.target_of(instance)``); without
    one, only ``file:``/``env:`` references resolve.
    """

    instance_id: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    arch: str = "x86_64"
    vault: CredentialsVault | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def address(self) -> str:
        """``settings["address"]``: the socket, host or URL; empty when not set."""
        return str(self.settings.get("address", ""))

    def credentials(self, ref: CredentialsRef, *, login: bool = False) -> Credentials:
        """``ref`` read now (at delivery time, so a rotated secret is seen), a stored name
        from :attr:`vault`.

        :param login: the credentials must hold a ``username`` and a ``password``.
        :raises BackendUnavailable: naming the instance and why (unreadable, wrongly owned
            or unknown; no login in it).
        """
        try:
            creds = ref.resolve(self.vault)
        except ConfigError as exc:
            raise BackendUnavailable(
                f"instance {self.instance_id}: {exc}", target=self.instance_id
            ) from None
        if login and (creds.username is None or creds.password is None):
            raise BackendUnavailable(
                f"instance {self.instance_id}: credentials {ref} hold no username and password",
                target=self.instance_id,
            )
        return creds


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

    def parse_target(self, settings: Mapping[str, Any]) -> TargetSettings:
        """This backend's typed settings from a target mapping (the one parser).

        :raises ConfigError: naming the setting that is missing, unknown or wrong.
        """
        ...

    def send_nmi(self, target: Target) -> NMIResult:
        """Deliver one diagnostic interrupt; raise a BackendError when not accepted."""
        ...

    def state(self, target: Target) -> InstanceState:
        """The machine's state right now."""
        ...

    def supports_nmi(self, target: Target) -> bool:
        """Whether this backend and the target's architecture can take an NMI at all."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


_PROTOCOL_MEMBERS = (
    "name",
    "parse_target",
    "send_nmi",
    "state",
    "supports_nmi",
    "close",
    "__enter__",
    "__exit__",
)


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
        ``$KDIAG_DISABLE_BACKENDS``, its plugin failed to load, or what it made does not
        implement :class:`Backend` (a plugin written before ``parse_target``, say).
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
    if not isinstance(backend, Backend):
        missing = [m for m in _PROTOCOL_MEMBERS if not hasattr(backend, m)]
        raise BackendUnavailable(
            f"backend {name!r} does not implement the Backend protocol "
            f"(missing: {', '.join(missing)})"
        )
    return backend


def check_target(backend: str, settings: Mapping[str, Any]) -> TargetSettings:
    """Validate the target settings of an instance to be registered with ``backend``.

    :raises ConfigError: the backend is unknown or disabled, or a setting is wrong.
    :raises BackendUnavailable: the backend's plugin failed to load.
    """
    known = available_backends()
    if backend not in known:
        raise ConfigError(
            f"unknown or disabled backend {backend!r} (available: {', '.join(known) or 'none'})"
        )
    with get_backend(backend) as impl:
        return impl.parse_target(settings)


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
