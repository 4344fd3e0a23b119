"""The JSON API beside the EC2 endpoint: ``/v1/...``, same SigV4 auth (service ``ec2``).

* ``GET /v1/instances[?id=i-...][&filter=tag:K=V1,V2]``: the caller's instances
  (``ec2:DescribeInstances``);
* ``POST /v1/instances/{id}/diagnostic-interrupt``: send the NMI; body ``{"DryRun": true}``
  (``ec2:SendDiagnosticInterrupt``);
* ``GET /v1/audit[?since=ISO8601][&limit=N]``: the audit log (``cloudtrail:LookupEvents``);
* ``GET /v1/openapi.json``: the OpenAPI 3.1 document (no signature needed).

Errors use the same codes and HTTP statuses as the EC2 endpoint, as
``{"Error": {"Code": ..., "Message": ...}, "RequestId": ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kdiag.authz import Caller
from kdiag.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    KdiagError,
    UnknownParameter,
)
from kdiag.filters import MAX_FILTERS, Filter
from kdiag.service import actions
from kdiag.service.audit import BodyIncomplete, Replayed, RequestAudit
from kdiag.service.context import ServiceContext
from kdiag.service.ec2 import SIGV4_QUERY_PARAMS
from kdiag.service.errors import ApiError, error_json
from kdiag.service.openapi import openapi_document
from kdiag.service.wire import (
    incoming_request,
    keep_answer,
    new_audit,
    read_body,
    replayed_response,
    response_headers,
)
from kdiag.store import Instance

__all__ = ("instance_json", "rest_routes")

MAX_AUDIT_ROWS = 1000


def instance_json(instance: Instance) -> dict[str, Any]:
    """An instance as API clients see it (the backend's target settings stay private)."""
    return {
        "InstanceId": instance.id,
        "Region": instance.region,
        "AvailabilityZone": instance.availability_zone,
        "Architecture": instance.arch,
        "State": instance.state,
        "Backend": instance.backend,
        "Tags": dict(instance.tags),
    }


def _filters(request: Request) -> list[Filter]:
    filters = []
    raws = request.query_params.getlist("filter")
    if len(raws) > MAX_FILTERS:
        raise InvalidParameterValue(f"at most {MAX_FILTERS} filters")
    for raw in raws:
        name, sep, values = raw.partition("=")
        if not sep or not name or not values:
            raise InvalidParameterValue("filter must have the form name=value[,value]")
        filters.append(Filter(name, tuple(values.split(","))))
    return filters


@dataclass(frozen=True, slots=True)
class Accepts:
    """What one ``/v1`` endpoint takes: query parameters (those in ``repeatable`` may be
    given more than once) and top-level JSON body keys.  Anything else is refused."""

    query: frozenset[str] = frozenset()
    repeatable: frozenset[str] = frozenset()
    body: frozenset[str] = frozenset()


def _check_query(request: Request, accepts: Accepts) -> None:
    """Unknown query parameters are UnknownParameter; a single-valued one given twice is
    InvalidParameterCombination (``?dry_run=false&dry_run=true`` has no one meaning)."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in SIGV4_QUERY_PARAMS:
            continue
        if key not in accepts.query:
            raise UnknownParameter(f"The parameter {key} is not recognized")
        if key in seen and key not in accepts.repeatable:
            raise InvalidParameterCombination(f"parameter {key} is given twice")
        seen.add(key)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InvalidParameterCombination(f"the JSON key {key} is given twice")
        found[key] = value
    return found


def _json_body(body: bytes, accepts: Accepts) -> dict[str, Any]:
    """The body as a JSON object of known keys, each once (at any depth); empty is ``{}``."""
    if not body.strip():
        return {}
    if not accepts.body:
        raise InvalidParameterValue("this request takes no body")
    try:
        parsed = json.loads(body, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the parser
        raise InvalidParameterValue("the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidParameterValue("the body must be a JSON object")
    for key in parsed:
        if key not in accepts.body:
            raise UnknownParameter(f"The parameter {key} is not recognized")
    return parsed


def _dry_run(request: Request, body: dict[str, Any]) -> bool:
    """``DryRun`` from the body and/or ``dry_run`` from the query; both given must agree."""
    values = []
    if "DryRun" in body:
        values.append(_as_bool(body["DryRun"]))
    if "dry_run" in request.query_params:
        values.append(_as_bool(request.query_params["dry_run"]))
    if len(set(values)) > 1:
        raise InvalidParameterCombination("DryRun in the body and dry_run in the query disagree")
    return bool(values and values[0])


def _as_bool(value: object) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidParameterValue("DryRun must be true or false")
    return value


def rest_routes(ctx: ServiceContext) -> list[Route]:
    """The ``/v1`` routes, bound to ``ctx``."""

    def endpoint(
        action: str,
        work: Callable[[Request, dict[str, Any], Caller, str, RequestAudit], dict[str, Any]],
        accepts: Accepts,
    ) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            audit = new_audit(request)
            audit.action = action
            headers = response_headers(audit.request_id)
            early: KdiagError | BodyIncomplete | None = None
            try:
                raw = await read_body(request)
            except (KdiagError, BodyIncomplete) as exc:
                raw, early = b"", exc
            incoming = incoming_request(request, raw)

            def run() -> dict[str, Any]:
                if early is not None:
                    raise early
                caller, region = ctx.authenticate(incoming, audit)
                _check_query(request, accepts)
                return work(request, _json_body(raw, accepts), caller, region, audit)

            answer = await run_in_threadpool(ctx.run, run, audit)
            if isinstance(answer, Replayed):
                return replayed_response(answer, audit.request_id)
            response: Response
            if isinstance(answer, ApiError):
                response = JSONResponse(
                    error_json(answer, audit.request_id), answer.status, headers
                )
            else:
                response = JSONResponse({**answer, "RequestId": audit.request_id}, 200, headers)
            await keep_answer(ctx.record_answer, audit, response)
            return response

        return handle

    def list_instances(
        request: Request, body: dict[str, Any], caller: Caller, region: str, audit: RequestAudit
    ) -> dict[str, Any]:
        ids = request.query_params.getlist("id")
        if len(ids) == 1:
            audit.instance_id = ids[0]
        found = actions.describe_instances(ctx, caller, region, ids, _filters(request), audit=audit)
        return {"Instances": [instance_json(i) for i in found]}

    def interrupt(
        request: Request, body: dict[str, Any], caller: Caller, region: str, audit: RequestAudit
    ) -> dict[str, Any]:
        instance_id = request.path_params["instance_id"]
        audit.instance_id = instance_id
        audit.dry_run = _dry_run(request, body)
        outcome = actions.send_interrupt(
            ctx, caller, region, instance_id, dry_run=audit.dry_run, audit=audit
        )
        return {"InstanceId": instance_id, "Outcome": outcome, "Return": True}

    def audit_log(
        request: Request, body: dict[str, Any], caller: Caller, region: str, audit: RequestAudit
    ) -> dict[str, Any]:
        since_raw = request.query_params.get("since")
        limit_raw = request.query_params.get("limit", "100")
        try:
            since = (
                dt.datetime.fromisoformat(since_raw.replace("Z", "+00:00")) if since_raw else None
            )
            limit = int(limit_raw)
        except ValueError:
            raise InvalidParameterValue("since must be ISO 8601, limit a number") from None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        if not 1 <= limit <= MAX_AUDIT_ROWS:
            raise InvalidParameterValue(f"limit must be 1..{MAX_AUDIT_ROWS}")
        rows = actions.lookup_events(ctx, caller, region, since=since, limit=limit, audit=audit)
        return {"Events": [r.to_json() for r in rows]}

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    return [
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route(
            "/v1/instances",
            endpoint(
                "DescribeInstances",
                list_instances,
                Accepts(query=frozenset({"id", "filter"}), repeatable=frozenset({"id", "filter"})),
            ),
            methods=["GET"],
        ),
        Route(
            "/v1/instances/{instance_id}/diagnostic-interrupt",
            endpoint(
                "SendDiagnosticInterrupt",
                interrupt,
                Accepts(query=frozenset({"dry_run"}), body=frozenset({"DryRun"})),
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/audit",
            endpoint("LookupEvents", audit_log, Accepts(query=frozenset({"since", "limit"}))),
            methods=["GET"],
        ),
    ]
