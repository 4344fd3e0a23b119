"""What the backends that call a remote HTTP API share: the kdiag error for an HTTP status,
what the peer said (bounded and masked), and which endpoint URLs a target may name.

An HTTP status means the same thing to every such backend except for a few codes that each
provider gives a meaning of its own.  So a backend declares a :class:`StatusErrors` table
with only those codes (404 and the 401/403 pair with its own wording, a 409 about state,
the 501 of an API that cannot do it, ...) and the rest is decided here, once:

- a 5xx once the request may have left is :class:`~kdiag.errors.DeliveryUnconfirmed` (the
  provider may have acted before it failed; never a success, never retried);
- a 5xx before that is :class:`~kdiag.errors.BackendUnavailable` (nothing was sent);
- any other status is a :class:`~kdiag.errors.BackendError` naming it (the provider
  refused; nothing was delivered).

>>> from kdiag.errors import TargetNotFound
>>> table = StatusErrors("Cloud refused", "sendNmi", Refusal((404,), TargetNotFound, "no such VM"))
>>> table.error(404, "gone", "cloud vm1", "i-0123456789abcdef0", on_wire=True)
TargetNotFound('cloud vm1: no such VM (gone)')
>>> str(table.error(502, "bad gateway", "cloud vm1", "i-0123456789abcdef0", on_wire=True))
'cloud vm1: HTTP 502 after sendNmi was sent (bad gateway); delivery of the NMI is unconfirmed'
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

from kdiag.backends.credentials import mask_text
from kdiag.errors import BackendError, BackendUnavailable, DeliveryUnconfirmed

__all__ = (
    "MAX_REMOTE_TEXT",
    "Refusal",
    "StatusErrors",
    "endpoint_problem",
    "is_loopback",
    "remote_text",
)

MAX_REMOTE_TEXT = 300
"""Characters of a peer's own text kept in a message."""


def remote_text(said: object) -> str:
    """What a peer said (an exception or its message) fit for a kdiag message: on one
    line, credentials masked, at most :data:`MAX_REMOTE_TEXT` characters.  Masked before
    it is cut, so a secret at the cut is never left half visible."""
    shown = mask_text(" ".join(str(said).split()))
    return shown if len(shown) <= MAX_REMOTE_TEXT else shown[:MAX_REMOTE_TEXT] + "..."


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_problem(url: str | None, secure: str = "https") -> str | None:
    """What is wrong with ``url`` as an endpoint that will be sent a token or a signed
    request: it must use ``secure`` (``https``, ``wss``), or its plain form (``http``,
    ``ws``) to a loopback address only.  ``None`` when it is fine (or not set)."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    plain = secure.removesuffix("s")
    if parts.scheme not in (secure, plain) or not parts.hostname:
        return f"must be {'an' if secure == 'https' else 'a'} {secure}:// URL"
    if parts.scheme == plain and not is_loopback(parts.hostname):
        return f"plain {plain} is allowed only to a loopback address"
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The error a provider means by some HTTP statuses: its class and the words for it."""

    statuses: tuple[int, ...]
    error: type[BackendError]
    text: str
    """``"{where}: {text} ({what the peer said})"``."""


class StatusErrors:
    """One backend's HTTP statuses as kdiag errors (see the module docstring).

    :param refused: the words for any other status: ``"Google refused"`` gives
        ``"{where}: Google refused: HTTP 418 (...)"``.
    :param request: the call that delivers the NMI, in ``"after {request} was sent"``.
    :param refusals: the provider's own statuses, decided before the common rules.
    """

    __slots__ = ("_refusals", "refused", "request")

    def __init__(self, refused: str, request: str, *refusals: Refusal) -> None:
        self.refused = refused
        self.request = request
        self._refusals = {status: r for r in refusals for status in r.statuses}

    def error(self, status: int, said: str, where: str, iid: str, *, on_wire: bool) -> BackendError:
        """The kdiag error for ``status``.

        :param said: the peer's text, already through :func:`remote_text`.
        :param where: the target, as messages name it.
        :param on_wire: the delivering request may have left (a 5xx is then unconfirmed).
        """
        known = self._refusals.get(status)
        if known is not None:
            return known.error(f"{where}: {known.text} ({said})", target=iid)
        if status >= 500 and on_wire:
            return DeliveryUnconfirmed(
                f"{where}: HTTP {status} after {self.request} was sent ({said}); "
                "delivery of the NMI is unconfirmed",
                target=iid,
            )
        if status >= 500:
            return BackendUnavailable(f"{where}: HTTP {status} ({said})", target=iid)
        return BackendError(f"{where}: {self.refused}: HTTP {status} ({said})", target=iid)
