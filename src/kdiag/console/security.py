"""The console's defences: forms, cookies, CSRF, failed sign-in throttling, headers.

* A form body is ``application/x-www-form-urlencoded``, at most :data:`MAX_FORM` bytes and
  :data:`MAX_FIELDS` fields, each field once; anything else is a typed error.
* The session cookie is HttpOnly, ``SameSite=Strict``, ``Path=/console``, and ``Secure``
  when the request came over TLS.  Before sign-in, a pre-session cookie carries the
  sign-in form's CSRF token (double submit); after it, the token is the session's own.
* Every POST must carry the CSRF token in its ``csrf`` field, and a browser's ``Origin``
  (when sent) must be this server's.
* :class:`SignInThrottle` counts failed sign-ins per source address and per access key id
  in a sliding window; past the limit, sign-in is refused even with the right secret.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from kdiag.errors import (
    AccessDenied,
    InvalidParameterCombination,
    InvalidParameterValue,
    RequestEntityTooLarge,
    RequestLimitExceeded,
)
from kdiag.service.wire import read_body

__all__ = (
    "CSP",
    "MAX_FIELDS",
    "MAX_FORM",
    "PRE_COOKIE",
    "SESSION_COOKIE",
    "SignInThrottle",
    "check_csrf",
    "check_origin",
    "clear_cookie",
    "read_form",
    "secure_headers",
    "set_cookie",
)

SESSION_COOKIE = "kdiag_console"
PRE_COOKIE = "kdiag_console_pre"
MAX_FORM = 8 * 1024
MAX_FIELDS = 16

#: Nothing but this server's own styles, scripts and forms; no frames, no inline script.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: with no-referrer a browser posts "Origin: null"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        secure=is_tls(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/console", secure=is_tls(request), httponly=True, samesite="strict"
    )


async def read_form(request: Request) -> dict[str, str]:
    """The posted form: url-encoded, bounded, each field once."""
    body = await read_body(request, MAX_FORM)
    if not body:
        return {}
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidParameterValue("a form must be posted as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidParameterValue("the form is not UTF-8") from None
    except ValueError:  # more than MAX_FIELDS
        raise RequestEntityTooLarge(f"a form has at most {MAX_FIELDS} fields") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise InvalidParameterCombination(f"the field {key} is given twice")
        form[key] = value
    return form


def check_origin(request: Request) -> None:
    """A browser's ``Origin`` (sent with every POST) must be this server."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    if parts.netloc != host or parts.scheme != request.url.scheme:
        raise AccessDenied("cross-origin form refused (Origin is not this console)")


def check_csrf(expected: str | None, form: dict[str, str]) -> None:
    """The form's ``csrf`` field must equal ``expected`` (compared in constant time)."""
    given = form.get("csrf", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AccessDenied("the form's CSRF token is missing or wrong: reload the page")


def new_token() -> str:
    return secrets.token_urlsafe(32)


class SignInThrottle:
    """Failed sign-ins per key (source address, access key id) in a sliding window.

    :param limit: failures allowed per key within ``window`` seconds.
    """

    def __init__(
        self,
        limit: int = 5,
        window: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, *keys: str) -> None:
        """Raise RequestLimitExceeded when any of ``keys`` has reached the limit."""
        now = self._clock()
        with self._lock:
            for key in keys:
                if len(self._recent(key, now)) >= self.limit:
                    raise RequestLimitExceeded(
                        "too many failed sign-ins; try again in a few minutes"
                    )

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= self._max_keys:  # bounded memory: drop stale keys
                for key in list(self._failures):
                    self._recent(key, now)
            if len(self._failures) >= self._max_keys:
                self._failures.pop(next(iter(self._failures)))
            for key in keys:
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while len(times) > self.limit:
                    times.popleft()
