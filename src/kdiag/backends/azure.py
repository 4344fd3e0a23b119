"""Azure virtual machines through the Serial Console's NMI (azure-identity + the serial
console API, as ``az serial-console send nmi`` does it).

Target settings (:class:`AzureSettings`): ``subscription`` (its id), ``resource_group``,
``vm``; optionally ``credentials`` (a reference to a service principal: ``tenant_id``,
``client_id``, ``client_secret``; or ``access_token`` alone), else azure-identity's
``DefaultAzureCredential``; ``arm_endpoint`` (another Azure cloud's Resource Manager:
https, or http on loopback only) and ``timeout`` (seconds per request, default 30).

The serial console's preconditions become typed errors before anything is sent:

1. the Serial Console must be enabled for the subscription (``consoleServices/default``):
   else ``UnsupportedOperation`` naming ``az serial-console enable``;
2. the VM (``virtualMachines/{vm}?$expand=instanceView``) must be ``PowerState/running``
   (else ``IncorrectInstanceState``) and have boot diagnostics enabled (else
   ``UnsupportedOperation`` naming ``az vm boot-diagnostics enable``);
3. ``serialPorts/0/connect`` gives the console's WebSocket address, which must be ``wss``
   (``ws`` on loopback only: the ARM token is sent there); the console session is opened
   and its first message awaited;
4. ``POST .../adminCommand/nmi`` with the ARM bearer token and
   ``{"command": "nmi", "requestId": <uuid4>, "commandParameters": {}}``, once (the CLI
   retries once; kdiag never does).  HTTP 200 is a delivery; a 5xx, a timeout or a cut
   connection after it is ``DeliveryUnconfirmed``.

The pipeline's own retries are off (azure-core retries POST on 500/503/504).  Every
azure-core, azure-identity and websocket error is mapped in :func:`map_azure_errors`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self

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
    "ARM_ENDPOINT",
    "COMPUTE_API_VERSION",
    "DEFAULT_TIMEOUT",
    "AzureBackend",
    "AzureSettings",
    "map_azure_errors",
    "power_state",
)

log = logging.getLogger("kdiag.backends.azure")

ARM_ENDPOINT = "https://management.azure.com"
COMPUTE_API_VERSION = "2024-07-01"
DEFAULT_TIMEOUT = 30.0
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_GROUP = re.compile(r"[-\w._()]{1,90}")
_VM = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,63}")

_POWER = {
    "running": InstanceState.RUNNING,
    "starting": InstanceState.PENDING,
    "stopping": InstanceState.STOPPING,
    "deallocating": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPED,
    "deallocated": InstanceState.STOPPED,
}


def power_state(instance_view: Mapping[str, Any]) -> InstanceState:
    """The :class:`InstanceState` of a VM's instance view (its ``PowerState/...`` status);
    ``paused`` when there is none or it is unknown."""
    for status in instance_view.get("statuses") or []:
        code = str(status.get("code", ""))
        if code.startswith("PowerState/"):
            return _POWER.get(code.removeprefix("PowerState/"), InstanceState.PAUSED)
    return InstanceState.PAUSED


@dataclass(frozen=True, slots=True)
class AzureSettings(TargetSettings):
    """An azure target: subscription, resource group and VM, and how to authenticate."""

    BACKEND: ClassVar[str] = "azure"

    subscription: str
    resource_group: str
    vm: str
    credentials: CredentialsRef | None = None
    """A service principal (tenant_id, client_id, client_secret) or an access_token; else
    DefaultAzureCredential."""
    arm_endpoint: str | None = None
    """Resource Manager of another Azure cloud; https, or http on loopback only."""
    timeout: float | None = None

    def validate(self) -> None:
        if not _UUID.fullmatch(self.subscription):
            raise self.invalid("subscription", f"not a subscription id: {self.subscription!r}")
        if not _GROUP.fullmatch(self.resource_group) or self.resource_group.endswith("."):
            raise self.invalid("resource_group", f"not a group name: {self.resource_group!r}")
        if not _VM.fullmatch(self.vm):
            raise self.invalid("vm", f"not a VM name: {self.vm!r}")
        if problem := endpoint_problem(self.arm_endpoint):
            raise self.invalid("arm_endpoint", problem)

    @property
    def seconds(self) -> float:
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    @property
    def arm(self) -> str:
        return (self.arm_endpoint or ARM_ENDPOINT).rstrip("/")

    @property
    def scope(self) -> str:
        parts = urllib.parse.urlsplit(self.arm)
        return f"{parts.scheme}://{parts.netloc}/.default"

    @property
    def vm_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.vm}"
        )

    @property
    def where(self) -> str:
        return f"azure {self.resource_group}/{self.vm}"


def _import_sdk() -> tuple[Any, Any]:
    try:
        import websocket  # noqa: PLC0415 - optional extra, imported on first use
        from azure.mgmt import serialconsole  # noqa: PLC0415 - optional extra, on first use
    except ImportError as exc:
        raise BackendUnavailable(
            "the azure backend needs azure-identity, azure-mgmt-serialconsole and "
            "websocket-client: pip install 'kdiag[azure]'"
        ) from exc
    return serialconsole, websocket


_HTTP = StatusErrors(
    "Azure refused",
    "the NMI command",
    Refusal((404,), TargetNotFound, "no such VM or subscription"),
    Refusal(
        (401, 403),
        BackendAuthFailure,
        "Azure refused kdiag's credentials or role (the serial console needs Virtual Machine "
        "Contributor or higher)",
    ),
    Refusal((409,), IncorrectState, "the VM cannot take an NMI now"),
    Refusal((429,), BackendUnavailable, "throttled, nothing sent"),
)


@contextlib.contextmanager
def map_azure_errors(
    target: Target, settings: AzureSettings, *, sent: threading.Event | None = None
) -> Iterator[None]:
    """Turn azure-core, azure-identity and websocket errors into kdiag's backend errors (the
    one boundary).  ``sent`` is set just before the NMI command is posted."""
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        on_wire = sent is not None and sent.is_set()
        where = f"{settings.where} ({target.instance_id})"
        raise _mapped(exc, where, target.instance_id, on_wire) from exc


def _mapped(exc: Exception, where: str, iid: str, on_wire: bool) -> Exception:
    from azure.core import exceptions as core  # noqa: PLC0415 - with the optional extra

    if isinstance(exc, core.HttpResponseError) and exc.status_code is not None:
        return _HTTP.error(
            int(exc.status_code), remote_text(exc.message), where, iid, on_wire=on_wire
        )
    if isinstance(exc, core.ClientAuthenticationError):  # no status: getting a token failed
        return BackendAuthFailure(f"{where}: cannot get a token: {remote_text(exc)}", target=iid)
    if isinstance(exc, core.ServiceRequestTimeoutError):
        return BackendTimeout(f"{where}: connect timed out", target=iid)
    if isinstance(exc, core.ServiceRequestError):  # the request never left
        return BackendUnavailable(f"{where}: cannot connect: {remote_text(exc)}", target=iid)
    if on_wire:
        return DeliveryUnconfirmed(
            f"{where}: {type(exc).__name__} after the NMI command was sent; "
            "delivery of the NMI is unconfirmed",
            target=iid,
        )
    if isinstance(exc, core.ServiceResponseTimeoutError | TimeoutError):
        return BackendTimeout(f"{where}: no answer in time", target=iid)
    if isinstance(exc, core.AzureError | OSError | ValueError):
        return BackendUnavailable(f"{where}: {type(exc).__name__}: {remote_text(exc)}", target=iid)
    from websocket import WebSocketException  # noqa: PLC0415 - with the optional extra

    if isinstance(exc, WebSocketException):
        return BackendUnavailable(
            f"{where}: the serial console session did not open: {remote_text(exc)}", target=iid
        )
    return exc


class _StaticToken:
    """A TokenCredential for an ``access_token`` reference (no refresh)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken  # noqa: PLC0415 - optional extra

        return AccessToken(self._token, int(time.time()) + 3000)


class _Session(NamedTuple):
    client: Any  # MicrosoftSerialConsoleClient: its pipeline carries the bearer token
    credential: Any


class AzureBackend:
    """Send NMIs to Azure VMs through the Serial Console."""

    name = "azure"

    def __init__(self) -> None:
        self._sessions: dict[tuple[Any, ...], _Session] = {}
        self._lock = threading.Lock()

    def _credential(self, target: Target, settings: AzureSettings) -> tuple[Any, Any]:
        """(cache key, TokenCredential); the reference is read now (delivery time)."""
        if settings.credentials is None:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - extra

            return None, DefaultAzureCredential()
        values = dict(target.credentials(settings.credentials).values)
        key = tuple(sorted(values.items()))  # in memory only, as the credential holds them
        if "access_token" in values:
            return key, _StaticToken(values["access_token"])
        if not all(values.get(k) for k in ("tenant_id", "client_id", "client_secret")):
            raise BackendUnavailable(
                f"instance {target.instance_id}: credentials {settings.credentials} hold "
                "neither tenant_id, client_id and client_secret nor access_token",
                target=target.instance_id,
            )
        from azure.identity import ClientSecretCredential  # noqa: PLC0415 - extra

        return key, ClientSecretCredential(
            values["tenant_id"], values["client_id"], values["client_secret"]
        )

    def _session(self, target: Target, settings: AzureSettings) -> _Session:
        serialconsole, _ = _import_sdk()
        key, credential = self._credential(target, settings)
        cache_key = (settings.subscription, settings.arm, key)
        with self._lock:
            found = self._sessions.get(cache_key)
        if found is not None:
            return found
        client = serialconsole.MicrosoftSerialConsoleClient(
            credential,
            settings.subscription,
            base_url=settings.arm,
            credential_scopes=[settings.scope],
            retry_total=0,  # azure-core retries POST on 500/503/504: never for an NMI
        )
        with self._lock:
            return self._sessions.setdefault(cache_key, _Session(client, credential))

    def _options(self, settings: AzureSettings) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "connection_timeout": settings.seconds,
            "read_timeout": settings.seconds,
        }
        if urllib.parse.urlsplit(settings.arm).scheme == "http":  # loopback only (validated)
            opts["enforce_https"] = False
        return opts

    def _json(
        self, session: _Session, settings: AzureSettings, method: str, url: str, **kw: Any
    ) -> Any:
        from azure.core.rest import HttpRequest  # noqa: PLC0415 - with the optional extra

        response = session.client.send_request(
            HttpRequest(method, url, **kw), **self._options(settings)
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def _vm(self, session: _Session, settings: AzureSettings) -> Mapping[str, Any]:
        url = settings.arm + settings.vm_path
        params = {"$expand": "instanceView", "api-version": COMPUTE_API_VERSION}
        reply = self._json(session, settings, "GET", url, params=params)
        return reply if isinstance(reply, Mapping) else {}

    # --- the Backend interface ----------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> AzureSettings:
        """:class:`AzureSettings` from a target mapping.

        :raises ConfigError: a missing or malformed ``subscription``, ``resource_group`` or
            ``vm``, an ``arm_endpoint`` that is not https (http only to loopback), a bad
            ``timeout``.
        """
        return AzureSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        settings = AzureSettings.stored(target)
        with map_azure_errors(target, settings):
            vm = self._vm(self._session(target, settings), settings)
        return power_state((vm.get("properties") or {}).get("instanceView") or {})

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        settings = AzureSettings.stored(target)
        iid, where = target.instance_id, settings.where
        sent = threading.Event()
        with map_azure_errors(target, settings, sent=sent):
            from azure.core.rest import HttpRequest  # noqa: PLC0415 - with the optional extra

            session = self._session(target, settings)
            self._preconditions(session, settings, target)
            port = session.client.serial_ports.connect(
                resource_group_name=settings.resource_group,
                resource_provider_namespace="Microsoft.Compute",
                parent_resource_type="virtualMachines",
                parent_resource=settings.vm,
                serial_port="0",
                **self._options(settings),
            )
            socket_url = str(port.connection_string or "")
            if not socket_url.endswith("/client") or endpoint_problem(socket_url, "wss"):
                raise BackendError(
                    f"{where}: the serial console gave an unexpected address "
                    f"{remote_text(socket_url)!r}; not sending the ARM token there",
                    target=iid,
                )
            token = session.credential.get_token(settings.scope).token
            request_id = str(uuid.uuid4())
            with self._console(socket_url, token, settings):
                admin = self._admin_url(socket_url)
                sent.set()
                response = session.client.send_request(
                    HttpRequest(
                        "POST",
                        admin,
                        json={"command": "nmi", "requestId": request_id, "commandParameters": {}},
                        headers={"Accept": "application/json", "Accept-Language": "en"},
                    ),
                    **self._options(settings),
                )
                response.raise_for_status()
                if response.status_code != 200:  # the console's success is 200, nothing else
                    raise DeliveryUnconfirmed(
                        f"{where}: the NMI command was answered HTTP {response.status_code}, "
                        "not 200; delivery is unconfirmed",
                        target=iid,
                    )
        log.info("serial console NMI accepted for %s (%s)", iid, request_id)
        return NMIResult(
            self.name, iid, f"NMI accepted by the Azure Serial Console ({where}, {request_id})"
        )

    def _preconditions(self, session: _Session, settings: AzureSettings, target: Target) -> None:
        iid, where = target.instance_id, settings.where
        status = session.client.get_console_status("default", **self._options(settings))
        props = getattr(status, "properties", None)
        if props is None or getattr(props, "disabled", None) is not False:
            raise NMINotSupported(
                f"{where}: the Azure Serial Console is not enabled for subscription "
                f"{settings.subscription} (az serial-console enable); NMI not sent",
                target=iid,
            )
        vm = self._vm(session, settings)
        properties = vm.get("properties") or {}
        state = power_state(properties.get("instanceView") or {})
        if state is not InstanceState.RUNNING:
            raise IncorrectState(
                f"{where}: the VM is {state}, not running; NMI not sent", target=iid
            )
        boot = (properties.get("diagnosticsProfile") or {}).get("bootDiagnostics") or {}
        if boot.get("enabled") is not True:
            raise NMINotSupported(
                f"{where}: boot diagnostics are not enabled on the VM, and the serial console "
                "needs them (az vm boot-diagnostics enable); NMI not sent",
                target=iid,
            )

    @contextlib.contextmanager
    def _console(self, socket_url: str, token: str, settings: AzureSettings) -> Iterator[None]:
        """Open the console session (as the portal and the CLI do) and wait for its first
        message before sending the command; close it afterwards."""
        _, websocket = _import_sdk()
        query = urllib.parse.urlencode({"authorization": token})
        ws = websocket.create_connection(f"{socket_url}?{query}", timeout=settings.seconds)
        try:
            ws.recv()
            yield
        finally:
            with contextlib.suppress(Exception):  # the command's outcome is what counts
                ws.close(timeout=min(2.0, settings.seconds))

    @staticmethod
    def _admin_url(socket_url: str) -> str:
        parts = urllib.parse.urlsplit(socket_url)
        scheme = "https" if parts.scheme == "wss" else "http"
        path = parts.path.removesuffix("/client") + "/adminCommand/nmi"
        return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with contextlib.suppress(Exception):  # closing: never fail on the way out
                session.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
