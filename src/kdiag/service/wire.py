"""The wire: a Starlette request turned into exactly what arrived, and its audit draft."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from kdiag.errors import RequestEntityTooLarge
from kdiag.service.audit import BodyIncomplete, Replayed, RequestAudit
from kdiag.service.sigv4 import IncomingRequest

__all__ = (
    "BODY_TIMED_OUT",
    "MAX_BODY",
    "incoming_request",
    "keep_answer",
    "new_audit",
    "peer_address",
    "read_body",
    "replayed_response",
    "response_headers",
)

#: The largest request body accepted (EC2 Query requests are a few hundred bytes).
MAX_BODY = 64 * 1024
#: Set in a request's scope by the HTTP layer when the body timed out
#: (:class:`kdiag.service.server.BoundedHttpProtocol`).
BODY_TIMED_OUT = "kdiag.body_timed_out"


def incoming_request(request: Request, body: bytes) -> IncomingRequest:
    """The request exactly as received: raw path, raw query, raw headers, raw body."""
    scope = request.scope
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    return IncomingRequest(
        method=scope["method"],
        scheme=scope.get("scheme", "http"),
        raw_path=path.split("?", 1)[0],
        raw_query=scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        body=body,
    )


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refusing more than ``limit`` bytes (RequestEntityTooLarge).

    :raises BodyIncomplete: the client left before the body was whole, or did not send it
        within the HTTP layer's body timeout (which then answered 408 and closed).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestEntityTooLarge(f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge(f"request body larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        if request.scope.get(BODY_TIMED_OUT):
            raise BodyIncomplete(
                "RequestTimeout", f"request body incomplete after the timeout ({size} bytes)"
            ) from None
        raise BodyIncomplete(
            "ClientDisconnected",
            f"the client closed the connection before its body was complete ({size} bytes)",
        ) from None
    return b"".join(chunks)


def peer_address(host: str) -> str:
    """The client address as policies see it (``aws:SourceIp``) and the audit records it.

    A dual-stack listener sees an IPv4 client as ``::ffff:a.b.c.d``; that is the IPv4
    address ``a.b.c.d``, and a policy's ``IpAddress`` on ``10.0.0.0/8`` must match it.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def new_audit(request: Request) -> RequestAudit:
    client = request.client
    source = peer_address(client.host) if client and client.host else None
    return RequestAudit(request_id=str(uuid.uuid4()), source_ip=source)


def response_headers(request_id: str) -> dict[str, str]:
    return {"x-amzn-RequestId": request_id, "Cache-Control": "no-store"}


def replayed_response(replay: Replayed, request_id: str) -> Response:
    """A repeated signature's answer: the first request's status, content type and body
    (its request id inside), under this request's own ``x-amzn-RequestId``."""
    answer = replay.answer
    headers = response_headers(request_id)
    if answer.content_type:
        headers["content-type"] = answer.content_type
    return Response(answer.body or b"", answer.status, headers)


async def keep_answer(
    record: Callable[[RequestAudit, int, str, bytes], None],
    audit: RequestAudit,
    response: Response,
) -> None:
    """Record ``response`` in the replay ledger when the request claimed its signature,
    before the answer goes out (a repeat arriving meanwhile waits for it)."""
    if audit.ledger_signature is not None:
        content_type = response.headers.get("content-type", "")
        await run_in_threadpool(
            record, audit, response.status_code, content_type, bytes(response.body)
        )
