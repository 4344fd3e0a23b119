"""request_context(): the condition keys of an ec2:SendDiagnosticInterrupt request."""

from __future__ import annotations

import datetime as dt

from kdiag.policy import evaluate, instance_arn, request_context
from tests.policy.helpers import ACCOUNT, ACTION, INSTANCE, REGION, allow, doc

NOW = dt.datetime(2026, 11, 22, 7, 30, 5, tzinfo=dt.UTC)


def test_keys_from_plain_values():
    ctx = request_context(
        account_id=ACCOUNT,
        user_name="alice",
        user_id="AIDAEXAMPLE",
        source_ip="192.0.2.1",
        region=REGION,
        instance_id=INSTANCE,
        availability_zone="us-east-1a",
        tags={"Owner": "alice", "env": "prod"},
        now=NOW,
        secure_transport=False,
        principal_tags={"team": "red"},
        instance_type="m5.large",
    )
    assert ctx == {
        "aws:CurrentTime": "2026-11-22T07:30:05Z",
        "aws:EpochTime": str(int(NOW.timestamp())),
        "aws:PrincipalAccount": ACCOUNT,
        "aws:RequestedRegion": REGION,
        "ec2:Region": REGION,
        "aws:SourceIp": "192.0.2.1",
        "aws:username": "alice",
        "aws:PrincipalType": "User",
        "aws:userid": "AIDAEXAMPLE",
        "aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "aws:SecureTransport": "false",
        "ec2:InstanceID": INSTANCE,
        "ec2:AvailabilityZone": "us-east-1a",
        "ec2:InstanceType": "m5.large",
        "aws:PrincipalTag/team": "red",
        "aws:ResourceTag/Owner": "alice",
        "ec2:ResourceTag/Owner": "alice",
        "aws:ResourceTag/env": "prod",
        "ec2:ResourceTag/env": "prod",
    }


def test_unknown_values_are_left_out_and_naive_time_is_utc():
    ctx = request_context(
        account_id=ACCOUNT,
        user_name=None,
        user_id=None,
        source_ip=None,
        region=REGION,
        now=dt.datetime(2026, 1, 2, 3, 4, 5),
    )
    assert ctx["aws:CurrentTime"] == "2026-01-02T03:04:05Z"
    assert ctx["aws:EpochTime"] == "1767323045"
    for key in ("aws:SourceIp", "aws:username", "aws:userid", "aws:PrincipalArn", "ec2:InstanceID"):
        assert key not in ctx


def test_context_drives_time_region_and_tag_conditions():
    ctx = request_context(
        account_id=ACCOUNT,
        user_name="alice",
        user_id="AIDA",
        source_ip="2001:db8::7",
        region=REGION,
        instance_id=INSTANCE,
        tags={"Owner": "alice"},
        now=NOW,
    )
    policy = doc(
        allow(
            Resource="arn:aws:ec2:*:111122223333:instance/${ec2:InstanceID}",
            Condition={
                "DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"},
                "DateGreaterThan": {"aws:EpochTime": "1767225600"},
                "StringEquals": {"ec2:Region": REGION, "ec2:ResourceTag/Owner": "${aws:username}"},
                "IpAddress": {"aws:SourceIp": "2001:db8::/32"},
                "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/al*"},
            },
        )
    )
    arn = instance_arn(REGION, ACCOUNT, INSTANCE)
    assert arn == f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
    assert evaluate([policy], ACTION, arn, ctx).allowed
    later = request_context(
        account_id=ACCOUNT,
        user_name="alice",
        user_id="AIDA",
        source_ip="2001:db8::7",
        region=REGION,
        instance_id=INSTANCE,
        tags={"Owner": "alice"},
        now=dt.datetime(2027, 6, 1, tzinfo=dt.UTC),
    )
    assert not evaluate([policy], ACTION, arn, later).allowed
