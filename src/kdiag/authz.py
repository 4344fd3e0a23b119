"""Authorization: the one decision taken before every action, whichever face asked.

Every action of every face — the EC2 Query endpoint, the ``/v1`` API, the use case behind
them (:mod:`kdiag.interrupts`) and the CLI — asks :func:`authorize` (or, to explain a
decision without acting on it, :func:`decide`).  Both read the caller's inline policies the
one way (:meth:`Store.policies_of <kdiag.store.Store.policies_of>`), build the condition
keys the one way (:func:`condition_context`, over :func:`kdiag.policy.request_context`), so
a policy conditioned on ``aws:PrincipalType``, ``aws:SourceIp`` or ``aws:CurrentTime``
answers every action alike, and a denial always reads as EC2's does::

    You are not authorized to perform this operation. User: <arn> is not authorized to
    perform: <action> on resource: <resource>
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kdiag import policy
from kdiag.errors import AccessDenied
from kdiag.store import Instance, Store, User

__all__ = ("Caller", "authorize", "condition_context", "decide", "instance_in_scope")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal (an IAM-style user) and where the request came from."""

    account_id: str
    user_name: str
    user_id: str
    access_key_id: str | None = None
    source_ip: str | None = None
    #: whether the request came over TLS (``aws:SecureTransport``); None: no transport at
    #: all (the CLI acting locally), and the key is left out
    secure_transport: bool | None = None

    @classmethod
    def of(
        cls, user: User, *, access_key_id: str | None = None, source_ip: str | None = None
    ) -> Caller:
        """The caller for ``user`` of the store, signing with ``access_key_id``."""
        return cls(user.account_id, user.name, user.id, access_key_id, source_ip)

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:user/<name>`` (:func:`kdiag.policy.user_arn`)."""
        return policy.user_arn(self.account_id, self.user_name)


def instance_in_scope(
    store: Store, caller: Caller, region: str, instance_id: str
) -> Instance | None:
    """The instance ``instance_id`` when it exists in ``caller``'s account and ``region``;
    else None.  Only then may its zone and tags count in a decision: an instance elsewhere
    is evaluated as if absent, so "not found" is never revealed through a condition."""
    instance = store.get_instance(instance_id)
    if instance is None or (instance.account_id, instance.region) != (caller.account_id, region):
        return None
    return instance


def condition_context(
    caller: Caller,
    *,
    region: str,
    instance_id: str | None = None,
    instance: Instance | None = None,
    now: dt.datetime | None = None,
) -> dict[str, str | list[str]]:
    """The IAM condition keys of a request by ``caller`` in ``region``.

    The global keys (``aws:PrincipalType``, ``aws:SourceIp``, ``aws:CurrentTime``, ...) are
    the same for every action.  ``ec2:InstanceID`` is the id the caller asked for; the
    instance's zone and tags (``ec2:AvailabilityZone``, ``aws:ResourceTag/*``) only when
    ``instance`` is given, that is when it exists in the caller's account and region.
    """
    return policy.request_context(
        account_id=caller.account_id,
        user_name=caller.user_name,
        user_id=caller.user_id,
        source_ip=caller.source_ip,
        region=region,
        instance_id=instance_id,
        availability_zone=instance.availability_zone if instance is not None else None,
        tags=dict(instance.tags) if instance is not None else None,
        now=now,
        principal_arn=caller.arn,
        secure_transport=caller.secure_transport,
    )


def decide(
    store: Store,
    caller: Caller,
    action: str,
    resource: str,
    *,
    region: str,
    instance_id: str | None = None,
    instance: Instance | None = None,
    now: dt.datetime | None = None,
) -> policy.Decision:
    """Whether ``caller``'s policies allow ``action`` on ``resource``, and which statement
    decided; never raises for a denial.  The arguments are :func:`authorize`'s."""
    context = condition_context(
        caller, region=region, instance_id=instance_id, instance=instance, now=now
    )
    policies = store.policies_of(caller.account_id, caller.user_name)
    return policy.evaluate(policies, action, resource, context)


def authorize(
    store: Store,
    caller: Caller,
    action: str,
    resource: str,
    *,
    region: str,
    instance_id: str | None = None,
    instance: Instance | None = None,
    now: dt.datetime | None = None,
) -> policy.Decision:
    """Allow ``action`` on ``resource`` or raise.

    :param action: ``ec2:SendDiagnosticInterrupt``, ``ec2:DescribeInstances``,
        ``cloudtrail:LookupEvents``, ...
    :param resource: an ARN (:func:`kdiag.policy.instance_arn`) or ``*``.
    :param region: the region the request is for (``aws:RequestedRegion``, ``ec2:Region``).
    :param instance_id: the instance id asked for (``ec2:InstanceID``).
    :param instance: the instance, when it exists in the caller's account and region (its
        zone and tags become condition keys).
    :param now: the request time (``aws:CurrentTime``; default: the clock).
    :return: the allowing decision (its ``reason`` belongs in the audit row).
    :raises AccessDenied: no statement allows it, or one denies it; ``reason`` says which.
    """
    decision = decide(
        store,
        caller,
        action,
        resource,
        region=region,
        instance_id=instance_id,
        instance=instance,
        now=now,
    )
    if not decision.allowed:
        raise AccessDenied(
            "You are not authorized to perform this operation. "
            f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource}",
            reason=decision.reason,
        )
    return decision
