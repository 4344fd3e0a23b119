"""A server behind a Redfish BMC, through sushy: read the system, then POST an ``Nmi`` reset.

Target settings (:class:`RedfishSettings`): ``url`` (the BMC, ``https://bmc.example``; plain
``http://`` only to a loopback address, since Basic authentication would carry the password
in clear), ``system`` (its ``Id`` in the Systems collection, or its path
``/redfish/v1/Systems/...``), ``credentials`` (a reference: ``name:NAME``, ``file:/path`` or
``env:PREFIX`` with ``username`` and ``password``), ``verify`` (check the BMC's TLS
certificate; on unless set to ``false``) and ``timeout`` (seconds for the whole call,
default 10).

sushy is the optional extra ``kdiag[redfish]``, imported on first use.

``send_nmi`` checks before it sends, because the peers do not: sushy-tools answers 204 to an
``Nmi`` reset of a shut-off domain, DMTF's mockups to anything, and sushy itself, when a
system lists no allowed reset types, assumes all of them.  So:

1. read the system; its ``#ComputerSystem.Reset`` action must list ``Nmi`` among its
   allowed values (``ResetType@Redfish.AllowableValues`` or its ActionInfo), else
   ``NMINotSupported``;
2. its ``PowerState`` must be ``On``, else ``IncorrectState``;
3. POST ``{"ResetType": "Nmi"}`` to the action's target, once.

sushy's connector retries a request that timed out or lost its connection, the POST too: an
NMI sent twice.  kdiag's connector answers every transport failure with an error sushy does
not retry, and tells a connection that was never made (nothing sent) from one lost after the
request went out (``DeliveryUnconfirmed``).  The whole call runs in a worker bounded by
``timeout``; a worker abandoned at its deadline never starts the POST afterwards.  Every
sushy and requests error is mapped in :func:`map_sushy_errors`, the one boundary.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from kdiag.backends.base import (
    NMI_ARCHITECTURES,
    InstanceState,
    NMIResult,
    Target,
    TargetSettings,
)
from kdiag.backends.bounded import BoundedCall
from kdiag.backends.credentials import Credentials, CredentialsRef
from kdiag.backends.remote import Refusal, StatusErrors, is_loopback, remote_text
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)

__all__ = (
    "DEFAULT_TIMEOUT",
    "EXTRA",
    "RedfishBackend",
    "RedfishSettings",
    "map_sushy_errors",
    "power_state",
)

log = logging.getLogger("kdiag.backends.redfish")

DEFAULT_TIMEOUT = 10.0
EXTRA = "kdiag[redfish]"
NMI = "Nmi"
_MAX_URL = 2048
_MAX_SYSTEM = 512
_T = TypeVar("_T")

#: Redfish ``PowerState`` -> kdiag's state; only ``On`` takes an NMI.
_POWER_STATES = {
    "On": InstanceState.RUNNING,
    "Off": InstanceState.STOPPED,
    "PoweringOn": InstanceState.PENDING,
    "PoweringOff": InstanceState.STOPPING,
    "Paused": InstanceState.PAUSED,
}


#: The BMC's answer to the reset POST (before it, sushy's own errors say what went wrong).
_HTTP = StatusErrors(
    "the BMC refused the Nmi reset",
    "the Nmi reset",
    Refusal((405, 501), NMINotSupported, "the BMC refused the Nmi reset"),
    Refusal((503,), BackendUnavailable, "the BMC is unavailable"),
)


def power_state(value: str | None) -> InstanceState | None:
    """The :class:`InstanceState` of a Redfish ``PowerState`` (``None``: not reported or
    unknown)."""
    return None if value is None else _POWER_STATES.get(value)


@dataclass(frozen=True, slots=True)
class RedfishSettings(TargetSettings):
    """A redfish target: the BMC, the system in it, and the credentials reference."""

    BACKEND: ClassVar[str] = "redfish"

    url: str
    """The BMC's base URL: ``https://host[:port]`` (``http://`` only to loopback)."""
    system: str
    """The system's ``Id`` in the Systems collection, or its path (``/redfish/v1/...``)."""
    credentials: CredentialsRef | None = None
    """Where the ``username`` and ``password`` are: ``name:NAME``, ``file:`` or ``env:``."""
    verify: bool = True
    """Check the BMC's TLS certificate."""
    timeout: float | None = None
    """Seconds for one whole call (default 10)."""

    def validate(self) -> None:
        if len(self.url) > _MAX_URL:
            raise self.invalid("url", f"at most {_MAX_URL} characters")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise self.invalid("url", "an https:// URL of the BMC, such as https://bmc.example")
        if parts.username is not None:
            raise self.invalid("url", 'no user in the URL: name "credentials" instead')
        if parts.query or parts.fragment:
            raise self.invalid("url", "no query or fragment: the BMC's base URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise self.invalid(
                "url",
                "http:// only to a loopback address: Basic authentication would send the "
                "password in clear; use https://",
            )
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise self.invalid("url", "the port is not a number from 1 to 65535") from None
        if (
            not self.system
            or len(self.system) > _MAX_SYSTEM
            or any(c.isspace() for c in self.system)
        ):
            raise self.invalid("system", "a system Id or a /redfish/v1/Systems/... path")
        if self.system.startswith("/") and not self.system.startswith("/redfish/"):
            raise self.invalid("system", "a path must start with /redfish/")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")


def _import_sushy() -> Any:
    try:
        import requests  # noqa: PLC0415 - sushy's own dependency, loaded with it
        import sushy  # noqa: PLC0415 - the optional extra, loaded on first use
    except ImportError as exc:
        raise BackendUnavailable(f"the redfish backend needs sushy: pip install '{EXTRA}'") from exc
    return sushy, requests


class _NotSent(Exception):
    """Marker in a cause chain: the connection was never made, so nothing was sent."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


@contextlib.contextmanager
def map_sushy_errors(target: Target, where: str, *, sent: threading.Event) -> Iterator[None]:
    """Turn sushy and requests errors into kdiag's backend errors (the one boundary).

    :param sent: set just before the reset is POSTed.  Until then every failure is a
        retryable "nothing was sent" error.  After it, a refusal the BMC answered (4xx,
        501, 503) or a connection never made is still "nothing sent"; a timeout, a
        connection lost or any other error is :class:`~kdiag.errors.DeliveryUnconfirmed`.
    """
    iid = target.instance_id
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        mapped = _map(exc, iid, where, sent.is_set())
        if mapped is None:
            raise
        raise mapped from exc


def _map(exc: Exception, iid: str, where: str, sent: bool) -> BackendError | None:
    sushy, _requests = _import_sushy()
    errors = sushy.exceptions
    text = remote_text(exc)
    status = _status(exc)
    never_made = any(isinstance(c, _NotSent) for c in _causes(exc))
    if isinstance(exc, errors.AccessError):
        return BackendAuthFailure(
            f"{where}: the BMC refused the credentials ({status or 'access error'}): {text}",
            target=iid,
        )
    if isinstance(exc, errors.MissingActionError):
        return NMINotSupported(f"{where}: the system has no reset action: {text}", target=iid)
    if isinstance(exc, errors.ResourceNotFoundError) and not sent:
        return TargetNotFound(f"{where}: no such system: {text}", target=iid)
    if isinstance(exc, errors.HTTPError) and sent and status is not None:
        return _HTTP.error(status, text, where, iid, on_wire=True)
    if sent and not never_made and not _ssl_error(exc):
        return DeliveryUnconfirmed(
            f"{where}: {type(exc).__name__} after the Nmi reset was sent: {text}; "
            "delivery of the NMI is unconfirmed",
            target=iid,
        )
    if any(isinstance(c, TimeoutError | _requests.exceptions.Timeout) for c in _causes(exc)):
        return BackendTimeout(f"{where}: no answer in time: {text}", target=iid)
    if isinstance(exc, errors.SushyError | _requests.exceptions.RequestException | ValueError):
        return BackendUnavailable(f"{where}: {text}", target=iid)
    # Nothing was sent: sushy choked on what the service answered (not Redfish, malformed).
    return BackendUnavailable(
        f"{where}: not a Redfish answer sushy can read ({type(exc).__name__}: {text})",
        target=iid,
    )


def _ssl_error(exc: BaseException) -> bool:
    _sushy, requests = _import_sushy()
    return any(isinstance(c, requests.exceptions.SSLError) for c in _causes(exc))


def _connector(sushy: Any, requests: Any, url: str, verify: bool, timeout: float) -> Any:
    """A sushy connector whose transport failures sushy does not retry (a retried POST
    would be a second NMI)."""

    class _NoRetry(requests.adapters.HTTPAdapter):  # type: ignore[misc]  # untyped SDK
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().send(request, *args, **kwargs)
            except requests.exceptions.SSLError:
                raise
            except requests.exceptions.ConnectTimeout as exc:
                raise _NotSentError(f"cannot connect in time: {exc}") from _NotSent()
            except requests.exceptions.ConnectionError as exc:
                reason = getattr(exc.args[0] if exc.args else None, "reason", None)
                if "NewConnectionError" in type(reason).__name__:
                    raise _NotSentError(f"cannot connect: {reason}") from _NotSent()
                raise _LostError(f"connection lost: {exc}") from exc
            except (requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                raise _LostError(f"no answer in time: {exc}") from exc

    class _NotSentError(requests.exceptions.RequestException):  # type: ignore[misc]
        pass

    class _LostError(requests.exceptions.RequestException):  # type: ignore[misc]
        pass

    connector = sushy.connector.Connector(
        url,
        verify=verify,
        server_side_retries=0,
        server_side_retries_delay=0,
        default_request_timeout=timeout,
        connect_timeout=min(timeout, 5.0),
    )
    session = getattr(connector, "_session", None)
    if not isinstance(session, requests.Session):
        raise BackendUnavailable("this sushy version keeps no requests session; unsupported")
    adapter = _NoRetry(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return connector


class RedfishBackend:
    """Interrupt servers through their Redfish BMC."""

    name = "redfish"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    # --- plumbing ------------------------------------------------------------------------

    def _credentials(self, target: Target, settings: RedfishSettings) -> Credentials | None:
        if settings.credentials is None:
            return None
        return target.credentials(settings.credentials, login=True)

    def _call(self, target: Target, work: Callable[[Any, Any, BoundedCall], _T]) -> _T:
        """Run ``work(root, system, call)`` against the target's system within its timeout;
        ``work`` passes ``call.send()`` just before it POSTs."""
        settings = RedfishSettings.stored(target)
        timeout = settings.timeout or self.timeout
        where = f"Redfish {settings.base_url} system {settings.system} ({target.instance_id})"
        creds = self._credentials(target, settings)
        call = BoundedCall(where, "the Nmi reset", target.instance_id, timeout)

        def run() -> _T:
            sushy, requests = _import_sushy()
            with map_sushy_errors(target, where, sent=call.sent):
                connector = _connector(sushy, requests, settings.base_url, settings.verify, timeout)
                auth = (
                    None
                    if creds is None
                    else sushy.auth.BasicAuth(username=creds.username, password=creds.password)
                )
                root = sushy.Sushy(
                    settings.base_url, verify=settings.verify, auth=auth, connector=connector
                )
                try:
                    system = root.get_system(_system_path(root, settings.system))
                    return work(root, system, call)
                finally:
                    with contextlib.suppress(Exception):  # closing: nothing left to report
                        connector.close()

        return call.run(run, thread_name="kdiag-redfish")

    # --- the Backend interface -------------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> RedfishSettings:
        """:class:`RedfishSettings` from a target mapping.

        :raises ConfigError: a missing ``url`` or ``system``, a URL that is not https (or
            http to loopback) or holds a user, a bad ``credentials`` reference or timeout.
        """
        return RedfishSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        def read(_root: Any, system: Any, _call: BoundedCall) -> InstanceState:
            return _state_of(target, system)

        return self._call(target, read)

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        def reset(_root: Any, system: Any, call: BoundedCall) -> str:
            sushy, _requests = _import_sushy()
            action = system._get_reset_action_element()  # MissingActionError: no reset at all
            allowed = action.get_allowed_values(system)
            if not allowed or NMI not in allowed:
                raise NMINotSupported(
                    f"Redfish system {system.identity}: Nmi is not among its allowed reset "
                    f"types ({', '.join(map(str, allowed or [])) or 'none listed'})",
                    target=target.instance_id,
                )
            state = _state_of(target, system)
            if state is not InstanceState.RUNNING:
                raise IncorrectState(
                    f"Redfish system {system.identity} is {_power_text(system)}, not On; "
                    "NMI not sent",
                    target=target.instance_id,
                )
            call.send()
            system.reset_system(sushy.ResetType.NMI)
            return str(system.identity)

        identity = self._call(target, reset)
        log.info("Redfish Nmi reset accepted for %s (system %s)", target.instance_id, identity)
        return NMIResult(
            self.name, target.instance_id, f"Nmi reset accepted by the BMC (system {identity})"
        )

    def close(self) -> None:
        """Nothing to free: each call connects on its own (an abandoned worker ends by
        itself, and never POSTs)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _system_path(root: Any, system: str) -> str:
    if system.startswith("/"):
        return system
    collection = root.get_system_collection().path.rstrip("/")
    return f"{collection}/{urllib.parse.quote(system, safe='')}"


def _power_text(system: Any) -> str:
    value = system.power_state
    return "of unreported power state" if value is None else str(getattr(value, "value", value))


def _state_of(target: Target, system: Any) -> InstanceState:
    value = system.power_state
    state = power_state(None if value is None else str(getattr(value, "value", value)))
    if state is None:
        raise BackendError(
            f"Redfish system {system.identity}: power state {_power_text(system)!r} "
            "is not one kdiag knows",
            target=target.instance_id,
        )
    return state
