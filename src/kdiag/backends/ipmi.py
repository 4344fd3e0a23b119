"""A server behind an IPMI BMC, through pyghmi: power state, then "pulse diagnostic interrupt".

Target settings (:class:`IPMISettings`): ``address`` (the BMC's host name or IP), ``port``
(UDP, default 623), ``credentials`` (a reference: ``name:NAME``, ``file:/path`` or
``env:PREFIX`` with ``username`` and ``password``) and ``timeout`` (seconds for the whole
call, default 10).  IPMI 2.0 over LAN (RMCP+).

pyghmi is the optional extra ``kdiag[ipmi]``, imported on first use.

``send_nmi``:

1. opens an RMCP+ session.  pyghmi 1.6 asks for cipher suite 17 (HMAC-SHA256); a BMC may
   answer the open-session request with SHA-1 algorithms instead (suite 3) — pyghmi's own
   BMC server does, and so VirtualBMC 3.3, which is built on it.  pyghmi ignores the
   answer, computes SHA-256 digests and dies in ``struct.error`` on the 20-byte SHA-1 one
   (measured here: every login fails).  kdiag reads the algorithms the BMC chose and, when
   it chose RAKP-HMAC-SHA1 with HMAC-SHA1-96, sets the session to the state pyghmi's own
   SHA-1 fallback uses (:func:`_honour_bmc_cipher_suite`); any other mismatch fails the
   login cleanly;
2. reads the chassis power state (Get Chassis Status): it must be on, else
   ``IncorrectState`` — VirtualBMC answers "success" to a diagnostic interrupt for a
   shut-off domain, ``ipmitool chassis power diag`` exits 0 and pyghmi's ``set_power``
   says ``pending``: none of them is a delivery;
3. sends Chassis Control 04h (pulse diagnostic interrupt) *once*: pyghmi retransmits an
   unanswered request with the same sequence number, and pyghmi's BMC server (VirtualBMC)
   would act on it again — a second NMI — so kdiag sends it without retransmission and
   waits for the answer itself.  Completion code 00h is the BMC's acknowledgement of the
   command (not the "pending" pyghmi reports before it knows anything);
4. reads the power state again: on before and after, with the BMC's 00h in between, is what
   kdiag reports as accepted.  Off afterwards, or no answer to the command, is
   ``DeliveryUnconfirmed``.

pyghmi keeps its sessions and event loop process-wide, so the backend's calls take turns.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import re
import struct
import threading
import time
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
from kdiag.backends.remote import remote_text
from kdiag.errors import (
    BackendAuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    DeliveryUnconfirmed,
    IncorrectState,
    NMINotSupported,
)

__all__ = (
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "EXTRA",
    "IPMIBackend",
    "IPMISettings",
    "map_pyghmi_errors",
)

log = logging.getLogger("kdiag.backends.ipmi")

DEFAULT_PORT = 623
DEFAULT_TIMEOUT = 10.0
EXTRA = "kdiag[ipmi]"
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252})")
_T = TypeVar("_T")

# IPMI: Chassis netfn 00h; Get Chassis Status 01h, Chassis Control 02h, data 04h = pulse
# diagnostic interrupt.  Completion codes that mean "this BMC does not do that".
_NETFN_CHASSIS = 0x00
_CMD_CHASSIS_CONTROL = 0x02
_PULSE_DIAG = 0x04
_UNSUPPORTED_CODES = frozenset({0xC1, 0xC9, 0xCC, 0xD5, 0xD6})
# RMCP+ open session response (IPMI 2.0 table 13-12): authentication algorithm at byte 16,
# integrity algorithm at byte 24.  1 = RAKP-HMAC-SHA1 / HMAC-SHA1-96.
_AUTH_ALG_AT = 16
_INTEGRITY_ALG_AT = 24
_SHA1 = 1
# pyghmi passes the user's password to a "Password is too long" check only for 1.5.
_MAX_IPMI_PASSWORD = 20

# pyghmi's sessions and event loop are process-wide: one call at a time.
_PYGHMI_LOCK = threading.Lock()
_PATCHED = False


@dataclass(frozen=True, slots=True)
class IPMISettings(TargetSettings):
    """An ipmi target: the BMC's address and port, and the credentials reference."""

    BACKEND: ClassVar[str] = "ipmi"

    address: str
    """The BMC's host name or IP address."""
    port: int = DEFAULT_PORT
    """Its RMCP+ UDP port."""
    credentials: CredentialsRef | None = None
    """Where the ``username`` and ``password`` are: ``name:NAME``, ``file:`` or ``env:``."""
    timeout: float | None = None
    """Seconds for one whole call (default 10)."""

    def validate(self) -> None:
        host = self.address.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST.fullmatch(host):
                raise self.invalid("address", "a host name or an IP address") from None
        if not 0 < self.port < 65536:
            raise self.invalid("port", "a UDP port from 1 to 65535")

    @property
    def host(self) -> str:
        return self.address.strip("[]")


def _import_pyghmi() -> tuple[Any, Any, Any]:
    try:
        from pyghmi import exceptions  # noqa: PLC0415 - the optional extra, on first use
        from pyghmi.ipmi import command  # noqa: PLC0415 - the optional extra, on first use
        from pyghmi.ipmi.private import session  # noqa: PLC0415 - for the cipher-suite fix
    except ImportError as exc:
        raise BackendUnavailable(f"the ipmi backend needs pyghmi: pip install '{EXTRA}'") from exc
    _honour_bmc_cipher_suite(session)
    return command, session, exceptions


def _honour_bmc_cipher_suite(session: Any) -> None:
    """Make pyghmi's RMCP+ client follow the algorithms the BMC chose in its open-session
    response when it chose SHA-1 over the SHA-256 pyghmi asked for (see the module
    docstring).  Installed once; it acts only on that mismatch, so a pyghmi that fixes it
    itself is left alone."""
    global _PATCHED  # noqa: PLW0603 - one wrapper per process, like pyghmi's own state
    if _PATCHED:
        return
    cls = session.Session
    original = getattr(cls, "_got_rmcp_response", None)
    if original is None:  # a pyghmi without that step: nothing to adapt
        _PATCHED = True
        return

    def got_rmcp_response(self: Any, data: Any) -> Any:
        if (
            len(data) > _INTEGRITY_ALG_AT
            and data[1] == 0
            and getattr(self, "attemptedhash", None) == 256
            and data[_AUTH_ALG_AT] == _SHA1
            and data[_INTEGRITY_ALG_AT] == _SHA1
        ):
            log.debug("the BMC chose RAKP-HMAC-SHA1 (cipher suite 3); following it")
            self.attemptedhash = 1
            self.currhashlib = hashlib.sha1
            self.currhashlen = 12
        return original(self, data)

    cls._got_rmcp_response = got_rmcp_response
    _PATCHED = True


_AUTH_TEXT = re.compile(
    r"incorrect password|unauthorized name|invalid (user ?name|role|password)|"
    r"insufficient privilege|unauthorized role",
    re.IGNORECASE,
)


@contextlib.contextmanager
def map_pyghmi_errors(target: Target, where: str, *, sent: threading.Event) -> Iterator[None]:
    """Turn pyghmi's errors into kdiag's backend errors (the one boundary).

    :param sent: set just before the diagnostic interrupt is sent; after it, a failure
        without the BMC's answer is :class:`~kdiag.errors.DeliveryUnconfirmed`.
    """
    iid = target.instance_id
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        _command, _session, exceptions = _import_pyghmi()
        text = remote_text(exc) or type(exc).__name__
        if sent.is_set():
            raise DeliveryUnconfirmed(
                f"{where}: {text} after the diagnostic interrupt was sent; "
                "delivery of the NMI is unconfirmed",
                target=iid,
            ) from exc
        if _AUTH_TEXT.search(text):
            raise BackendAuthFailure(
                f"{where}: the BMC refused the credentials: {text}", target=iid
            ) from exc
        if isinstance(exc, struct.error):
            raise BackendUnavailable(
                f"{where}: the RMCP+ login failed (cipher-suite mismatch?): {text}", target=iid
            ) from exc
        if "timeout" in text.lower() or "no longer connected" in text.lower():
            raise BackendTimeout(f"{where}: no answer: {text}", target=iid) from exc
        if isinstance(exc, exceptions.PyghmiException | OSError | ValueError):
            raise BackendUnavailable(f"{where}: {text}", target=iid) from exc
        raise


def _power(cmd: Any) -> InstanceState:
    state = cmd.get_power().get("powerstate")
    if state == "on":
        return InstanceState.RUNNING
    if state == "off":
        return InstanceState.STOPPED
    raise BackendError(f"the BMC reported an unknown power state {state!r}")


def _pulse_diag(cmd: Any, session_cls: Any, deadline: float) -> dict[str, Any] | None:
    """Chassis Control 04h sent once (no retransmission); the BMC's answer, or None when
    none came before ``deadline``."""
    ipmi_session = cmd.ipmi_session
    answers: list[dict[str, Any]] = []
    ipmi_session.raw_command(
        netfn=_NETFN_CHASSIS,
        command=_CMD_CHASSIS_CONTROL,
        data=[_PULSE_DIAG],
        retry=False,
        callback=answers.append,
    )
    try:
        while not answers and time.monotonic() < deadline:
            session_cls.wait_for_rsp(timeout=min(0.1, max(deadline - time.monotonic(), 0)))
    finally:  # what pyghmi's synchronous path does after a command (its contract for callbacks)
        ipmi_session.incommand = False
        while ipmi_session.evq:
            ipmi_session.evq.popleft().set()
    return answers[0] if answers else None


def _end_session(session_cls: Any, ipmi_session: Any) -> None:
    """Log out, and drop the session from pyghmi's process-wide cache of sessions being
    set up: pyghmi files it under the text user name and password and deletes it under
    their bytes, so it stays, and the next Command to this BMC (same login) is handed the
    dead session (measured: a TypeError in its first command)."""
    with contextlib.suppress(Exception):  # closing: nothing left to report
        ipmi_session.logout()
    cache = getattr(session_cls, "initting_sessions", {})
    for key, value in list(cache.items()):
        if value is ipmi_session:
            cache.pop(key, None)


class IPMIBackend:
    """Interrupt servers through their IPMI BMC."""

    name = "ipmi"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    def _credentials(self, target: Target, settings: IPMISettings) -> Credentials:
        iid = target.instance_id
        if settings.credentials is None:
            raise BackendUnavailable(
                f'instance {iid}: an ipmi target needs "credentials" (a BMC login)', target=iid
            )
        creds = target.credentials(settings.credentials, login=True)
        if creds.password is not None and len(creds.password.encode()) > _MAX_IPMI_PASSWORD:
            raise BackendUnavailable(
                f"instance {iid}: credentials {settings.credentials}: an IPMI password is at "
                f"most {_MAX_IPMI_PASSWORD} bytes",
                target=iid,
            )
        return creds

    def _call(self, target: Target, work: Callable[[Any, Any, BoundedCall, float], _T]) -> _T:
        """Run ``work(cmd, session_cls, call, deadline)`` in a logged-in session, bounded
        by the target's timeout; ``work`` passes ``call.send()`` just before it sends."""
        settings = IPMISettings.stored(target)
        timeout = settings.timeout or self.timeout
        where = f"IPMI {settings.host}:{settings.port} ({target.instance_id})"
        creds = self._credentials(target, settings)
        call = BoundedCall(where, "the diagnostic interrupt", target.instance_id, timeout)
        deadline = time.monotonic() + timeout

        def run() -> _T:
            command, session, _exceptions = _import_pyghmi()
            with _PYGHMI_LOCK, map_pyghmi_errors(target, where, sent=call.sent):
                cmd = command.Command(
                    bmc=settings.host,
                    userid=creds.username,
                    password=creds.password,
                    port=settings.port,
                    keepalive=False,
                )
                try:
                    return work(cmd, session.Session, call, deadline)
                finally:
                    _end_session(session.Session, cmd.ipmi_session)

        # pyghmi gives up on a silent BMC's login only after about 5 s: the worker is a
        # daemon thread, abandoned at the deadline
        return call.run(run, thread_name="kdiag-ipmi")

    # --- the Backend interface -------------------------------------------------------------

    def parse_target(self, settings: Mapping[str, Any]) -> IPMISettings:
        """:class:`IPMISettings` from a target mapping.

        :raises ConfigError: a missing or malformed ``address``, a bad ``port``,
            ``credentials`` reference or ``timeout``.
        """
        return IPMISettings.parse(settings)

    def state(self, target: Target) -> InstanceState:
        return self._call(target, lambda cmd, _s, _g, _d: _power(cmd))

    def supports_nmi(self, target: Target) -> bool:
        return target.arch in NMI_ARCHITECTURES

    def send_nmi(self, target: Target) -> NMIResult:
        iid = target.instance_id

        def diag(cmd: Any, session_cls: Any, call: BoundedCall, deadline: float) -> None:
            before = _power(cmd)
            if before is not InstanceState.RUNNING:
                raise IncorrectState(
                    f"IPMI: the BMC reports chassis power {before.value}, not on; NMI not sent",
                    target=iid,
                )
            call.send()
            answer = _pulse_diag(cmd, session_cls, deadline)
            if answer is None:
                raise DeliveryUnconfirmed(
                    "IPMI: no answer to the diagnostic interrupt; delivery of the NMI is "
                    "unconfirmed",
                    target=iid,
                )
            code = int(answer.get("code", -1))
            if code in _UNSUPPORTED_CODES:
                raise NMINotSupported(
                    f"IPMI: the BMC does not pulse a diagnostic interrupt "
                    f"(completion code {code:#04x})",
                    target=iid,
                )
            if code != 0:
                raise BackendError(
                    f"IPMI: the BMC refused the diagnostic interrupt (completion code "
                    f"{code:#04x}); nothing was delivered",
                    target=iid,
                )
            after = _power(cmd)
            if after is not InstanceState.RUNNING:
                raise DeliveryUnconfirmed(
                    f"IPMI: the BMC acknowledged the diagnostic interrupt, but chassis power "
                    f"is {after.value} right after; delivery of the NMI is unconfirmed",
                    target=iid,
                )

        self._call(target, diag)
        log.info("IPMI diagnostic interrupt acknowledged for %s", iid)
        return NMIResult(
            self.name,
            iid,
            "diagnostic interrupt acknowledged by the BMC (completion code 00h; power on "
            "before and after)",
        )

    def close(self) -> None:
        """Nothing to free: each call logs in and out on its own."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
