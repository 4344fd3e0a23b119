"""The EC2 Query protocol: parameters in, XML out, one thin method per action.

Requests are ``POST /`` with a form-encoded body (or ``GET /?Action=...``), signed with SigV4
for service ``ec2``.  :class:`Ec2Query` authenticates (through the shared
:class:`~kdiag.service.context.ServiceContext`), dispatches ``Action`` to
``send_diagnostic_interrupt`` or ``describe_instances`` (each a call into
:mod:`kdiag.service.actions`), and answers with the EC2 XML envelope, or the error envelope
from :mod:`kdiag.service.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from kdiag.authz import Caller
from kdiag.backends.base import InstanceState
from kdiag.errors import (
    InvalidAction,
    InvalidParameterCombination,
    InvalidParameterValue,
    KdiagError,
    MissingAction,
    MissingParameter,
    UnknownParameter,
)
from kdiag.filters import MAX_FILTERS, Filter
from kdiag.service import actions
from kdiag.service.audit import RequestAudit
from kdiag.service.context import ServiceContext
from kdiag.service.errors import safe_text, xml_text
from kdiag.service.sigv4 import IncomingRequest
from kdiag.store import Instance

__all__ = (
    "API_VERSION",
    "SIGV4_QUERY_PARAMS",
    "XMLNS",
    "Ec2Query",
    "check_known_params",
    "describe_instances_xml",
    "indexed",
    "parse_bool",
    "parse_filters",
    "parse_params",
    "return_true_xml",
)

API_VERSION = "2016-11-15"
XMLNS = f"http://ec2.amazonaws.com/doc/{API_VERSION}/"
MAX_PARAMS = 1000

_INDEX = re.compile(r"\.(\d+)$")

#: The SigV4 parameters of a presigned request: in the query string only, read by the verifier.
SIGV4_QUERY_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
    }
)

_COMMON_PARAMS = frozenset({"Action", "Version", "DryRun"})

#: The parameters EC2 defines for each action, exactly as spelled (names are case-sensitive):
#: fixed names, and the patterns of indexed ones (indices from 1, no leading zero).
_ACTION_PARAMS: dict[str, tuple[frozenset[str], re.Pattern[str] | None]] = {
    "SendDiagnosticInterrupt": (_COMMON_PARAMS | {"InstanceId"}, None),
    "DescribeInstances": (
        _COMMON_PARAMS | {"MaxResults", "NextToken"},
        re.compile(r"InstanceId\.[1-9]\d{0,3}|Filter\.[1-9]\d{0,3}\.(?:Name|Value\.[1-9]\d{0,3})"),
    ),
}


def check_known_params(action: str, params: Mapping[str, str]) -> None:
    """Refuse a parameter ``action`` does not define (``dryrun``, ``DryRun.1``, ...).

    An ignored misspelling is an unsafe default: ``dryrun=true`` would send a real NMI.

    :raises UnknownParameter: naming the first such parameter.
    """
    names, pattern = _ACTION_PARAMS[action]
    for key in params:
        if key not in names and (pattern is None or not pattern.fullmatch(key)):
            raise UnknownParameter(f"The parameter {key} is not recognized")


def parse_params(req: IncomingRequest) -> dict[str, str]:
    """The request's parameters: the query string (minus SigV4's) and a form-encoded body."""
    params: dict[str, str] = {}
    sources = [req.raw_query]
    if req.body:
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if content_type not in ("", "application/x-www-form-urlencoded"):
            raise InvalidParameterValue("the body must be application/x-www-form-urlencoded")
        try:
            sources.append(req.body.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidParameterValue("the body is not valid UTF-8") from None
    for index, source in enumerate(sources):
        try:
            pairs = parse_qsl(
                source, keep_blank_values=True, max_num_fields=MAX_PARAMS, errors="strict"
            )
        except (ValueError, UnicodeDecodeError):
            raise InvalidParameterValue("malformed query parameters") from None
        for key, value in pairs:
            if index == 0 and key in SIGV4_QUERY_PARAMS:  # the query string
                continue
            if key in params and params[key] != value:
                raise InvalidParameterCombination(f"parameter {key} is given twice")
            params[key] = value
    return params


def parse_bool(params: Mapping[str, str], name: str) -> bool:
    """An EC2 Boolean parameter (absent means false)."""
    value = params.get(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise InvalidParameterValue(f"Value ({value}) for parameter {name} is invalid")
    return lowered == "true"


def indexed(params: Mapping[str, str], prefix: str) -> list[str]:
    """The values of ``<prefix>.1``, ``<prefix>.2``, ... in index order."""
    found: list[tuple[int, str]] = []
    for key, value in params.items():
        if key.startswith(prefix + ".") and (m := _INDEX.search(key)) and key == f"{prefix}.{m[1]}":
            found.append((int(m[1]), value))
    return [v for _, v in sorted(found)]


def parse_filters(params: Mapping[str, str]) -> list[Filter]:
    """``Filter.N.Name`` / ``Filter.N.Value.M`` into :class:`Filter` objects."""
    filters: list[tuple[int, Filter]] = []
    for key, name in params.items():
        m = re.fullmatch(r"Filter\.(\d+)\.Name", key)
        if m is None:
            continue
        values = tuple(indexed(params, f"Filter.{m[1]}.Value"))
        if not values:
            raise InvalidParameterValue(f"filter {name!r} has no values")
        filters.append((int(m[1]), Filter(name, values)))
    if len(filters) > MAX_FILTERS:
        raise InvalidParameterValue(f"at most {MAX_FILTERS} filters")
    return [f for _, f in sorted(filters, key=lambda t: t[0])]


def return_true_xml(action: str, request_id: str) -> bytes:
    """``<ActionResponse><requestId/><return>true</return></ActionResponse>``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{action}Response xmlns="{XMLNS}"><requestId>{xml_text(request_id)}</requestId>'
        f"<return>true</return></{action}Response>"
    ).encode()


def _instance_xml(instance: Instance) -> str:
    tags = "".join(
        f"<item><key>{xml_text(k)}</key><value>{xml_text(v)}</value></item>"
        for k, v in sorted(instance.tags.items())
    )
    launch = instance.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (
        "<item>"
        f"<instanceId>{xml_text(instance.id)}</instanceId>"
        f"<instanceState><code>{InstanceState(instance.state).code}</code>"
        f"<name>{xml_text(instance.state)}</name></instanceState>"
        f"<launchTime>{launch}</launchTime>"
        f"<placement><availabilityZone>{xml_text(instance.availability_zone)}</availabilityZone>"
        "<tenancy>default</tenancy></placement>"
        f"<architecture>{xml_text(instance.arch)}</architecture>"
        "<hypervisor>kvm</hypervisor>"
        "<virtualizationType>hvm</virtualizationType>"
        f"<tagSet>{tags}</tagSet>"
        "</item>"
    )


def describe_instances_xml(instances: Sequence[Instance], request_id: str) -> bytes:
    """A DescribeInstances answer: one reservation per instance, as botocore parses it."""
    reservations = "".join(
        "<item>"
        f"<reservationId>r-{xml_text(i.id[2:])}</reservationId>"
        f"<ownerId>{xml_text(i.account_id)}</ownerId><groupSet/>"
        f"<instancesSet>{_instance_xml(i)}</instancesSet>"
        "</item>"
        for i in instances
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<DescribeInstancesResponse xmlns="{XMLNS}">'
        f"<requestId>{xml_text(request_id)}</requestId>"
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
        malformed: KdiagError | None = None
        try:
            params = parse_params(req)
        except KdiagError as exc:
            params, malformed = {}, exc
        audit.action = safe_text(params.get("Action") or "")[:64] or None
        caller, region = self.ctx.authenticate(req, audit)
        if malformed is not None:
            raise malformed
        action = params.get("Action")
        if not action:
            raise MissingAction("The request must contain the parameter Action")
        if action in _ACTION_PARAMS:
            check_known_params(action, params)
        if action == "SendDiagnosticInterrupt":
            return self.send_diagnostic_interrupt(params, caller, region, audit)
        if action == "DescribeInstances":
            return self.describe_instances(params, caller, region, audit)
        raise InvalidAction(f"The action {action} is not valid for this web service.")

    def send_diagnostic_interrupt(
        self, params: Mapping[str, str], caller: Caller, region: str, audit: RequestAudit
    ) -> bytes:
        instance_id = params.get("InstanceId")
        audit.instance_id = instance_id or None
        dry_run = parse_bool(params, "DryRun")
        audit.dry_run = dry_run
        if not instance_id:
            raise MissingParameter("The request must contain the parameter InstanceId")
        actions.send_interrupt(self.ctx, caller, region, instance_id, dry_run=dry_run, audit=audit)
        return return_true_xml("SendDiagnosticInterrupt", audit.request_id)

    def describe_instances(
        self, params: Mapping[str, str], caller: Caller, region: str, audit: RequestAudit
    ) -> bytes:
        ids = indexed(params, "InstanceId")
        max_results = params.get("MaxResults")
        if max_results is not None and not (
            max_results.isascii() and max_results.isdigit() and 5 <= int(max_results) <= 1000
        ):
            raise InvalidParameterValue(
                f"Value ({max_results}) for parameter MaxResults is invalid (5..1000)"
            )
        filters = parse_filters(params)
        audit.dry_run = parse_bool(params, "DryRun")
        if len(ids) == 1:
            audit.instance_id = ids[0]
        instances = actions.describe_instances(self.ctx, caller, region, ids, filters, audit=audit)
        return describe_instances_xml(instances, audit.request_id)
