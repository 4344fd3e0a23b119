"""The request context for ``ec2:SendDiagnosticInterrupt``, built from plain values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

__all__ = ("instance_arn", "request_context", "user_arn")


def instance_arn(region: str, account_id: str, instance_id: str, partition: str = "aws") -> str:
    """``arn:aws:ec2:<region>:<account>:instance/<id>``, the resource the action is on."""
    return f"arn:{partition}:ec2:{region}:{account_id}:instance/{instance_id}"


def user_arn(account_id: str, user_name: str, partition: str = "aws") -> str:
    """``arn:aws:iam::<account>:user/<name>``, the principal of a request by an IAM user."""
    return f"arn:{partition}:iam::{account_id}:user/{user_name}"


def request_context(
    *,
    account_id: str,
    user_name: str | None,
    user_id: str | None,
    source_ip: str | None,
    region: str,
    instance_id: str | None = None,
    availability_zone: str | None = None,
    tags: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    principal_arn: str | None = None,
    principal_tags: Mapping[str, str] | None = None,
    secure_transport: bool | None = None,
    instance_type: str | None = None,
    partition: str = "aws",
) -> dict[str, str | list[str]]:
    """The condition keys an EC2 ``SendDiagnosticInterrupt`` request carries.

    Keys (ec2-iam-sigv4.md §3.6): ``aws:SourceIp``, ``aws:CurrentTime``, ``aws:EpochTime``,
    ``aws:username``, ``aws:userid``, ``aws:PrincipalArn``, ``aws:PrincipalAccount``,
    ``aws:PrincipalType``, ``aws:PrincipalTag/*``, ``aws:RequestedRegion``,
    ``aws:SecureTransport``, ``aws:ResourceTag/*``, ``ec2:ResourceTag/*``, ``aws:TagKeys``-free
    (tags are the resource's, not the request's), ``ec2:Region``, ``ec2:InstanceID``,
    ``ec2:AvailabilityZone`` and ``ec2:InstanceType``.  ``None`` leaves a key out, as AWS
    leaves out keys it has no value for.  ``now`` defaults to the current UTC time; a naive
    ``now`` is taken as UTC.  ``principal_arn`` defaults to the IAM user ARN
    ``arn:aws:iam::<account>:user/<user_name>``.
    """
    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    when = when.astimezone(dt.UTC)
    ctx: dict[str, str | list[str]] = {
        "aws:CurrentTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(when.timestamp())),
        "aws:PrincipalAccount": account_id,
        "aws:RequestedRegion": region,
        "ec2:Region": region,
    }
    if source_ip is not None:
        ctx["aws:SourceIp"] = source_ip
    if user_name is not None:
        ctx["aws:username"] = user_name
        ctx["aws:PrincipalType"] = "User"
    if user_id is not None:
        ctx["aws:userid"] = user_id
    if principal_arn is None and user_name is not None:
        principal_arn = user_arn(account_id, user_name, partition)
    if principal_arn is not None:
        ctx["aws:PrincipalArn"] = principal_arn
    if secure_transport is not None:
        ctx["aws:SecureTransport"] = "true" if secure_transport else "false"
    if instance_id is not None:
        ctx["ec2:InstanceID"] = instance_id
    if availability_zone is not None:
        ctx["ec2:AvailabilityZone"] = availability_zone
    if instance_type is not None:
        ctx["ec2:InstanceType"] = instance_type
    for key, value in (principal_tags or {}).items():
        ctx[f"aws:PrincipalTag/{key}"] = value
    for key, value in (tags or {}).items():
        ctx[f"aws:ResourceTag/{key}"] = value
        ctx[f"ec2:ResourceTag/{key}"] = value
    return ctx
