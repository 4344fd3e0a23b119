"""Amazon EC2 (or any EC2-compatible endpoint, kdiag's own included) through boto3.

Target settings (:class:`AWSSettings`): ``region``, ``instance_id`` (the id *at that
endpoint*), optionally ``endpoint_url`` (another kdiag, a regional or per-team one: one
kdiag can front another), ``credentials`` (a reference resolving to ``access_key_id`` and
``secret_access_key``, optionally ``session_token``; ``username``/``password`` are read as
the key id and secret) or, without it, boto3's default credential chain, and ``timeout``
(seconds for connect and for read, default 10).

``state`` asks ``DescribeInstances``; ``send_nmi`` passes ``SendDiagnosticInterrupt``
through once, never retried: the endpoint checks state and instance type itself, and
``kdiag``'s own send path asks ``state`` first.  The reply must be HTTP 200 with
``<return>true</return>``; anything else is not a success.

Every botocore error is mapped in :func:`map_aws_errors`, the one boundary.  Whether the
request may have left decides the class: a failure to connect is ``BackendUnavailable`` /
``BackendTimeout`` (nothing sent); once the request is on the wire, a read timeout, a cut
connection, an unparsable reply, a 5xx other than an explicit "not processed" (throttling,
``Unavailable``) and the back kdiag's own ``DeliveryUnconfirmed`` / ``BackendTimeout`` are
:class:`~kdiag.errors.DeliveryUnconfirmed`: never a success, never retried.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.parsers import ResponseParserError

from kdiag._version import __version__
from kdiag.backends.base import NMI_ARCHITECTURES, InstanceState, NMIResult, Target, TargetSettings
from kdiag.backends.credentials import Credentials, CredentialsRef
from kdiag.backends.remote import StatusErrors, endpoint_problem, remote_text
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
    TargetNotFound,
)

__all__ = ("DEFAULT_TIMEOUT", "AWSBackend", "AWSSettings", "map_aws_errors")

log = logging.getLogger("kdiag.backends.aws")

DEFAULT_TIMEOUT = 10.0
_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+-\d{1,2}")
_RETURN_TRUE = re.compile(rb"<return>\s*true\s*</return>")

_THROTTLED = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
    }
)
_REFUSED_CREDENTIALS = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "IncompleteSignature",
        "RequestExpired",
        "ExpiredToken",
        "ExpiredTokenException",
        "OptInRequired",
        "Blocked",
    }
)
_NOT_FOUND = frozenset(
    {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed", "TargetNotFound"}
)
# 503s that say the request was not processed (the back kdiag's BackendUnavailable too).
_NOT_PROCESSED = frozenset({"Unavailable", "ServiceUnavailable", "BackendUnavailable"})
# The back kdiag's answers for "the NMI may have left".
_UNCONFIRMED = frozenset({"DeliveryUnconfirmed", "BackendTimeout"})
#: What is left once the error code was read: the status (the codes are AWS's own).
_HTTP = StatusErrors("the endpoint refused", "SendDiagnosticInterrupt")


@dataclass(frozen=True, slots=True)
class AWSSettings(TargetSettings):
    """An aws target: which instance, where, and with which credentials."""

    BACKEND: ClassVar[str] = "aws"

    region: str
    """The endpoint's region (``us-east-1``): signs the requests."""
    instance_id: str
    """The instance id at the endpoint (``i-`` + 8 or 17 hex digits)."""
    endpoint_url: str | None = None
    """Another EC2-compatible endpoint (a kdiag); https, or http on loopback only."""
    credentials: CredentialsRef | None = None
    """A reference to the access key; without it, boto3's default chain."""
    timeout: float | None = None
    """Seconds for connect and for read (default 10)."""

    def validate(self) -> None:
        if not _REGION.fullmatch(self.region):
            raise self.invalid("region", f"not a region name (like us-east-1): {self.region!r}")
        if not _INSTANCE_ID.fullmatch(self.instance_id):
            raise self.invalid(
                "instance_id", f"not i- followed by 8 or 17 hex digits: {self.instance_id!r}"
            )
        if problem := endpoint_problem(self.endpoint_url):
            raise self.invalid("endpoint_url", problem)

    @property
    def seconds(self) -> float:
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    @property
    def where(self) -> str:
        host = urllib.parse.urlsplit(self.endpoint_url).netloc if self.endpoint_url else "EC2"
        return f"{host} {self.region} {self.instance_id}"


def _import_boto3() -> Any:
    try:
        import boto3  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise BackendUnavailable("the aws backend needs boto3: pip install 'kdiag[aws]'") from exc
    return boto3


@contextlib.contextmanager
def map_aws_errors(
    target: Target, settings: AWSSettings, *, sent: threading.Event | None = None
) -> Iterator[None]:
    """Turn botocore errors into kdiag's backend errors (the one boundary).

    :param sent: for ``SendDiagnosticInterrupt``: set by botocore's ``before-send`` event,
        just before the request goes on the wire.  ``None`` for read-only calls, whose
        failures are never ``DeliveryUnconfirmed``.
    """
    where = f"aws {settings.where} ({target.instance_id})"
    iid = target.instance_id
    try:
        yield
    except BackendError:
        raise
    except ClientError as exc:
        raise _client_error(exc, where, iid, sending=sent is not None) from exc
    except (EndpointConnectionError, SSLError, ProxyConnectionError) as exc:
        # Refused, unreachable, TLS or proxy handshake: the request never left.
        if isinstance(exc, ConnectTimeoutError):
            raise BackendTimeout(f"{where}: connect timed out", target=iid) from exc
        raise BackendUnavailable(f"{where}: cannot connect: {exc}", target=iid) from exc
    except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError) as exc:
        raise BackendUnavailable(f"{where}: no usable credentials: {exc}", target=iid) from exc
    except (NoRegionError, ParamValidationError) as exc:
        raise BackendUnavailable(f"{where}: {exc}", target=iid) from exc
    except (BotoCoreError, ResponseParserError, OSError) as exc:
        if sent is not None and sent.is_set():
            raise DeliveryUnconfirmed(
                f"{where}: {type(exc).__name__} after SendDiagnosticInterrupt was sent; "
                "delivery of the NMI is unconfirmed",
                target=iid,
            ) from exc
        if isinstance(exc, ReadTimeoutError):
            raise BackendTimeout(f"{where}: no answer in time", target=iid) from exc
        raise BackendUnavailable(f"{where}: {type(exc).__name__}: {exc}", target=iid) from exc


def _client_error(exc: ClientError, where: str, iid: str, *, sending: bool) -> BackendError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "")) or "Unknown"
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    said = f"{code}: {remote_text(error.get('Message', ''))}"
    if code in _UNCONFIRMED and sending:
        return DeliveryUnconfirmed(
            f"{where}: the endpoint cannot confirm delivery ({said})", target=iid
        )
    if code == "UnsupportedOperation":
        return NMINotSupported(f"{where}: the instance cannot take an NMI ({said})", target=iid)
    if code == "IncorrectInstanceState":
        return IncorrectState(f"{where}: the instance is not running ({said})", target=iid)
    if code in _NOT_FOUND:
        return TargetNotFound(f"{where}: no such instance ({said})", target=iid)
    if code in _THROTTLED:
        return BackendUnavailable(f"{where}: throttled, nothing sent ({said})", target=iid)
    if code in _REFUSED_CREDENTIALS:
        return BackendAuthFailure(
            f"{where}: the endpoint refused kdiag's credentials or authorization ({said})",
            target=iid,
        )
    return _HTTP.error(status, said, where, iid, on_wire=sending and code not in _NOT_PROCESSED)


@dataclass(frozen=True, slots=True)
class _Clients:
    read: Any  # DescribeInstances: standard retries
    send: Any  # SendDiagnosticInterrupt: one attempt, never retried


class _Call(threading.local):
    """Per-thread state of the SendDiagnosticInterrupt in flight (clients are shared)."""

    sent: threading.Event | None = None
    body: bytes | None = None
    status: int | None = None


class AWSBackend:
    """Interrupt EC2 instances, or instances behind another kdiag, with boto3."""

    name = "aws"

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], _Clients] = {}
        self._lock = threading.Lock()
        self._call = _Call()

    # --- clients ------------------------------------------------------------------------

    def _credentials(self, target: Target, settings: AWSSettings) -> dict[str, str]:
        if settings.credentials is None:
            return {}
        creds: Credentials = target.credentials(settings.credentials)
        values = creds.values
        key = values.get("access_key_id") or values.get("aws_access_key_id") or creds.username
        secret = (
            values.get("secret_access_key") or values.get("aws_secret_access_key") or creds.password
        )
        if not key or not secret:
            raise BackendUnavailable(
                f"instance {target.instance_id}: credentials {settings.credentials} hold no "
                "access_key_id and secret_access_key",
                target=target.instance_id,
            )
        out = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        token = values.get("session_token") or values.get("aws_session_token")
        if token:
            out["aws_session_token"] = token
        return out

    def _get_clients(self, target: Target, settings: AWSSettings) -> _Clients:
        creds = self._credentials(target, settings)
        key = (
            settings.region,
            settings.endpoint_url,
            settings.seconds,
            tuple(sorted(creds.items())),  # in memory only, as the client holds them anyway
        )
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
        boto3 = _import_boto3()
        from botocore.config import Config  # noqa: PLC0415 - with boto3, on first use

        session = boto3.session.Session(region_name=settings.region, **creds)
        common = {
            "connect_timeout": settings.seconds,
            "read_timeout": settings.seconds,
            "user_agent_extra": f"kdiag/{__version__}",
        }
        read = session.client(
            "ec2",
            endpoint_url=settings.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": 3}, **common),
        )
        send = session.client(
            "ec2",
            endpoint_url=settings.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, **common),
        )
        events = send.meta.events
        events.register("before-send.ec2.SendDiagnosticInterrupt", self._on_send)
        events.register("before-parse.ec2.SendDiagnosticInterrupt", self._on_reply)
        clients = _Clients(read, send)
        with self._lock:
            return self._clients.setdefault(key, clients)

    def _on_send(self, **_: Any) -> None:
        if self._call.sent is not None:
            self._call.sent.set()

    def _on_reply(self, response_dict: Mapping[str, Any] | None = None, **_: Any) -> None:
        if response_dict is not None:
            body = response_dict.get("body")
            self._call.body = body if isinstance(body, bytes) else None
            self._call.status = int(response_dict.get("status_code") or 0)

    # --- the Backend interface ----------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> AWSSettings:
        """:class:`AWSSettings` from a target mapping.

        :raises ConfigError: a missing ``region`` or ``instance_id``, a malformed one, an
            ``endpoint_url`` that is not https (http only to loopback), a bad ``timeout``.
        """
        return AWSSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        settings = AWSSettings.stored(target)
        with map_aws_errors(target, settings):
            clients = self._get_clients(target, settings)
            reply = clients.read.describe_instances(InstanceIds=[settings.instance_id])
        for reservation in reply.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                if instance.get("InstanceId") == settings.instance_id:
                    name = str(instance.get("State", {}).get("Name", ""))
                    try:
                        return InstanceState.parse(name, ec2_only=True)
                    except ConfigError:
                        raise BackendError(
                            f"aws {settings.where}: unknown instance state {remote_text(name)!r}",
                            target=target.instance_id,
                        ) from None
        raise TargetNotFound(
            f"aws {settings.where}: DescribeInstances does not list the instance",
            target=target.instance_id,
        )

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        settings = AWSSettings.stored(target)
        sent = threading.Event()
        self._call.sent, self._call.body, self._call.status = sent, None, None
        try:
            with map_aws_errors(target, settings, sent=sent):
                clients = self._get_clients(target, settings)
                reply = clients.send.send_diagnostic_interrupt(InstanceId=settings.instance_id)
            body, status = self._call.body, self._call.status
        finally:
            self._call.sent = None
        request_id = str(reply.get("ResponseMetadata", {}).get("RequestId", "") or "-")
        if status != 200 or body is None or not _RETURN_TRUE.search(body):
            raise DeliveryUnconfirmed(
                f"aws {settings.where}: SendDiagnosticInterrupt answered HTTP {status} without "
                f"<return>true</return> (request {request_id}); delivery is unconfirmed",
                target=target.instance_id,
            )
        log.info("SendDiagnosticInterrupt accepted for %s (%s)", target.instance_id, request_id)
        return NMIResult(
            self.name,
            target.instance_id,
            f"NMI accepted by {settings.where} (SendDiagnosticInterrupt, request {request_id})",
        )

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for pair in clients:
            for client in (pair.read, pair.send):
                with contextlib.suppress(Exception):  # closing: never fail on the way out
                    client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
