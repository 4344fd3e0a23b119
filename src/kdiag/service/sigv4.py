"""SigV4 verification: the Authorization-header form and the presigned query form.

The server recomputes the signature with botocore's own signer pieces
(``SigV4Auth.canonical_request`` → ``string_to_sign`` → ``signature``) on an ``AWSRequest``
rebuilt from exactly what arrived: the raw path and query, the raw body bytes, and only the
headers the client says it signed.  The two signatures are compared with
:func:`hmac.compare_digest`.

Checks, in order (each failure is an :class:`~kdiag.errors.AuthFailure` subclass):

* a signature is present at all (``MissingAuthenticationToken``), once (header *or* query);
* the Authorization header / ``X-Amz-*`` parameters parse, the algorithm is
  ``AWS4-HMAC-SHA256``, ``host`` and ``x-amz-date`` are signed (``IncompleteSignature``);
* the credential scope is ``<date>/<region>/<service>/aws4_request`` with the date of
  ``X-Amz-Date``, a region this server serves and this server's service (``AuthFailure``);
* the signed date is within the allowed skew of now, and a presigned URL has not expired
  (``RequestExpired``);
* ``X-Amz-Content-SHA256``, when sent, is the hash of the body received (``AuthFailure``);
* the access key is known and the signature matches (``AuthFailure``);
* the signature has not been accepted before within its window (``AuthFailure``).
"""

from __future__ import annotations

import calendar
import hashlib
import heapq
import hmac
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kdiag.errors import (
    AuthFailure,
    IncompleteSignature,
    MissingAuthenticationToken,
    RequestExpired,
)

__all__ = (
    "ALGORITHM",
    "DEFAULT_SKEW_SECONDS",
    "MAX_PRESIGN_EXPIRES",
    "IncomingRequest",
    "ReplayCache",
    "Verified",
    "Verifier",
)

ALGORITHM = "AWS4-HMAC-SHA256"
#: "a request must reach AWS within five minutes of the time stamp in the request"
DEFAULT_SKEW_SECONDS = 300
#: the longest X-Amz-Expires AWS accepts (seven days)
MAX_PRESIGN_EXPIRES = 604800
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_SIGNATURE_HEX_LEN = 64
_BAD_CREDENTIALS = "AWS was not able to validate the provided access credentials"

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """What arrived on the wire, untouched: never re-encode a parsed body or query.

    ``headers`` holds (lower-case name, value) pairs in arrival order, duplicates included.
    """

    method: str
    scheme: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (several values joined by commas), or None."""
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None


@dataclass(frozen=True, slots=True)
class Verified(Generic[P]):
    """A request whose signature checked out, and whom it came from."""

    access_key_id: str
    principal: P
    region: str
    service: str
    amz_date: str
    signed_headers: tuple[str, ...]
    presigned: bool
    signature: str
    #: when the signature stops being acceptable (seconds since the epoch)
    valid_until: float


class ReplayCache:
    """Signatures accepted recently, each kept until its own window closes.

    Bounded in time (entries expire) and in size: when ``max_entries`` unexpired signatures
    are held, a new one is refused rather than an old one forgotten, because forgetting would
    let a captured request through again.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._max = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires:
                del self._expiry[key]

    def check_and_add(self, key: str, expires: float, now: float) -> None:
        """Remember ``key`` until ``expires``; raise AuthFailure when it was seen already."""
        with self._lock:
            self._prune(now)
            if key in self._expiry:
                raise AuthFailure("request signature has already been used; sign a new request")
            if len(self._expiry) >= self._max:
                raise AuthFailure("too many signed requests in flight; retry shortly")
            self._expiry[key] = expires
            heapq.heappush(self._heap, (expires, key))


@dataclass(frozen=True, slots=True)
class _Parsed:
    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    expires: int | None  # presigned only
    query_for_signing: str  # the raw query without X-Amz-Signature


class Verifier(Generic[P]):
    """Verify SigV4 requests for one service and a set of regions.

    :param lookup: access key id → (secret access key, principal), or None when unknown.
    :param regions: the regions this server answers for.
    :param service: the signing name (``ec2``).
    :param skew: allowed distance in seconds between the signed date and now.
    :param clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        lookup: Callable[[str], tuple[str, P] | None],
        *,
        regions: Collection[str],
        service: str = "ec2",
        skew: int = DEFAULT_SKEW_SECONDS,
        replay_cache: ReplayCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not regions:
            raise ValueError("a verifier needs at least one region")
        self._lookup = lookup
        self.regions = frozenset(regions)
        self.service = service
        self.skew = skew
        self.replay = replay_cache if replay_cache is not None else ReplayCache()
        self._clock = clock

    # -- parsing ------------------------------------------------------------------------------

    def _parse(self, req: IncomingRequest) -> _Parsed:
        authorization = req.header("authorization")
        pairs = [p.partition("=") for p in req.raw_query.split("&")] if req.raw_query else []
        query_keys = {unquote(k) for k, _, _ in pairs}
        if authorization is not None and "X-Amz-Algorithm" in query_keys:
            raise IncompleteSignature(
                "only one authentication mechanism is allowed: header or query string"
            )
        if authorization is not None:
            return self._parse_header(req, authorization)
        if "X-Amz-Algorithm" in query_keys or "X-Amz-Signature" in query_keys:
            return self._parse_query(pairs)
        raise MissingAuthenticationToken("request is missing an AWS SigV4 signature")

    def _parse_header(self, req: IncomingRequest, authorization: str) -> _Parsed:
        algorithm, _, rest = authorization.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise IncompleteSignature(f"unsupported authorization algorithm; use {ALGORITHM}")
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or name in fields:
                raise IncompleteSignature("malformed Authorization header")
            fields[name] = value
        missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
        if missing:
            raise IncompleteSignature(f"Authorization header is missing {', '.join(missing)}")
        amz_date = req.header("x-amz-date")
        if amz_date is None:
            raise IncompleteSignature("the X-Amz-Date header is required")
        return Verifier._parsed(
            fields["Credential"],
            fields["SignedHeaders"],
            fields["Signature"],
            amz_date=amz_date,
            expires=None,
            query=req.raw_query,
        )

    def _parse_query(self, pairs: list[tuple[str, str, str]]) -> _Parsed:
        params: dict[str, str] = {}
        kept: list[str] = []
        for key, sep, value in pairs:
            name = unquote(key)
            if name.startswith("X-Amz-"):
                if name in params:
                    raise IncompleteSignature(f"query parameter {name} appears twice")
                params[name] = unquote(value)
            if name != "X-Amz-Signature":
                kept.append(f"{key}{sep}{value}")
        required = (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        )
        missing = [k for k in required if k not in params]
        if missing:
            raise IncompleteSignature(f"presigned request is missing {', '.join(missing)}")
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise IncompleteSignature(f"unsupported X-Amz-Algorithm; use {ALGORITHM}")
        try:
            expires = int(params["X-Amz-Expires"])
        except ValueError:
            raise IncompleteSignature("X-Amz-Expires must be a number of seconds") from None
        if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            raise IncompleteSignature(
                f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds"
            )
        return Verifier._parsed(
            params["X-Amz-Credential"],
            params["X-Amz-SignedHeaders"],
            params["X-Amz-Signature"],
            amz_date=params["X-Amz-Date"],
            expires=expires,
            query="&".join(kept),
        )

    @staticmethod
    def _parsed(
        credential: str,
        signed_headers: str,
        signature: str,
        *,
        amz_date: str,
        expires: int | None,
        query: str,
    ) -> _Parsed:
        parts = credential.split("/")
        if len(parts) != 5 or not parts[0]:
            raise IncompleteSignature(
                "credential must have the form <key id>/<date>/<region>/<service>/aws4_request"
            )
        key_id, scope_date, region, service, terminator = parts
        if terminator != "aws4_request":
            raise IncompleteSignature("credential scope must end in aws4_request")
        names = tuple(signed_headers.split(";"))
        for required in ("host", "x-amz-date") if expires is None else ("host",):
            if required not in names:
                raise IncompleteSignature(f"the {required} header must be signed")
        if len(signature) != _SIGNATURE_HEX_LEN or any(
            c not in "0123456789abcdef" for c in signature
        ):
            raise IncompleteSignature("signature must be 64 lower-case hex digits")
        return _Parsed(
            key_id, scope_date, region, service, names, signature, amz_date, expires, query
        )

    # -- checks ------------------------------------------------------------------------------

    def _check_scope_and_time(self, parsed: _Parsed, now: float) -> float:
        """Validate the scope and the date; return when the signature stops being valid."""
        try:
            signed_at = calendar.timegm(time.strptime(parsed.amz_date, _AMZ_DATE_FORMAT))
        except ValueError:
            raise IncompleteSignature("X-Amz-Date must have the form YYYYMMDDTHHMMSSZ") from None
        if parsed.scope_date != parsed.amz_date[:8]:
            raise AuthFailure("credential scope date does not match X-Amz-Date")
        if parsed.service != self.service:
            raise AuthFailure(f"credential should be scoped to the service '{self.service}'")
        if parsed.region not in self.regions:
            served = ", ".join(sorted(self.regions))
            raise AuthFailure(
                f"credential should be scoped to a region this endpoint serves ({served})"
            )
        if parsed.expires is None:
            if abs(now - signed_at) > self.skew:
                raise RequestExpired(
                    f"request has expired: X-Amz-Date {parsed.amz_date} is more than "
                    f"{self.skew} seconds from the server time"
                )
            return signed_at + self.skew
        if signed_at - now > self.skew:
            raise RequestExpired(f"X-Amz-Date {parsed.amz_date} is in the future")
        if now > signed_at + parsed.expires:
            raise RequestExpired("presigned request has expired")
        return float(signed_at + parsed.expires)

    def verify(self, req: IncomingRequest, *, consume: bool = True) -> Verified[P]:
        """Check ``req``'s signature; return the principal, or raise an AuthFailure.

        :param consume: remember the signature so that it is refused from now on; pass
            False to do that later with :meth:`consume` (for instance after throttling, so
            that a throttled request may be retried as it was signed).
        """
        parsed = self._parse(req)
        now = self._clock()
        valid_until = self._check_scope_and_time(parsed, now)
        if req.header("x-amz-security-token") is not None or "X-Amz-Security-Token=" in (
            parsed.query_for_signing
        ):
            raise AuthFailure("temporary credentials (a security token) are not supported")
        content_sha = req.header("x-amz-content-sha256")
        if content_sha is not None and not hmac.compare_digest(
            content_sha, hashlib.sha256(req.body).hexdigest()
        ):
            raise AuthFailure("X-Amz-Content-SHA256 is not the SHA-256 of the request body")

        found = self._lookup(parsed.access_key_id)
        if found is None:
            raise AuthFailure(_BAD_CREDENTIALS)
        secret, principal = found

        aws_request = self._rebuild(req, parsed)
        auth = SigV4Auth(Credentials(parsed.access_key_id, secret), parsed.service, parsed.region)
        recomputed = auth.signed_headers(auth.headers_to_sign(aws_request))
        if recomputed != ";".join(parsed.signed_headers):
            dropped = sorted(set(parsed.signed_headers) & set(SIGNED_HEADERS_BLACKLIST))
            detail = f" ({', '.join(dropped)} cannot be signed)" if dropped else ""
            raise IncompleteSignature(
                f"SignedHeaders must be the sorted, lower-case names of headers sent{detail}"
            )
        canonical = auth.canonical_request(aws_request)
        expected = auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, parsed.signature):
            raise AuthFailure(_BAD_CREDENTIALS)
        verified = Verified(
            access_key_id=parsed.access_key_id,
            principal=principal,
            region=parsed.region,
            service=parsed.service,
            amz_date=parsed.amz_date,
            signed_headers=parsed.signed_headers,
            presigned=parsed.expires is not None,
            signature=parsed.signature,
            valid_until=valid_until,
        )
        if consume:
            self.consume(verified)
        return verified

    def consume(self, verified: Verified[P]) -> None:
        """Refuse ``verified``'s signature from now until its window closes (replay)."""
        key = f"{verified.access_key_id}:{verified.signature}"
        self.replay.check_and_add(key, verified.valid_until, self._clock())

    @staticmethod
    def _rebuild(req: IncomingRequest, parsed: _Parsed) -> AWSRequest:
        """An AWSRequest with exactly the signed headers, raw path, raw query and raw body."""
        signed = set(parsed.signed_headers)
        host = req.header("host")
        if host is None:
            raise IncompleteSignature("the Host header is required")
        url = f"{req.scheme}://{host}{req.raw_path}"
        if parsed.query_for_signing:
            url = f"{url}?{parsed.query_for_signing}"
        aws_request = AWSRequest(method=req.method, url=url, data=req.body)
        present = set()
        for name, value in req.headers:
            if name in signed:
                aws_request.headers[name] = value  # HTTPHeaders appends duplicates
                present.add(name)
        missing = sorted(signed - present)
        if missing:
            raise IncompleteSignature(f"signed header {missing[0]} is not in the request")
        aws_request.context["timestamp"] = parsed.amz_date
        return aws_request
