"""A libvirt domain through libvirt-python: ``isActive()``/``state()``, then ``injectNMI(0)``.

Target settings (:class:`LibvirtSettings`): ``uri`` (a libvirt connection URI:
``qemu:///system``, ``qemu+ssh://host/system``, ``qemu:///session?socket=/path``) and
``domain`` (its name, or its UUID), optionally ``timeout`` in seconds (default 10).

libvirt-python is the optional extra ``kdiag[libvirt]``; it is imported on first use, so
instances can be registered without it, and a call without it is a
:class:`~kdiag.errors.BackendUnavailable` naming the extra.

libvirt's calls block in C and have no per-call timeout, so each call runs in a worker
thread and is waited for at most ``timeout`` seconds: a connection or lookup that does not
answer in time is :class:`~kdiag.errors.BackendTimeout` (nothing was sent); an
``injectNMI`` that does not answer in time is :class:`~kdiag.errors.DeliveryUnconfirmed`.
The connection is opened with ``openAuth`` and no credential callbacks, so nothing ever
prompts on a terminal (an SSH transport gets ``no_tty=1``).  One connection per call (a
unix socket opens in about a millisecond; a stale cached connection would be a failure
mode of its own).

``send_nmi`` refuses a domain that is not active or whose state is not ``running`` (an NMI
to a paused domain is queued until someone resumes it: not a delivery), then calls
``injectNMI(0)``; libvirt returns once QEMU's monitor accepted ``inject-nmi``.  Every
``libvirtError`` is mapped in :func:`map_libvirt_errors`, the one boundary:
``VIR_ERR_NO_SUPPORT`` / ``VIR_ERR_OPERATION_UNSUPPORTED`` -> ``NMINotSupported``,
``VIR_ERR_OPERATION_INVALID`` (not running) -> ``IncorrectState``, ``VIR_ERR_NO_DOMAIN``
-> ``TargetNotFound``, connection, RPC and authentication failures -> ``BackendUnavailable``;
once ``injectNMI`` was called, anything that is not a clear refusal is
``DeliveryUnconfirmed``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import unquote_plus

from kdiag.backends.base import NMI_ARCHITECTURES, InstanceState, NMIResult, Target, TargetSettings
from kdiag.backends.bounded import BoundedCall
from kdiag.backends.credentials import mask_text
from kdiag.backends.remote import remote_text
from kdiag.errors import (
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
    "LibvirtBackend",
    "LibvirtSettings",
    "domain_state",
    "import_libvirt",
    "map_libvirt_errors",
    "non_interactive",
)

log = logging.getLogger("kdiag.backends.libvirt")

DEFAULT_TIMEOUT = 10.0
EXTRA = "kdiag[libvirt]"
_MAX_URI = 1024
_MAX_DOMAIN = 256
# driver[+transport]://[user@][host[:port]]/[path][?query]: what virConnectOpen parses
_URI = re.compile(r"[a-z][a-z0-9]*(?:\+[a-z0-9]+)?://[^\s]*")
# libvirt transports/parameters that make the client run a program of the URI's choosing
_RUNS_A_COMMAND = re.compile(r"^[a-z0-9]+\+ext:|[?&]command=", re.IGNORECASE)
_UNSUPPORTED_TEXT = re.compile(r"\bnot (?:currently )?supported\b", re.IGNORECASE)
_T = TypeVar("_T")

# libvirt's virErrorNumber values used here (stable: part of libvirt's ABI).
VIR_ERR_INTERNAL_ERROR = 1
VIR_ERR_NO_SUPPORT = 3
VIR_ERR_NO_CONNECT = 5
VIR_ERR_INVALID_CONN = 6
VIR_ERR_INVALID_DOMAIN = 7
VIR_ERR_OPERATION_FAILED = 9
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_RPC = 39
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_AUTH_FAILED = 45
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_AUTH_CANCELLED = 79
VIR_ERR_OPERATION_UNSUPPORTED = 84
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_OPERATION_DENIED = 29  # a read-only connection
VIR_ERR_AUTH_UNAVAILABLE = 94
VIR_ERR_ACCESS_DENIED = 88  # libvirt's access control (polkit, ACL driver)

_UNAVAILABLE = frozenset(
    {
        VIR_ERR_NO_CONNECT,
        VIR_ERR_INVALID_CONN,
        VIR_ERR_SYSTEM_ERROR,
        VIR_ERR_RPC,
        VIR_ERR_AUTH_FAILED,
        VIR_ERR_AUTH_CANCELLED,
        VIR_ERR_AUTH_UNAVAILABLE,
    }
)
#: libvirtd refused the caller's rights: nothing was done, before or after injectNMI
_DENIED = frozenset({VIR_ERR_OPERATION_DENIED, VIR_ERR_ACCESS_DENIED})
_UNSUPPORTED = frozenset(
    {VIR_ERR_NO_SUPPORT, VIR_ERR_OPERATION_UNSUPPORTED, VIR_ERR_ARGUMENT_UNSUPPORTED}
)

# virDomainState
_NOSTATE, _RUNNING, _BLOCKED, _PAUSED, _SHUTDOWN, _SHUTOFF, _CRASHED, _PMSUSPENDED = range(8)
_PAUSED_STARTING_UP = 11  # virDomainPausedReason: paused while the domain starts

_STATES = {
    _NOSTATE: InstanceState.PENDING,
    _RUNNING: InstanceState.RUNNING,
    _BLOCKED: InstanceState.RUNNING,  # running, its vCPUs waiting on a resource
    _PAUSED: InstanceState.PAUSED,
    _SHUTDOWN: InstanceState.STOPPING,  # being shut down
    _SHUTOFF: InstanceState.STOPPED,
    _CRASHED: InstanceState.PAUSED,  # on_crash=preserve: the vCPUs are held
    _PMSUSPENDED: InstanceState.PAUSED,
}


def domain_state(state: int, reason: int = 0) -> InstanceState:
    """The :class:`InstanceState` of libvirt's ``virDomainState`` (``dom.state()``)."""
    if state == _PAUSED and reason == _PAUSED_STARTING_UP:
        return InstanceState.PENDING
    return _STATES.get(state, InstanceState.PAUSED)


@dataclass(frozen=True, slots=True)
class LibvirtSettings(TargetSettings):
    """A libvirt target: the connection URI and the domain."""

    BACKEND: ClassVar[str] = "libvirt"

    uri: str
    """A libvirt connection URI: ``qemu:///system``, ``qemu+ssh://host/system``, ..."""
    domain: str
    """The domain's name, or its UUID."""
    timeout: float | None = None
    """Seconds for each libvirt call; the backend's default (10) when not set."""

    def validate(self) -> None:
        if not self.uri or len(self.uri) > _MAX_URI or not _URI.fullmatch(self.uri):
            shown = mask_text(self.uri[:80])
            raise self.invalid(
                "uri",
                f"must be a libvirt URI such as qemu:///system or qemu+ssh://host/system, "
                f"not {shown!r}",
            )
        # libvirt unescapes parameter names: check the decoded form too
        if _RUNS_A_COMMAND.search(self.uri) or _RUNS_A_COMMAND.search(unquote_plus(self.uri)):
            raise self.invalid(
                "uri",
                "the ext transport and the command= parameter run a local program: refused "
                "(use ssh, tls, tcp or a unix socket)",
            )
        if self.uri.startswith("test:") and self.uri != "test:///default":
            raise self.invalid("uri", "of libvirt's test driver only test:///default is taken")
        if (
            not self.domain
            or len(self.domain) > _MAX_DOMAIN
            or any(ord(c) < 0x20 or c == "\x7f" for c in self.domain)
        ):
            raise self.invalid(
                "domain", f"a domain name or UUID of 1-{_MAX_DOMAIN} printable characters"
            )

    @property
    def domain_uuid(self) -> str | None:
        """``domain`` as a canonical UUID string when it is one."""
        try:
            return str(uuid.UUID(self.domain))
        except ValueError:
            return None


_SSH_TRANSPORT = re.compile(r"[a-z][a-z0-9]*\+(?:ssh|libssh|libssh2)://")


def non_interactive(uri: str) -> str:
    """``uri`` with ``no_tty=1`` added for an SSH transport that does not set it: ssh must
    fail rather than ask for a password on a terminal (kdiag may run as a service)."""
    if not _SSH_TRANSPORT.match(uri) or re.search(r"[?&]no_tty=", uri):
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}no_tty=1"


def import_libvirt() -> Any:
    """The libvirt module, or ``BackendUnavailable`` naming the extra."""
    try:
        import libvirt  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise BackendUnavailable(
            f"the libvirt backend needs libvirt-python: pip install '{EXTRA}' "
            f"(and the libvirt client library): {exc}"
        ) from exc
    with _SILENCE_LOCK:
        if not _SILENCED:
            # libvirt prints every error to stderr by default; kdiag maps and reports them
            libvirt.registerErrorHandler(_ignore_error, None)
            _SILENCED.append(True)
    return libvirt


_SILENCE_LOCK = threading.Lock()
_SILENCED: list[bool] = []


def _ignore_error(_ctx: object, _err: object) -> None:
    """libvirt's error callback: the error is raised as libvirtError and mapped instead."""


def _remote_text(exc: Exception) -> str:
    """libvirt's message, masked and bounded (it may quote a URI or a peer's text)."""
    get = getattr(exc, "get_error_message", None)
    return remote_text(get() if callable(get) else exc) or type(exc).__name__


def _error_code(exc: Exception) -> int | None:
    get = getattr(exc, "get_error_code", None)
    code = get() if callable(get) else None
    return code if isinstance(code, int) else None


@contextlib.contextmanager
def map_libvirt_errors(
    target: Target, settings: LibvirtSettings, *, sent: threading.Event | None = None
) -> Iterator[None]:
    """Turn ``libvirtError`` into kdiag's errors: the one boundary.

    :param sent: set just before ``injectNMI`` is called.  Once set, anything but a clear
        refusal (not supported, not running, no such domain) is ``DeliveryUnconfirmed``.
    """
    where = _where(settings)
    iid = target.instance_id
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        after_send = sent is not None and sent.is_set()
        code = _error_code(exc)
        if code is None:  # not a libvirtError: a bug, or the binding itself failing
            if after_send:
                raise DeliveryUnconfirmed(
                    f"{where}: {type(exc).__name__} after injectNMI was called; delivery "
                    "of the NMI is unconfirmed",
                    target=iid,
                ) from exc
            raise
        raise _classify(code, _remote_text(exc), where, iid, after_send=after_send) from exc


def _where(settings: LibvirtSettings) -> str:
    return f"libvirt {mask_text(settings.uri)} domain {settings.domain!r}"


def _classify(code: int, text: str, where: str, iid: str, *, after_send: bool) -> BackendError:
    """The kdiag error for libvirt error ``code`` (see :func:`map_libvirt_errors`)."""
    if code in _UNSUPPORTED or (
        code in (VIR_ERR_INTERNAL_ERROR, VIR_ERR_OPERATION_FAILED)
        and _UNSUPPORTED_TEXT.search(text)
    ):
        return NMINotSupported(
            f"{where}: the hypervisor cannot inject an NMI into this domain: {text}", target=iid
        )
    if code in _DENIED:
        return BackendUnavailable(
            f"{where}: libvirtd refused kdiag's connection the right: {text}", target=iid
        )
    if code == VIR_ERR_OPERATION_INVALID:
        return IncorrectState(f"{where}: {text}; NMI not sent", target=iid)
    if code in (VIR_ERR_NO_DOMAIN, VIR_ERR_INVALID_DOMAIN) and not after_send:
        return TargetNotFound(f"{where}: no such domain: {text}", target=iid)
    if after_send:
        return DeliveryUnconfirmed(
            f"{where}: {text} (libvirt error {code}) after injectNMI was called; "
            "delivery of the NMI is unconfirmed",
            target=iid,
        )
    if code == VIR_ERR_OPERATION_TIMEOUT:
        return BackendTimeout(f"{where}: {text}", target=iid)
    if code in _UNAVAILABLE:
        return BackendUnavailable(f"{where}: {text}", target=iid)
    return BackendError(f"{where}: {text} (libvirt error {code})", target=iid)


class LibvirtBackend:
    """Interrupt libvirt domains.  Thread-safe: every call opens its own connection."""

    name = "libvirt"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    # --- plumbing --------------------------------------------------------------------------

    def _call(
        self, target: Target, settings: LibvirtSettings, work: Callable[[Any, BoundedCall], _T]
    ) -> _T:
        """Run ``work(domain, call)`` on a fresh connection in a worker, waited for at most
        ``timeout``; ``work`` passes ``call.send()`` just before ``injectNMI``, so a worker
        abandoned before it never calls it (the caller is told nothing was sent, and that
        stays true)."""
        libvirt = import_libvirt()
        timeout = self.timeout if settings.timeout is None else settings.timeout
        call = BoundedCall(_where(settings), "injectNMI", target.instance_id, timeout)

        def run() -> _T:
            conn = libvirt.openAuth(non_interactive(settings.uri), [[], None, None], 0)
            try:
                uid = settings.domain_uuid
                dom = None
                if uid is not None:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom = conn.lookupByUUIDString(uid)
                if dom is None:
                    dom = conn.lookupByName(settings.domain)
                return work(dom, call)
            finally:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()

        with map_libvirt_errors(target, settings, sent=call.sent):
            return call.run(run, thread_name="kdiag-libvirt")

    # --- the Backend interface -------------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> LibvirtSettings:
        """:class:`LibvirtSettings` from a target mapping.

        :raises ConfigError: no ``uri`` or ``domain``, an unknown key, a URI that is not a
            libvirt URI, or a ``timeout`` out of range.
        """
        return LibvirtSettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        settings = LibvirtSettings.stored(target)

        def read(dom: Any, _call: BoundedCall) -> InstanceState:
            if not dom.isActive():
                return InstanceState.STOPPED
            state, reason = dom.state()
            return domain_state(int(state), int(reason))

        return self._call(target, settings, read)

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        settings = LibvirtSettings.stored(target)
        where = f"libvirt domain {settings.domain!r}"

        def inject(dom: Any, call: BoundedCall) -> None:
            if not dom.isActive():
                raise IncorrectState(
                    f"{where} is shut off, not running; NMI not sent", target=target.instance_id
                )
            state, reason = dom.state()
            current = domain_state(int(state), int(reason))
            if current is not InstanceState.RUNNING:
                raise IncorrectState(
                    f"{where} is {current}, not running; NMI not sent", target=target.instance_id
                )
            call.send()
            dom.injectNMI(0)

        self._call(target, settings, inject)
        log.info("injectNMI accepted by libvirt for %s", target.instance_id)
        return NMIResult(
            self.name,
            target.instance_id,
            f"NMI accepted by libvirt (injectNMI on domain {settings.domain})",
        )

    def close(self) -> None:
        """Nothing to free: each call opens and closes its own connection (an abandoned
        worker ends by itself, and never calls ``injectNMI``)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
