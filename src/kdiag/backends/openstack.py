"""OpenStack Nova servers through openstacksdk: the ``trigger_crash_dump`` server action.

Target settings (:class:`OpenStackSettings`): ``cloud`` (an entry of the operator's
``clouds.yaml``, found where openstacksdk looks: ``$OS_CLIENT_CONFIG_FILE``,
``~/.config/openstack``, ``/etc/openstack``; its secrets stay there), ``server`` (a server
id or a unique name), and ``timeout`` (seconds for each HTTP exchange and for Nova's
confirmation, default 30).

``state`` reads the server (``GET /servers/{id}``).  ``send_nmi`` refuses a server that is
not ``ACTIVE`` (``IncorrectInstanceState``) and a compute API whose maximum microversion is
below 2.17 (``UnsupportedOperation``), then posts ``{"trigger_crash_dump": null}`` to
``/servers/{id}/action`` with ``OpenStack-API-Version: compute 2.17``.  Nova answers 202
before anything reaches the hypervisor (the action is an RPC *cast*: "not supported" and
"not running" happen later, on the compute host), so a 202 is not yet a delivery: the backend
then reads the instance action of that request (``os-instance-actions/{request-id}``,
microversion 2.51, where events are visible to the server's owner) until its
``compute_trigger_crash_dump`` event finishes.  ``Success`` is a delivery; ``Error`` is a
failure (nothing was delivered); no verdict within the timeout is
:class:`~kdiag.errors.DeliveryUnconfirmed`.

Every openstacksdk and keystoneauth error is mapped in :func:`map_openstack_errors`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from kdiag.backends.base import NMI_ARCHITECTURES, InstanceState, NMIResult, Target, TargetSettings
from kdiag.backends.remote import Refusal, StatusErrors, remote_text
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
    "MIN_MICROVERSION",
    "OpenStackBackend",
    "OpenStackSettings",
    "map_openstack_errors",
    "server_state",
)

log = logging.getLogger("kdiag.backends.openstack")

DEFAULT_TIMEOUT = 30.0
MIN_MICROVERSION = (2, 17)
"""``trigger_crash_dump`` exists from compute API 2.17."""
_EVENTS_MICROVERSION = "2.51"  # instance-action events visible to non-admin users
_EVENT = "compute_trigger_crash_dump"
_POLL_SECONDS = 0.5

#: Nova server statuses as kdiag states; only ACTIVE takes the action here.
_STATES = {
    "ACTIVE": InstanceState.RUNNING,
    "BUILD": InstanceState.PENDING,
    "REBUILD": InstanceState.PENDING,
    "REBOOT": InstanceState.PENDING,
    "HARD_REBOOT": InstanceState.PENDING,
    "SHUTOFF": InstanceState.STOPPED,
    "SHELVED": InstanceState.STOPPED,
    "SHELVED_OFFLOADED": InstanceState.STOPPED,
    "DELETED": InstanceState.TERMINATED,
    "SOFT_DELETED": InstanceState.TERMINATED,
}


def server_state(status: str) -> InstanceState:
    """The :class:`InstanceState` of a Nova server status; ``paused`` for every status that
    holds the server without an EC2 name (PAUSED, SUSPENDED, RESCUE, RESIZE, MIGRATING,
    ERROR, UNKNOWN, ...)."""
    return _STATES.get(status.upper(), InstanceState.PAUSED)


@dataclass(frozen=True, slots=True)
class OpenStackSettings(TargetSettings):
    """An openstack target: which clouds.yaml entry, which server."""

    BACKEND: ClassVar[str] = "openstack"
    MAX_TIMEOUT: ClassVar[float] = 600.0  # Nova's verdict comes from the compute host, later

    cloud: str
    """The clouds.yaml entry (its credentials stay in that file)."""
    server: str
    """A server id, or a name unique in the project."""
    timeout: float | None = None
    """Seconds per HTTP exchange and for Nova's confirmation (default 30)."""

    def validate(self) -> None:
        if not self.cloud.strip():
            raise self.invalid("cloud", "a clouds.yaml entry name is required")
        if not self.server.strip() or "/" in self.server:
            raise self.invalid("server", f"a server id or name, not {self.server!r}")

    @property
    def seconds(self) -> float:
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout


def _import_sdk() -> Any:
    try:
        import openstack  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise BackendUnavailable(
            "the openstack backend needs openstacksdk: pip install 'kdiag[openstack]'"
        ) from exc
    # openstacksdk warns its own developers of its internal deprecations on ordinary calls
    # (4.22: "Support for InfluxDB" on every connect, configured or not, and
    # "_compute_attributes" on every resource): not kdiag's users' concern.  Re-added on
    # each use (no duplicates), since callers such as test runners reset the filters.
    warnings.filterwarnings("ignore", category=openstack.warnings.OpenStackDeprecationWarning)
    warnings.filterwarnings("ignore", category=openstack.warnings._RemovedInSDKWarning)
    return openstack


#: HTTP statuses from Keystone or Nova.
_HTTP = StatusErrors(
    "the cloud refused",
    "trigger_crash_dump",
    Refusal((404,), TargetNotFound, "no such server"),
    Refusal(
        (409,),
        IncorrectState,
        "the server is locked or not in a state that allows a crash dump",
    ),
    Refusal((400,), NMINotSupported, "Nova refused the crash dump"),
    Refusal((401, 403), BackendAuthFailure, "the cloud refused kdiag's credentials or policy"),
    Refusal((429,), BackendUnavailable, "throttled, nothing sent"),
)


@contextlib.contextmanager
def map_openstack_errors(
    target: Target, settings: OpenStackSettings, *, sent: threading.Event | None = None
) -> Iterator[None]:
    """Turn openstacksdk and keystoneauth errors into kdiag's backend errors (the one
    boundary).  ``sent`` is set just before the action is posted; after it, a lost
    connection or a timeout is ``DeliveryUnconfirmed``."""
    where = f"openstack {settings.cloud}/{settings.server} ({target.instance_id})"
    iid = target.instance_id
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        on_wire = sent is not None and sent.is_set()
        raise _mapped(exc, where, iid, on_wire=on_wire) from exc


def _mapped(exc: Exception, where: str, iid: str, *, on_wire: bool) -> Exception:
    from keystoneauth1 import exceptions as ks  # noqa: PLC0415 - with the optional extra
    from openstack import exceptions as sdk  # noqa: PLC0415 - with the optional extra

    if isinstance(exc, sdk.HttpException) and exc.status_code is not None:
        said = remote_text(exc.details or exc.message)
        return _HTTP.error(int(exc.status_code), said, where, iid, on_wire=on_wire)
    if isinstance(exc, ks.HttpError) and exc.http_status is not None:
        return _HTTP.error(int(exc.http_status), remote_text(exc), where, iid, on_wire=on_wire)
    if isinstance(exc, sdk.DuplicateResource):
        return BackendError(f"{where}: more than one server has that name; use its id", target=iid)
    if isinstance(exc, sdk.ConfigException | ks.MissingRequiredOptions | ks.EndpointNotFound):
        return BackendUnavailable(f"{where}: {remote_text(exc)}", target=iid)
    if isinstance(exc, ks.ConnectionError | ks.AuthorizationFailure):
        if on_wire:
            return DeliveryUnconfirmed(
                f"{where}: {type(exc).__name__} after trigger_crash_dump was sent; "
                "delivery of the NMI is unconfirmed",
                target=iid,
            )
        if isinstance(exc, ks.ConnectTimeout):  # keystoneauth's name for every timeout
            return BackendTimeout(f"{where}: no answer in time", target=iid)
        return BackendUnavailable(f"{where}: cannot connect: {remote_text(exc)}", target=iid)
    if isinstance(exc, sdk.SDKException | ks.ClientException):
        if on_wire:
            return DeliveryUnconfirmed(f"{where}: {remote_text(exc)}; unconfirmed", target=iid)
        return BackendUnavailable(f"{where}: {remote_text(exc)}", target=iid)
    return exc  # not an SDK error: a bug, raised as is (the send path calls it unconfirmed)


def _version(value: object) -> tuple[int, int]:
    """A microversion as (major, minor): keystoneauth gives a tuple, text is "2.96"."""
    parts = value if isinstance(value, tuple) else str(value or "0.0").split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, TypeError, IndexError):
        return (0, 0)


class OpenStackBackend:
    """Trigger crash dumps of Nova servers with openstacksdk."""

    name = "openstack"

    def __init__(self) -> None:
        self._connections: dict[tuple[str, float], Any] = {}
        self._lock = threading.Lock()

    def _connection(self, settings: OpenStackSettings) -> Any:
        key = (settings.cloud, settings.seconds)
        with self._lock:
            conn = self._connections.get(key)
        if conn is not None:
            return conn
        openstack = _import_sdk()
        conn = openstack.connect(cloud=settings.cloud, api_timeout=settings.seconds)
        with self._lock:
            return self._connections.setdefault(key, conn)

    def _server(self, conn: Any, settings: OpenStackSettings) -> Any:
        return conn.compute.find_server(settings.server, ignore_missing=False)

    # --- the Backend interface ----------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> OpenStackSettings:
        """:class:`OpenStackSettings` from a target mapping.

        :raises ConfigError: no ``cloud`` or ``server``, or a bad ``timeout``.
        """
        return OpenStackSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        settings = OpenStackSettings.stored(target)
        with map_openstack_errors(target, settings):
            server = self._server(self._connection(settings), settings)
        return server_state(str(server.status or ""))

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        settings = OpenStackSettings.stored(target)
        where = f"openstack {settings.cloud}/{settings.server}"
        iid = target.instance_id
        sent = threading.Event()
        with map_openstack_errors(target, settings, sent=sent):
            conn = self._connection(settings)
            server = self._server(conn, settings)
            status = str(server.status or "")
            if status.upper() != "ACTIVE":
                raise IncorrectState(
                    f"{where}: the server is {status or 'in no status'}, not ACTIVE; NMI not sent",
                    target=iid,
                )
            top = _version(conn.compute.get_endpoint_data().max_microversion)
            if top < MIN_MICROVERSION:
                raise NMINotSupported(
                    f"{where}: the compute API's maximum microversion is "
                    f"{top[0]}.{top[1]}; trigger_crash_dump needs 2.17",
                    target=iid,
                )
            sent.set()
            response = conn.compute.post(
                f"/servers/{server.id}/action",
                json={"trigger_crash_dump": None},
                microversion="2.17",
                raise_exc=False,
            )
            if response.status_code != 202:
                raise _HTTP.error(
                    response.status_code, remote_text(response.text), where, iid, on_wire=True
                )
            request_id = response.headers.get("x-openstack-request-id") or response.headers.get(
                "x-compute-request-id"
            )
            result = self._confirm(conn, server.id, request_id, settings, target)
        log.info("trigger_crash_dump confirmed for %s (%s)", iid, request_id)
        return NMIResult(self.name, iid, result)

    def _confirm(
        self,
        conn: Any,
        server_id: str,
        request_id: str | None,
        settings: OpenStackSettings,
        target: Target,
    ) -> str:
        """Wait for the compute host's verdict on the cast; the detail of a success."""
        where, iid = f"openstack {settings.cloud}/{settings.server}", target.instance_id
        if not request_id:
            raise DeliveryUnconfirmed(
                f"{where}: Nova accepted trigger_crash_dump (202) without a request id to "
                "follow; delivery is unconfirmed",
                target=iid,
            )
        deadline = time.monotonic() + settings.seconds
        path = f"/servers/{server_id}/os-instance-actions/{request_id}"
        while True:
            reply = conn.compute.get(path, microversion=_EVENTS_MICROVERSION, raise_exc=False)
            if reply.status_code == 200:
                action = (reply.json() or {}).get("instanceAction") or {}
                for event in action.get("events") or []:
                    if event.get("event") != _EVENT or not event.get("finish_time"):
                        continue
                    if event.get("result") == "Success":
                        return (
                            f"NMI delivered by the compute host (trigger_crash_dump, "
                            f"request {request_id})"
                        )
                    raise BackendError(
                        f"{where}: the compute host failed trigger_crash_dump "
                        f"(request {request_id}, result {remote_text(event.get('result'))}); "
                        "see 'openstack server event show'",
                        target=iid,
                    )
            elif reply.status_code not in (404,):  # 404: the action is not recorded yet
                raise DeliveryUnconfirmed(
                    f"{where}: Nova accepted trigger_crash_dump (202, request {request_id}) "
                    f"but its instance action cannot be read (HTTP {reply.status_code}); "
                    "delivery is unconfirmed",
                    target=iid,
                )
            if time.monotonic() >= deadline:
                raise DeliveryUnconfirmed(
                    f"{where}: Nova accepted trigger_crash_dump (202, request {request_id}) "
                    f"but the compute host gave no verdict in {settings.seconds:g} s; "
                    "delivery is unconfirmed",
                    target=iid,
                )
            time.sleep(_POLL_SECONDS)

    def close(self) -> None:
        with self._lock:
            conns, self._connections = list(self._connections.values()), {}
        for conn in conns:
            with contextlib.suppress(Exception):  # closing: never fail on the way out
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
