"""Google Compute Engine through google-cloud-compute: ``instances.sendDiagnosticInterrupt``.

Target settings (:class:`GCPSettings`): ``project``, ``zone``, ``instance`` (name or numeric
id), optionally ``credentials`` (a reference to a service-account key: the JSON file Google
issues, kept 0600, whose fields are all strings; or ``access_token`` alone) or, without it,
Application Default Credentials; ``endpoint_url`` (a Private Service Connect endpoint:
https, or http on loopback only) and ``timeout`` (seconds per request, default 30).

``state`` reads the instance (``instances.get``); ``send_nmi`` reads it too and refuses
anything but ``RUNNING``, then calls ``POST .../instances/{instance}/sendDiagnosticInterrupt``
(empty body; "if successful, the response body is empty", and it is not a long-running
operation) once, with no retry.  Errors are mapped in :func:`map_gcp_errors`: 404 unknown,
403/401 refused credentials or permission, 400/409/412 about the state (live migration in
progress, not running) ``IncorrectInstanceState``, 429 throttled; once the POST may have
left, a 5xx, a read timeout or a cut connection is ``DeliveryUnconfirmed``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from kdiag.backends.base import NMI_ARCHITECTURES, InstanceState, NMIResult, Target, TargetSettings
from kdiag.backends.credentials import CredentialsRef
from kdiag.backends.remote import Refusal, StatusErrors, endpoint_problem, remote_text
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
    "COMPUTE_SCOPE",
    "DEFAULT_TIMEOUT",
    "GCPBackend",
    "GCPSettings",
    "instance_state",
    "map_gcp_errors",
)

log = logging.getLogger("kdiag.backends.gcp")

DEFAULT_TIMEOUT = 30.0
COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"
_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[0-9]{1,20}")
_PROJECT = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]")
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_STATE_WORDS = re.compile(r"not ready|not running|migrat|resourceNotReady|state", re.IGNORECASE)

_STATES = {
    "PROVISIONING": InstanceState.PENDING,
    "STAGING": InstanceState.PENDING,
    "REPAIRING": InstanceState.PENDING,
    "RUNNING": InstanceState.RUNNING,
    "STOPPING": InstanceState.STOPPING,
    "PENDING_STOP": InstanceState.STOPPING,
    "SUSPENDING": InstanceState.STOPPING,
    "STOPPED": InstanceState.STOPPED,
    "TERMINATED": InstanceState.STOPPED,  # GCE's "stopped": the VM is off, disks kept
    "SUSPENDED": InstanceState.PAUSED,
}


def instance_state(status: str) -> InstanceState:
    """The :class:`InstanceState` of a GCE instance status (unknown ones: ``paused``)."""
    return _STATES.get(status.upper(), InstanceState.PAUSED)


@dataclass(frozen=True, slots=True)
class GCPSettings(TargetSettings):
    """A gcp target: project, zone and instance, and how to authenticate."""

    BACKEND: ClassVar[str] = "gcp"

    project: str
    zone: str
    instance: str
    """The instance name (or its numeric id)."""
    credentials: CredentialsRef | None = None
    """A service-account key file (or ``access_token``); else Application Default Credentials."""
    endpoint_url: str | None = None
    """Another endpoint for the Compute API (Private Service Connect); https, or http on
    loopback only."""
    timeout: float | None = None

    def validate(self) -> None:
        if not _PROJECT.fullmatch(self.project):
            raise self.invalid("project", f"not a project id: {self.project!r}")
        if not _ZONE.fullmatch(self.zone):
            raise self.invalid("zone", f"not a zone (like europe-west1-b): {self.zone!r}")
        if not _NAME.fullmatch(self.instance):
            raise self.invalid("instance", f"not an instance name or id: {self.instance!r}")
        if problem := endpoint_problem(self.endpoint_url):
            raise self.invalid("endpoint_url", problem)

    @property
    def seconds(self) -> float:
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    @property
    def where(self) -> str:
        return f"gcp {self.project}/{self.zone}/{self.instance}"


def _import_sdk() -> Any:
    try:
        from google.cloud import compute_v1  # noqa: PLC0415 - optional extra, on first use
    except ImportError as exc:
        raise BackendUnavailable(
            "the gcp backend needs google-cloud-compute: pip install 'kdiag[gcp]'"
        ) from exc
    return compute_v1


@contextlib.contextmanager
def map_gcp_errors(
    target: Target, settings: GCPSettings, *, sent: threading.Event | None = None
) -> Iterator[None]:
    """Turn google-api-core, google-auth and requests errors into kdiag's backend errors
    (the one boundary).  ``sent`` is set just before the interrupt is posted."""
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        on_wire = sent is not None and sent.is_set()
        raise _mapped(exc, f"{settings.where} ({target.instance_id})", target, on_wire) from exc


def _mapped(exc: Exception, where: str, target: Target, on_wire: bool) -> Exception:
    import requests  # noqa: PLC0415 - comes with the optional extra
    from google.api_core import exceptions as api  # noqa: PLC0415 - with the optional extra
    from google.auth import exceptions as auth  # noqa: PLC0415 - with the optional extra

    iid = target.instance_id
    if isinstance(exc, api.GoogleAPICallError) and exc.code is not None:
        return _status_error(int(exc.code), remote_text(exc.message), where, iid, on_wire=on_wire)
    if isinstance(exc, auth.DefaultCredentialsError | auth.RefreshError | auth.TransportError):
        return BackendUnavailable(
            f"{where}: cannot get an access token: {remote_text(exc)}", target=iid
        )
    if isinstance(exc, auth.GoogleAuthError | ValueError) and not on_wire:
        return BackendUnavailable(f"{where}: {remote_text(exc)}", target=iid)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return BackendTimeout(f"{where}: connect timed out", target=iid)
    if isinstance(exc, requests.exceptions.ConnectionError) and _not_connected(exc):
        return BackendUnavailable(f"{where}: cannot connect: {remote_text(exc)}", target=iid)
    if isinstance(exc, requests.exceptions.RequestException | api.GoogleAPIError | ValueError):
        if on_wire:
            return DeliveryUnconfirmed(
                f"{where}: {type(exc).__name__} after sendDiagnosticInterrupt was sent; "
                "delivery of the NMI is unconfirmed",
                target=iid,
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return BackendTimeout(f"{where}: no answer in time", target=iid)
        return BackendUnavailable(f"{where}: {type(exc).__name__}: {remote_text(exc)}", target=iid)
    if on_wire:  # an answer the SDK cannot read (not JSON), or anything else after the POST
        return DeliveryUnconfirmed(
            f"{where}: {type(exc).__name__} after sendDiagnosticInterrupt was sent; "
            "delivery of the NMI is unconfirmed",
            target=iid,
        )
    return exc


def _not_connected(exc: Exception) -> bool:
    """A requests ConnectionError raised before any byte of the request left: urllib3's
    NewConnectionError somewhere in its (bounded) chain of causes."""
    from urllib3.exceptions import NewConnectionError  # noqa: PLC0415 - comes with requests

    seen: list[BaseException] = [exc]
    for current in seen:
        if isinstance(current, NewConnectionError):
            return True
        for nxt in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *(a for a in current.args if isinstance(a, BaseException)),
        ):
            if isinstance(nxt, BaseException) and nxt not in seen and len(seen) < 16:
                seen.append(nxt)
    return False


_HTTP = StatusErrors(
    "Google refused",
    "sendDiagnosticInterrupt",
    Refusal((404,), TargetNotFound, "no such instance"),
    Refusal(
        (401, 403),
        BackendAuthFailure,
        "Google refused kdiag's credentials or permission "
        "(compute.instances.sendDiagnosticInterrupt)",
    ),
    Refusal(
        (409, 412),
        IncorrectState,
        "the instance cannot take an NMI now, e.g. a live migration is in progress",
    ),
    Refusal((429,), BackendUnavailable, "throttled (quota), nothing sent"),
    Refusal((501,), NMINotSupported, "not supported"),
)


def _status_error(status: int, said: str, where: str, iid: str, *, on_wire: bool) -> BackendError:
    if status == 400 and _STATE_WORDS.search(said):
        status = 409  # Google says "not ready", "not running", "migrating" with a 400
    return _HTTP.error(status, said, where, iid, on_wire=on_wire)


class GCPBackend:
    """Send diagnostic interrupts to Compute Engine instances."""

    name = "gcp"

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def _resolved(self, target: Target, settings: GCPSettings) -> dict[str, str] | None:
        """The target's credentials, read now (delivery time); None: the default chain."""
        if settings.credentials is None:
            return None
        values = dict(target.credentials(settings.credentials).values)
        if "access_token" not in values and values.get("type") != "service_account":
            raise BackendUnavailable(
                f"instance {target.instance_id}: credentials {settings.credentials} are neither "
                'a service-account key ("type": "service_account") nor an access_token',
                target=target.instance_id,
            )
        return values

    def _google_credentials(self, values: dict[str, str] | None) -> Any:
        if values is None:
            import google.auth  # noqa: PLC0415 - optional extra, on first use

            credentials, _ = google.auth.default(scopes=[COMPUTE_SCOPE])
            return credentials
        if "access_token" in values:
            from google.oauth2 import credentials as oauth2  # noqa: PLC0415 - optional extra

            return oauth2.Credentials(token=values["access_token"])  # type: ignore[no-untyped-call]
        from google.oauth2 import service_account  # noqa: PLC0415 - optional extra

        make: Any = service_account.Credentials.from_service_account_info  # untyped in google-auth
        return make(values, scopes=[COMPUTE_SCOPE])

    def _client(self, target: Target, settings: GCPSettings) -> Any:
        compute_v1 = _import_sdk()
        values = self._resolved(target, settings)
        # In memory only, as the client holds them anyway; a changed key file makes a new one.
        key = (settings.endpoint_url, tuple(sorted(values.items())) if values else None)
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        options = {"api_endpoint": settings.endpoint_url} if settings.endpoint_url else None
        client = compute_v1.InstancesClient(
            credentials=self._google_credentials(values), client_options=options
        )
        with self._lock:
            return self._clients.setdefault(key, client)

    def _status(self, client: Any, settings: GCPSettings) -> str:
        instance = client.get(
            project=settings.project,
            zone=settings.zone,
            instance=settings.instance,
            timeout=settings.seconds,
        )
        return str(instance.status or "")

    # --- the Backend interface ----------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> GCPSettings:
        """:class:`GCPSettings` from a target mapping.

        :raises ConfigError: a missing or malformed ``project``, ``zone`` or ``instance``,
            an ``endpoint_url`` that is not https (http only to loopback), a bad ``timeout``.
        """
        return GCPSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        settings = GCPSettings.stored(target)
        with map_gcp_errors(target, settings):
            status = self._status(self._client(target, settings), settings)
        return instance_state(status)

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        settings = GCPSettings.stored(target)
        sent = threading.Event()
        with map_gcp_errors(target, settings, sent=sent):
            client = self._client(target, settings)
            status = self._status(client, settings)  # also refreshes the access token
            if status != "RUNNING":
                raise IncorrectState(
                    f"{settings.where}: the instance is {status or 'in no status'}, not "
                    "RUNNING; NMI not sent",
                    target=target.instance_id,
                )
            sent.set()
            client.send_diagnostic_interrupt(
                project=settings.project,
                zone=settings.zone,
                instance=settings.instance,
                retry=None,  # never twice: a second NMI must be a conscious choice
                timeout=settings.seconds,
            )
        log.info("sendDiagnosticInterrupt accepted for %s", target.instance_id)
        return NMIResult(
            self.name,
            target.instance_id,
            f"NMI accepted by Compute Engine ({settings.where}, sendDiagnosticInterrupt)",
        )

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):  # closing: never fail on the way out
                client.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
