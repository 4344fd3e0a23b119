"""The service's actions, one function each, over the use-case layer.

Both faces of the service (the EC2 Query endpoint and the ``/v1`` API) parse their own
parameters and then call these.  Each action authorizes through :func:`kdiag.authz.authorize`
— the same condition keys, the same denial — before it reads or does anything, and notes the
decision on the request's :class:`~kdiag.service.audit.RequestAudit`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from kdiag import authz, interrupts, policy
from kdiag.errors import AccessDenied, DryRunOperation, InvalidInstanceIDNotFound
from kdiag.filters import Filter, match_filters
from kdiag.service.audit import RequestAudit
from kdiag.service.context import ServiceContext
from kdiag.store import AuditEntry, Instance, check_instance_id

__all__ = ("describe_instances", "lookup_events", "send_interrupt")


def _authorize(
    ctx: ServiceContext, caller: authz.Caller, region: str, action: str, audit: RequestAudit
) -> None:
    """:func:`kdiag.authz.authorize` on ``*``, the decision noted for the audit row."""
    try:
        decision = authz.authorize(ctx.store, caller, action, "*", region=region)
    except AccessDenied as exc:
        audit.decision, audit.reason = "deny", exc.reason
        raise
    audit.decision, audit.reason = "allow", decision.reason


def send_interrupt(
    ctx: ServiceContext,
    caller: authz.Caller,
    region: str,
    instance_id: str,
    *,
    dry_run: bool,
    audit: RequestAudit,
) -> str:
    """Run the use case (which authorizes and audits itself); return its outcome (``sent``).

    :raises DryRunOperation: an authorized dry run.
    """
    request = interrupts.InterruptRequest(
        caller=caller,
        instance_id=instance_id,
        dry_run=dry_run,
        region=region,
        request_id=audit.request_id,
    )
    try:
        result = interrupts.send_diagnostic_interrupt(ctx.store, request, backends=ctx.backends)
    finally:
        audit.audited = True  # the use case audits every outcome, failures included
    if result.outcome == "dry-run":
        raise DryRunOperation()
    return result.outcome


def describe_instances(
    ctx: ServiceContext,
    caller: authz.Caller,
    region: str,
    ids: Sequence[str],
    filters: Sequence[Filter],
    *,
    audit: RequestAudit,
) -> list[Instance]:
    """The caller's instances in ``region``, by id and filter (``ec2:DescribeInstances``).

    :raises DryRunOperation: an authorized dry run.
    :raises InvalidInstanceIDNotFound: an id asked for is not among them.
    """
    for iid in ids:
        check_instance_id(iid)
    _authorize(ctx, caller, region, "ec2:DescribeInstances", audit)
    if audit.dry_run:
        raise DryRunOperation()
    found = ctx.store.list_instances(ids or None, account_id=caller.account_id, region=region)
    missing = sorted(set(ids) - {i.id for i in found})
    if missing:
        raise InvalidInstanceIDNotFound(f"The instance IDs '{', '.join(missing)}' do not exist")
    return [i for i in found if match_filters(i, filters)]


def lookup_events(
    ctx: ServiceContext,
    caller: authz.Caller,
    region: str,
    *,
    since: dt.datetime | None,
    limit: int,
    audit: RequestAudit,
) -> list[AuditEntry]:
    """The caller's account's audit rows, oldest first (``cloudtrail:LookupEvents`` on ``*``).

    Only rows whose principal is in the caller's account: another tenant's principals,
    instances, source addresses and messages are never shown, and neither are rows of
    requests that never authenticated (they belong to no account).
    """
    _authorize(ctx, caller, region, "cloudtrail:LookupEvents", audit)
    prefix = policy.user_arn(caller.account_id, "").removesuffix("user/")
    return ctx.store.audit_rows(since=since, limit=limit, principal_prefix=prefix)
