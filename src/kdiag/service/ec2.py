"""The EC2 Query protocol: parameters in, XML out, one thin method per action.

Requests are ``POST /`` with a form-encoded body (or ``GET /?Action=...``), signed with SigV4
for service ``ec2``.  :class:`Ec2Query` authenticates (through the shared
:class:`~kdiag.service.context.ServiceContext`), dispatches ``Action`` to
``send_diagnostic_interrupt`` or ``describe_instances``, and answers with the EC2 XML
envelope, or the error envelope from :mod:`kdiag.service.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from kdiag.backends.base import InstanceState
from kdiag.service.errors import ApiError
from kdiag.service.sigv4 import IncomingRequest

if TYPE_CHECKING:
    from kdiag.service.context import Principal, RequestAudit, ServiceContext
    from kdiag.store.records import Instance

__all__ = (
    "API_VERSION",
    "XMLNS",
    "Ec2Query",
    "Filter",
    "describe_instances_xml",
    "indexed",
    "match_filters",
    "parse_bool",
    "parse_filters",
    "parse_params",
    "return_true_xml",
)

API_VERSION = "2016-11-15"
XMLNS = f"http://ec2.amazonaws.com/doc/{API_VERSION}/"
MAX_PARAMS = 1000

#: EC2's instance-state codes, by state name (from the one enum).
STATE_CODES = {s.value: s.code for s in InstanceState if s.code is not None}

_INDEX = re.compile(r"\.(\d+)$")


def parse_params(req: IncomingRequest) -> dict[str, str]:
    """The request's parameters: the query string (minus SigV4's) and a form-encoded body."""
    params: dict[str, str] = {}
    sources = [req.raw_query]
    if req.body:
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if content_type not in ("", "application/x-www-form-urlencoded"):
            raise ApiError(
                "InvalidParameterValue", "the body must be application/x-www-form-urlencoded"
            )
        try:
            sources.append(req.body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError("InvalidParameterValue", "the body is not valid UTF-8") from None
    for source in sources:
        try:
            pairs = parse_qsl(
                source, keep_blank_values=True, max_num_fields=MAX_PARAMS, errors="strict"
            )
        except (ValueError, UnicodeDecodeError):
            raise ApiError("InvalidParameterValue", "malformed query parameters") from None
        for key, value in pairs:
            if key.startswith("X-Amz-"):
                continue
            if key in params and params[key] != value:
                raise ApiError("InvalidParameterCombination", f"parameter {key} is given twice")
            params[key] = value
    return params


def parse_bool(params: Mapping[str, str], name: str) -> bool:
    """An EC2 Boolean parameter (absent means false)."""
    value = params.get(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ApiError("InvalidParameterValue", f"Value ({value}) for parameter {name} is invalid")
    return lowered == "true"


def indexed(params: Mapping[str, str], prefix: str) -> list[str]:
    """The values of ``<prefix>.1``, ``<prefix>.2``, ... in index order."""
    found: list[tuple[int, str]] = []
    for key, value in params.items():
        if key.startswith(prefix + ".") and (m := _INDEX.search(key)) and key == f"{prefix}.{m[1]}":
            found.append((int(m[1]), value))
    return [v for _, v in sorted(found)]


@dataclass(frozen=True, slots=True)
class Filter:
    """One ``Filter.N``: a name and the values any of which may match."""

    name: str
    values: tuple[str, ...]


def parse_filters(params: Mapping[str, str]) -> list[Filter]:
    """``Filter.N.Name`` / ``Filter.N.Value.M`` into :class:`Filter` objects."""
    filters: list[tuple[int, Filter]] = []
    for key, name in params.items():
        m = re.fullmatch(r"Filter\.(\d+)\.Name", key)
        if m is None:
            continue
        values = tuple(indexed(params, f"Filter.{m[1]}.Value"))
        if not values:
            raise ApiError("InvalidParameterValue", f"filter {name!r} has no values")
        filters.append((int(m[1]), Filter(name, values)))
    return [f for _, f in sorted(filters, key=lambda t: t[0])]


def _wildcard(pattern: str) -> re.Pattern[str]:
    # EC2 filter values accept * and ? wildcards.
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.DOTALL)


def _any_match(values: Iterable[str], candidates: Iterable[str]) -> bool:
    patterns = [_wildcard(v) for v in values]
    return any(p.fullmatch(c) for p in patterns for c in candidates)


SUPPORTED_FILTERS = (
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "availability-zone",
    "architecture",
    "tag-key",
    "tag-value",
    "tag:<key>",
)


def match_filters(instance: Instance, filters: Sequence[Filter]) -> bool:
    """True when ``instance`` passes every filter (AND), each filter any value (OR)."""
    for f in filters:
        if f.name.startswith("tag:"):
            key = f.name[4:]
            ok = key in instance.tags and _any_match(f.values, [instance.tags[key]])
        elif f.name == "tag-key":
            ok = _any_match(f.values, instance.tags.keys())
        elif f.name == "tag-value":
            ok = _any_match(f.values, instance.tags.values())
        elif f.name == "instance-id":
            ok = _any_match(f.values, [instance.id])
        elif f.name == "instance-state-name":
            ok = _any_match(f.values, [instance.state])
        elif f.name == "instance-state-code":
            ok = str(STATE_CODES.get(instance.state, -1)) in f.values
        elif f.name == "availability-zone":
            ok = _any_match(f.values, [instance.availability_zone])
        elif f.name == "architecture":
            ok = _any_match(f.values, [instance.arch])
        else:
            raise ApiError(
                "InvalidParameterValue",
                f"The filter '{f.name}' is invalid (supported: {', '.join(SUPPORTED_FILTERS)})",
            )
        if not ok:
            return False
    return True


def return_true_xml(action: str, request_id: str) -> bytes:
    """``<ActionResponse><requestId/><return>true</return></ActionResponse>``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{action}Response xmlns="{XMLNS}"><requestId>{escape(request_id)}</requestId>'
        f"<return>true</return></{action}Response>"
    ).encode()


def _instance_xml(instance: Instance) -> str:
    tags = "".join(
        f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
        for k, v in sorted(instance.tags.items())
    )
    launch = instance.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (
        "<item>"
        f"<instanceId>{escape(instance.id)}</instanceId>"
        f"<instanceState><code>{STATE_CODES.get(instance.state, 0)}</code>"
        f"<name>{escape(instance.state)}</name></instanceState>"
        f"<launchTime>{launch}</launchTime>"
        f"<placement><availabilityZone>{escape(instance.availability_zone)}</availabilityZone>"
        "<tenancy>default</tenancy></placement>"
        f"<architecture>{escape(instance.arch)}</architecture>"
        "<hypervisor>kvm</hypervisor>"
        "<virtualizationType>hvm</virtualizationType>"
        f"<tagSet>{tags}</tagSet>"
        "</item>"
    )


def describe_instances_xml(instances: Sequence[Instance], request_id: str) -> bytes:
    """A DescribeInstances answer: one reservation per instance, as botocore parses it."""
    reservations = "".join(
        "<item>"
        f"<reservationId>r-{escape(i.id[2:])}</reservationId>"
        f"<ownerId>{escape(i.account_id)}</ownerId><groupSet/>"
        f"<instancesSet>{_instance_xml(i)}</instancesSet>"
        "</item>"
        for i in instances
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<DescribeInstancesResponse xmlns="{XMLNS}">'
        f"<requestId>{escape(request_id)}</requestId>"
        f"<reservationSet>{reservations}</reservationSet>"
        "</DescribeInstancesResponse>"
    ).encode()


class Ec2Query:
    """Dispatch one EC2 Query request; returns (HTTP status, XML body)."""

    ACTIONS = ("DescribeInstances", "SendDiagnosticInterrupt")

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def handle(self, req: IncomingRequest, audit: RequestAudit) -> bytes:
        """Authenticate, dispatch, and return the success body; raise for errors.

        Authentication comes first: a malformed request from an unauthenticated caller is
        answered with the authentication error, not with a parameter error.
        """
        malformed: ApiError | None = None
        try:
            params = parse_params(req)
        except ApiError as exc:
            params, malformed = {}, exc
        audit.action = (params.get("Action") or "")[:64] or None
        principal = self.ctx.authenticate(req, audit)
        if malformed is not None:
            raise malformed
        action = params.get("Action")
        if not action:
            raise ApiError("MissingAction", "The request must contain the parameter Action")
        if action == "SendDiagnosticInterrupt":
            return self.send_diagnostic_interrupt(params, principal, audit)
        if action == "DescribeInstances":
            return self.describe_instances(params, principal, audit)
        raise ApiError("InvalidAction", f"The action {action} is not valid for this web service.")

    def send_diagnostic_interrupt(
        self, params: Mapping[str, str], principal: Principal, audit: RequestAudit
    ) -> bytes:
        instance_id = params.get("InstanceId")
        audit.instance_id = instance_id or None
        dry_run = parse_bool(params, "DryRun")
        audit.dry_run = dry_run
        if not instance_id:
            raise ApiError("MissingParameter", "The request must contain the parameter InstanceId")
        self.ctx.send_interrupt(principal, instance_id, dry_run=dry_run, audit=audit)
        return return_true_xml("SendDiagnosticInterrupt", audit.request_id)

    def describe_instances(
        self, params: Mapping[str, str], principal: Principal, audit: RequestAudit
    ) -> bytes:
        ids = indexed(params, "InstanceId")
        filters = parse_filters(params)
        audit.dry_run = parse_bool(params, "DryRun")
        if len(ids) == 1:
            audit.instance_id = ids[0]
        instances = self.ctx.describe_instances(principal, ids, filters, audit=audit)
        return describe_instances_xml(instances, audit.request_id)
