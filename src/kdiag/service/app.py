"""The ASGI application: ``/`` speaks EC2 Query, ``/v1/...`` speaks JSON.

:func:`create_app` builds a Starlette app around a :class:`ServiceContext`.  Each request
gets a request id, its body is read with a size cap, and the synchronous work (SigV4, the
store, the backend) runs in the thread pool so that one slow hypervisor never blocks the
event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kdiag.console import app as console_app
from kdiag.errors import KdiagError, MethodNotAllowed, UnknownEndpoint
from kdiag.service.audit import BodyIncomplete, Replayed
from kdiag.service.context import ServiceContext
from kdiag.service.ec2 import Ec2Query
from kdiag.service.errors import ApiError, error_json, error_xml, to_api_error
from kdiag.service.rest import rest_routes
from kdiag.service.wire import (
    incoming_request,
    keep_answer,
    new_audit,
    read_body,
    replayed_response,
    response_headers,
)

if TYPE_CHECKING:  # the console imports the service: no cycle at run time
    from kdiag.console.sources import Sources

__all__ = ("create_app",)

_XML = "text/xml;charset=UTF-8"


def create_app(ctx: ServiceContext, *, console_sources: Sources | None = None) -> Starlette:
    """The kdiag service as an ASGI app; ``ctx`` is shared by every request.

    ``console_sources``: where the console under ``/console`` reads readiness, drills and
    dumps (:mod:`kdiag.console.sources`; default: none of them).
    """
    query = Ec2Query(ctx)

    async def ec2_endpoint(request: Request) -> Response:
        audit = new_audit(request)
        handler: Callable[[], bytes]
        try:
            incoming = incoming_request(request, await read_body(request))
            handler = functools.partial(query.handle, incoming, audit)
        except (KdiagError, BodyIncomplete) as exc:  # too large, or never whole
            handler = _raiser(exc)
        answer = await run_in_threadpool(ctx.run, handler, audit)
        if isinstance(answer, Replayed):
            return replayed_response(answer, audit.request_id)
        headers = response_headers(audit.request_id)
        if isinstance(answer, ApiError):
            response = Response(error_xml(answer, audit.request_id), answer.status, headers, _XML)
        else:
            response = Response(answer, 200, headers, _XML)
        await keep_answer(ctx.record_answer, audit, response)
        return response

    routes = [
        Route("/", ec2_endpoint, methods=["GET", "POST"]),
        *rest_routes(ctx),
        console_app.console_mount(ctx, console_sources),
    ]

    async def unrouted(request: Request, exc: KdiagError) -> Response:
        audit = new_audit(request)
        audit.action = f"{request.method} {request.url.path}"[:64]
        await run_in_threadpool(ctx.run, _raiser(exc), audit)
        error = to_api_error(exc)
        headers = response_headers(audit.request_id)
        if request.url.path.startswith("/v1/"):
            return JSONResponse(error_json(error, audit.request_id), error.status, headers)
        return Response(error_xml(error, audit.request_id), error.status, headers, _XML)

    async def not_found(request: Request, exc: Exception) -> Response:
        return await unrouted(request, UnknownEndpoint("no such endpoint"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return await unrouted(request, MethodNotAllowed(f"{request.method} is not allowed here"))

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    # No redirects (/v1/instances/ -> /v1/instances): one would go unaudited, and a signed
    # request cannot follow it (the path is signed).  Such a path is NotFound, audited.
    app.router.redirect_slashes = False
    app.state.ctx = ctx
    return app


def _raiser(exc: Exception) -> Callable[[], Any]:
    def handler() -> Any:
        raise exc

    return handler
