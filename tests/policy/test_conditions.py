"""Condition operators, IfExists, set qualifiers and the missing-key rule.

Source: IAM User Guide, "IAM JSON policy elements: Condition operators", "Condition with
multiple context keys or values" and "Single-valued vs. multivalued context keys".  Each case
is an Allow guarded by one condition block, evaluated against one request context.
"""

from __future__ import annotations

import pytest

from kdiag.policy import evaluate
from tests.policy.helpers import allow, allowed_when, decide, deny

CASES = [
    # --- String --------------------------------------------------------------------------
    (
        {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        True,
    ),
    (
        {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        {"aws:PrincipalTag/job-category": "IAMUser-Admin"},
        False,
    ),  # values are case-sensitive
    ({"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, {}, False),
    (
        {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-*"}},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        False,
    ),  # no wildcards in Equals
    (
        {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-*"}},
        {"aws:PrincipalTag/job-category": "iamuser-*"},
        True,
    ),
    (
        {"StringNotEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        False,
    ),
    (
        {"StringNotEquals": {"aws:PrincipalTag/job-category": ["a", "b"]}},
        {"aws:PrincipalTag/job-category": "c"},
        True,
    ),  # NOR over the listed values
    (
        {"StringNotEquals": {"aws:PrincipalTag/job-category": ["a", "b"]}},
        {"aws:PrincipalTag/job-category": "b"},
        False,
    ),
    ({"StringNotEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, {}, True),
    (
        {"StringEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "IAMuser-ADMIN"}},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        True,
    ),
    (
        {"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "IAMuser-ADMIN"}},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        False,
    ),
    ({"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "x"}}, {}, True),
    (
        {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}},
        {"s3:prefix": "home/alice/photos", "aws:username": "alice"},
        True,
    ),
    (
        {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}},
        {"s3:prefix": "home/bob/photos", "aws:username": "alice"},
        False,
    ),
    ({"StringLike": {"s3:prefix": ["", "home/"]}}, {"s3:prefix": ""}, True),
    ({"StringLike": {"ec2:InstanceType": "t?.micro"}}, {"ec2:InstanceType": "t3.micro"}, True),
    ({"StringLike": {"ec2:InstanceType": "t?.micro"}}, {"ec2:InstanceType": "t3a.micro"}, False),
    ({"StringLike": {"ec2:InstanceType": "t3.*"}}, {"ec2:InstanceType": "T3.micro"}, False),
    ({"StringLike": {"ec2:InstanceType": "t3.*"}}, {"ec2:InstanceType": "t3xmicro"}, False),
    ({"StringLike": {"ec2:InstanceType": "t3.*"}}, {}, False),
    ({"StringNotLike": {"ec2:InstanceType": "t3.*"}}, {"ec2:InstanceType": "m5.large"}, True),
    ({"StringNotLike": {"ec2:InstanceType": "t3.*"}}, {"ec2:InstanceType": "t3.micro"}, False),
    # "If the policy condition requires that the key is not matched, such as StringNotLike
    # or ArnNotLike, and the right key is not present, the condition is true."
    ({"StringNotLike": {"ec2:InstanceType": "t3.*"}}, {}, True),
    # --- ARN -----------------------------------------------------------------------------
    (
        {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        True,
    ),
    (
        {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:topica"},
        False,
    ),  # case-sensitive
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        True,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:210987654321:TopicA"},
        False,
    ),
    (
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin?"}},
        {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/Admin1"},
        True,
    ),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin?"}}, {}, False),
    (
        {"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicB"},
        True,
    ),
    (
        {"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        False,
    ),
    ({"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}, {}, True),
    ({"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}, {}, True),
    # "Each of the six colon-delimited components of the ARN is checked separately": a
    # wildcard stays in its component, and a value with fewer components matches nothing.
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        False,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:us-*A"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        False,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:sns:us-*:*:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        True,
    ),
    (
        {"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        True,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:logs:*:*:log-group:*"}},
        {"aws:SourceArn": "arn:aws:logs:us-east-2:123456789012:log-group:app:x"},
        True,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "*"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TopicA"},
        True,
    ),
    (
        {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:Topic?"}},
        {"aws:SourceArn": "not-an-arn"},
        False,
    ),
    # --- Bool ----------------------------------------------------------------------------
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "false"}, False),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "false"}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {}, False),
    ({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "TRUE"}, True),
    ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}, {}, True),
    (
        {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}},
        {"aws:MultiFactorAuthPresent": "false"},
        False,
    ),
    # --- IP address ----------------------------------------------------------------------
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.77"}, True),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.114.1"}, False),
    (
        {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}},
        {"aws:SourceIp": "2001:db8:1234:5678::1"},
        True,
    ),
    (
        {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}},
        {"aws:SourceIp": "2001:db8:1234:5679::1"},
        False,
    ),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.5"}}, {"aws:SourceIp": "203.0.113.5"}, True),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "not-an-ip"}, False),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, False),
    ({"IpAddress": {"aws:SourceIp": "::/0"}}, {"aws:SourceIp": "203.0.113.5"}, False),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "192.0.2.1"}, True),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.1"}, False),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, True),
    ({"IpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}}, {}, True),
    # --- Date ----------------------------------------------------------------------------
    (
        {"DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"}},
        {"aws:CurrentTime": "2026-11-22T07:00:00Z"},
        True,
    ),
    (
        {"DateLessThan": {"aws:CurrentTime": "2020-06-30T23:59:59Z"}},
        {"aws:CurrentTime": "2026-11-22T07:00:00Z"},
        False,
    ),
    (
        {"DateLessThanEquals": {"aws:CurrentTime": "2026-11-22T07:00:00Z"}},
        {"aws:CurrentTime": "2026-11-22T07:00:00Z"},
        True,
    ),
    (
        {"DateGreaterThanEquals": {"aws:CurrentTime": "2026-11-22T08:00:00+01:00"}},
        {"aws:CurrentTime": "2026-11-22T07:00:00Z"},
        True,
    ),  # same instant, other offset
    (
        {"DateEquals": {"aws:CurrentTime": "1779433200"}},  # epoch seconds
        {"aws:CurrentTime": "2026-05-22T07:00:00Z"},
        True,
    ),
    (
        {"DateNotEquals": {"aws:CurrentTime": "2026-05-22T07:00:00Z"}},
        {"aws:CurrentTime": "2026-05-22T07:00:01Z"},
        True,
    ),
    ({"DateNotEquals": {"aws:CurrentTime": "2026-05-22T07:00:00Z"}}, {}, True),
    ({"DateGreaterThan": {"aws:EpochTime": "1700000000"}}, {"aws:EpochTime": "1779433200"}, True),
    (
        {"DateGreaterThan": {"aws:CurrentTime": "2020-04-01"}},  # a bare date is midnight UTC
        {"aws:CurrentTime": "2020-04-01T00:00:01Z"},
        True,
    ),
    ({"DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"}}, {}, False),
    (
        {"DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"}},
        {"aws:CurrentTime": "yesterday"},
        False,
    ),
    ({"DateLessThanIfExists": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, {}, True),
    # --- Numeric -------------------------------------------------------------------------
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, True),
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, False),
    ({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "9.5"}, True),
    ({"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, False),
    ({"NumericGreaterThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10.0"}, True),
    ({"NumericEquals": {"s3:max-keys": ["5", "10"]}}, {"s3:max-keys": "10"}, True),
    ({"NumericEquals": {"s3:max-keys": 10}}, {"s3:max-keys": "10"}, True),
    ({"NumericNotEquals": {"s3:max-keys": ["5", "10"]}}, {"s3:max-keys": "10"}, False),
    ({"NumericNotEquals": {"s3:max-keys": "10"}}, {}, True),
    ({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "ten"}, False),
    ({"NumericLessThan": {"s3:max-keys": "10"}}, {}, False),
    # --- Null ----------------------------------------------------------------------------
    ({"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
    (
        {"Null": {"aws:TokenIssueTime": "true"}},
        {"aws:TokenIssueTime": "2026-01-01T00:00:00Z"},
        False,
    ),
    (
        {"Null": {"aws:TokenIssueTime": "false"}},
        {"aws:TokenIssueTime": "2026-01-01T00:00:00Z"},
        True,
    ),
    ({"Null": {"aws:TokenIssueTime": "false"}}, {}, False),
    ({"Null": {"aws:TagKeys": "true"}}, {"aws:TagKeys": []}, True),  # empty is absent
    # --- Binary --------------------------------------------------------------------------
    (
        {"BinaryEquals": {"aws:BinaryKey": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}},
        {"aws:BinaryKey": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="},
        True,
    ),
    (
        {"BinaryEquals": {"aws:BinaryKey": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}},
        {"aws:BinaryKey": "YWJj"},
        False,
    ),
    ({"BinaryEquals": {"aws:BinaryKey": "YWJj"}}, {}, False),
    # --- IfExists ("StringLikeIfExists" example for ec2:InstanceType) ---------------------
    ({"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}, {}, True),
    (
        {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
        {"ec2:InstanceType": "t2.micro"},
        True,
    ),
    (
        {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
        {"ec2:InstanceType": "c5.large"},
        False,
    ),
    ({"StringNotEqualsIfExists": {"ec2:InstanceType": "t2.micro"}}, {}, True),
    ({"NumericLessThanIfExists": {"s3:max-keys": "10"}}, {}, True),
    # --- set qualifiers (multivalued keys) ------------------------------------------------
    (
        {"ForAnyValue:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}},
        {"aws:TagKeys": ["Env", "Other"]},
        True,
    ),
    (
        {"ForAnyValue:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}},
        {"aws:TagKeys": ["Other"]},
        False,
    ),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}}, {}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}}, {"aws:TagKeys": []}, False),
    (
        {"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}},
        {"aws:TagKeys": ["Env", "Owner"]},
        True,
    ),
    (
        {"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}},
        {"aws:TagKeys": ["Env", "Other"]},
        False,
    ),
    # "ForAllValues ... also returns true if there are no context keys in the request".
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}}, {}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "Env"]}}, {"aws:TagKeys": []}, True),
    # "... or if the key values resolve to a null data set, such as an empty string."
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner"]}}, {"aws:TagKeys": ""}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["Owner"]}}, {"aws:TagKeys": ""}, False),
    (
        {"ForAllValues:StringLike": {"aws:TagKeys": ["key*"]}},
        {"aws:TagKeys": ["key1", "key2"]},
        True,
    ),
    # Negated operators with qualifiers apply the negation to each request value.
    (
        {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Secret"]}},
        {"aws:TagKeys": ["Owner", "Env"]},
        True,
    ),
    (
        {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Secret"]}},
        {"aws:TagKeys": ["Owner", "Secret"]},
        False,
    ),
    (
        {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Secret"]}},
        {"aws:TagKeys": ["Owner", "Secret"]},
        True,
    ),
    (
        {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Secret"]}},
        {"aws:TagKeys": ["Secret"]},
        False,
    ),
    ({"ForAnyValue:StringNotLike": {"aws:TagKeys": ["Sec*"]}}, {"aws:TagKeys": ["Secret"]}, False),
    (
        {"ForAnyValue:IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"aws:SourceIp": ["192.0.2.1", "10.1.1.1"]},
        True,
    ),
    ({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["Owner"]}}, {}, True),
    # A single-valued key behaves as a one-element set under a qualifier.
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": "Owner"}}, {"aws:TagKeys": "Owner"}, True),
    # Without a qualifier, a multivalued request key matches when any of its values matches.
    ({"StringEquals": {"aws:TagKeys": "Owner"}}, {"aws:TagKeys": ["Env", "Owner"]}, True),
    ({"StringNotEquals": {"aws:TagKeys": "Owner"}}, {"aws:TagKeys": ["Env", "Owner"]}, False),
    # --- multiple keys AND, multiple values OR, multiple operators AND ---------------------
    (
        {"StringEquals": {"aws:PrincipalTag/dept": ["a", "b"], "aws:PrincipalTag/team": "x"}},
        {"aws:PrincipalTag/dept": "b", "aws:PrincipalTag/team": "x"},
        True,
    ),
    (
        {"StringEquals": {"aws:PrincipalTag/dept": ["a", "b"], "aws:PrincipalTag/team": "x"}},
        {"aws:PrincipalTag/dept": "b", "aws:PrincipalTag/team": "y"},
        False,
    ),
    (
        {
            "StringEquals": {"aws:RequestedRegion": "us-east-1"},
            "IpAddress": {"aws:SourceIp": "203.0.113.0/24"},
        },
        {"aws:RequestedRegion": "us-east-1", "aws:SourceIp": "127.0.0.1"},
        False,
    ),  # moto defect 4
    (
        {
            "StringEquals": {"aws:RequestedRegion": "us-east-1"},
            "IpAddress": {"aws:SourceIp": "203.0.113.0/24"},
        },
        {"aws:RequestedRegion": "us-east-1", "aws:SourceIp": "203.0.113.9"},
        True,
    ),
    ({}, {}, True),  # an empty Condition block holds
    # Booleans and numbers in the request context are accepted as their JSON text.
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    ({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 10}, True),
    # --- condition key names are case-insensitive ------------------------------------------
    (
        {"StringEquals": {"AWS:RequestedRegion": "us-east-1"}},
        {"aws:requestedregion": "us-east-1"},
        True,
    ),
    ({"IpAddress": {"aws:sourceip": "203.0.113.0/24"}}, {"AWS:SOURCEIP": "203.0.113.9"}, True),
]


@pytest.mark.parametrize(("condition", "ctx", "expected"), CASES)
def test_condition(condition, ctx, expected):
    assert allowed_when(condition, ctx) is expected


def test_negated_condition_in_deny_on_missing_key_denies():
    # Deny anything not from the corporate range: a request with no aws:SourceIp is denied.
    fence = deny(Condition={"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}})
    assert not decide(allow(), fence).allowed
    assert not decide(allow(), fence, ctx={"aws:SourceIp": "192.0.2.1"}).allowed
    assert decide(allow(), fence, ctx={"aws:SourceIp": "203.0.113.1"}).allowed


# --- "Multivalued context key examples" (IAM User Guide), policies and tables verbatim -------

DENY_KEY1 = """{
  "Version":"2012-10-17",
  "Statement": [
    {
      "Sid": "DenyRestrictedTags",
      "Effect": "Deny",
      "Action": [
        "iam:Tag*",
        "iam:UnTag*"
      ],
      "Resource": [
        "*"
      ],
      "Condition": {
        "ForAllValues:StringNotLike": {
          "aws:TagKeys": "key1*"
        }
      }
    }
  ]
}"""

DENY_KEY1_KEY2 = DENY_KEY1.replace(
    '"key1*"', '[\n            "key1*",\n            "key2*"\n          ]'
)

DENY_SNAPSHOT = """{
  "Version":"2012-10-17",
  "Statement": [
    {
      "Effect": "Deny",
      "Action": [
        "ec2:CreateSnapshot",
        "ec2:CreateSnapshots"
      ],
      "Resource": "arn:aws:ec2:us-west-2::snapshot/*",
      "Condition": {
        "ForAnyValue:StringEquals": {
          "aws:TagKeys": "webserver"
        }
      }
    }
  ]
}"""

ALLOW_ALL = (
    '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}'
)


@pytest.mark.parametrize(
    ("policy", "action", "resource", "tag_keys", "denied"),
    [
        (DENY_KEY1, "iam:TagUser", "*", ["key1:legal"], False),
        (DENY_KEY1, "iam:TagUser", "*", ["key1:hr", "key1:personnel"], False),
        (DENY_KEY1, "iam:TagUser", "*", ["key2:audit"], True),
        (DENY_KEY1, "iam:TagUser", "*", None, True),
        (DENY_KEY1_KEY2, "iam:UnTagRole", "*", ["key1:legal"], False),
        (DENY_KEY1_KEY2, "iam:UnTagRole", "*", ["key1:hr", "key1:personnel"], False),
        (DENY_KEY1_KEY2, "iam:UnTagRole", "*", ["key1:hr", "key2:audit"], False),
        (DENY_KEY1_KEY2, "iam:UnTagRole", "*", ["key3:legal"], True),
        (DENY_KEY1_KEY2, "iam:UnTagRole", "*", None, True),
        (
            DENY_SNAPSHOT,
            "ec2:CreateSnapshot",
            "arn:aws:ec2:us-west-2::snapshot/snap-1",
            ["webserver"],
            True,
        ),
        (
            DENY_SNAPSHOT,
            "ec2:CreateSnapshots",
            "arn:aws:ec2:us-west-2::snapshot/snap-1",
            ["environment", "webserver", "test"],
            True,
        ),
        (
            DENY_SNAPSHOT,
            "ec2:CreateSnapshot",
            "arn:aws:ec2:us-west-2::snapshot/snap-1",
            ["environment", "test"],
            False,
        ),
        (
            DENY_SNAPSHOT,
            "ec2:CreateSnapshot",
            "arn:aws:ec2:us-west-2::snapshot/snap-1",
            None,
            False,
        ),
    ],
)
def test_documented_multivalued_tables(policy, action, resource, tag_keys, denied):
    ctx = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    decision = evaluate([ALLOW_ALL, policy], action, resource, ctx)
    assert decision.allowed is not denied
    assert (decision.effect == "Deny") is denied


# --- "IAM JSON policy elements: Condition operators", example tables verbatim -----------------

JOB_CATEGORY = """{
 "Version":"2012-10-17",
 "Statement": {
 "Effect": "Allow",
 "Action": "iam:*AccessKey*",
 "Resource": "arn:aws:iam::111122223333:user/*",
 "Condition": {
 "StringEquals": {
 "aws:PrincipalTag/job-category": "iamuser-admin"
 }
 }
 }
}"""

HOME_DIRECTORY = """{
 "Version":"2012-10-17",
 "Statement": [
 {
 "Effect": "Allow",
 "Action": [
 "s3:ListAllMyBuckets",
 "s3:GetBucketLocation"
 ],
 "Resource": "arn:aws:s3:::*"
 },
 {
 "Effect": "Allow",
 "Action": "s3:ListBucket",
 "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
 "Condition": {
 "StringLike": {
 "s3:prefix": [
 "",
 "home/",
 "home/${aws:username}/"
 ]
 }
 }
 },
 {
 "Effect": "Allow",
 "Action": "s3:*",
 "Resource": [
 "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}",
 "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/*"
 ]
 }
 ]
}"""

CREATE_TAGS = """{
 "Version":"2012-10-17",
 "Statement": {
 "Effect": "Allow",
 "Action": "ec2:CreateTags",
 "Resource": "arn:aws:ec2:*:*:instance/*",
 "Condition": {
 "StringEqualsIgnoreCase": {
 "aws:RequestTag/environment": [
 "preprod",
 "storage"
 ]
 },
 "ForAnyValue:StringEquals": {
 "aws:TagKeys": "environment"
 }
 }
 }
}"""

ORG_PATHS = """{
 "Version":"2012-10-17",
 "Statement": [
 {
 "Sid": "DenyS3AccessOutsideMyBoundary",
 "Effect": "Deny",
 "Action": [
 "s3:*"
 ],
 "Resource": "*",
 "Condition": {
 "ForAllValues:StringNotLike": {
 "aws:ResourceOrgPaths": [
 "o-acorg/r-acroot/ou-acroot-mediaou/",
 "o-acorg/r-acroot/ou-acroot-sportsou/*"
 ]
 }
 }
 }
 ]
}"""

LIST_UP_TO_10 = """{
 "Version":"2012-10-17",
 "Statement": {
 "Effect": "Allow",
 "Action": "s3:ListBucket",
 "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
 "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}}
 }
}"""

FRESH_CREDENTIALS = """{
 "Version":"2012-10-17",
 "Statement": {
 "Effect": "Allow",
 "Action": "iam:*AccessKey*",
 "Resource": "arn:aws:iam::111122223333:user/*",
 "Condition": {
 "DateGreaterThan": {
 "aws:TokenIssueTime": "2020-01-01T00:00:01Z"
 }
 }
 }
}"""

BOOLEAN_EXAMPLE = """{
 "Version":"2012-10-17",
 "Statement": [
 {
 "Sid": "BooleanExample",
 "Action": "s3:ReplicateObject",
 "Effect": "Deny",
 "Resource": [
 "arn:aws:s3:::amzn-s3-demo-bucket",
 "arn:aws:s3:::amzn-s3-demo-bucket/*"
 ],
 "Condition": {
 "Bool": {
 "aws:SecureTransport": "false"
 }
 }
 }
 ]
}"""

# The page's placeholder condition key "key" is spelled "aws:key": IAM requires a prefix.
BINARY = """{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject",
 "Resource": "*", "Condition" : {
  "BinaryEquals": {
    "aws:key" : "QmluYXJ5VmFsdWVJbkJhc2U2NA=="
  }
}}}"""

SOURCE_IP = """{
 "Version":"2012-10-17",
 "Statement": {
 "Effect": "Allow",
 "Action": "iam:*AccessKey*",
 "Resource": "arn:aws:iam::111122223333:user/*",
 "Condition": {
 "IpAddress": {
 "aws:SourceIp": "203.0.113.0/24"
 }
 }
 }
}"""

SOURCE_ARN = """{
 "Version":"2012-10-17",
 "Statement": {
 "Effect": "Allow",
 "Action": "SQS:SendMessage",
 "Resource": "arn:aws:sqs:us-west-2:123456789012:QUEUE-ID",
 "Condition": {
 "ArnEquals": {
 "aws:SourceArn": "arn:aws:sns:us-west-2:123456789012:TOPIC-ID"
 }
 }
 }
}"""

LOG_SOURCES = """{
 "Version":"2012-10-17",
 "Statement": [
 {
 "Effect": "Allow",
 "Action": "logs:PutDeliverySource",
 "Resource": "arn:aws:logs:us-east-1:123456789012:delivery-source:*",
 "Condition": {
 "ForAllValues:ArnLike": {
 "logs:LogGeneratingResourceArns": [
 "arn:aws::cloudfront:123456789012:distribution/*",
 "arn:aws::cloudfront:123456789012:distribution/support*"
 ]
 }
 }
 }
 ]
}"""

RUN_INSTANCE = """{
 "Version":"2012-10-17",
 "Statement": [
 {
 "Sid": "RunInstance",
 "Effect": "Allow",
 "Action": "ec2:RunInstances",
 "Resource": "*",
 "Condition": {
 "StringLikeIfExists": {
 "ec2:InstanceType": [
 "t1.*",
 "t2.*",
 "m3.*"
 ]
 }
 }
 }
 ]
}"""

TEMPORARY_ONLY = """{
 "Version":"2012-10-17",
 "Statement":{
 "Action":"ec2:*",
 "Effect":"Allow",
 "Resource":"*",
 "Condition":{"Null":{"aws:TokenIssueTime":"false"}}
 }
}"""

USER = "arn:aws:iam::111122223333:user/alice"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"
DIST = "arn:aws::cloudfront:123456789012:distribution/"

# (policy, action, resource, request context, "Match" in the documented table)
DOCUMENTED_TABLES = [
    (
        JOB_CATEGORY,
        "iam:CreateAccessKey",
        USER,
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        True,
    ),
    (
        JOB_CATEGORY,
        "iam:CreateAccessKey",
        USER,
        {"aws:PrincipalTag/job-category": "dev-ops"},
        False,
    ),
    (JOB_CATEGORY, "iam:CreateAccessKey", USER, {}, False),
    (
        HOME_DIRECTORY,
        "s3:ListBucket",
        BUCKET,
        {"aws:username": "martha_rivera", "s3:prefix": "home/martha_rivera/"},
        True,
    ),
    (
        HOME_DIRECTORY,
        "s3:ListBucket",
        BUCKET,
        {"aws:username": "nikki_wolf", "s3:prefix": "home/martha_rivera/"},
        False,
    ),
    (HOME_DIRECTORY, "s3:ListBucket", BUCKET, {"s3:prefix": "home/martha_rivera/"}, False),
    (HOME_DIRECTORY, "s3:ListBucket", BUCKET, {"s3:prefix": "home/"}, True),
    (
        HOME_DIRECTORY,
        "s3:PutObject",
        BUCKET + "/home/nikki_wolf/notes.txt",
        {"aws:username": "nikki_wolf"},
        True,
    ),
    (
        HOME_DIRECTORY,
        "s3:PutObject",
        BUCKET + "/home/nikki_wolf/notes.txt",
        {"aws:username": "martha_rivera"},
        False,
    ),
    (
        CREATE_TAGS,
        "ec2:CreateTags",
        "arn:aws:ec2:us-east-1:1:instance/i-1",
        {"aws:TagKeys": ["environment"], "aws:RequestTag/environment": "preprod"},
        True,
    ),
    (
        CREATE_TAGS,
        "ec2:CreateTags",
        "arn:aws:ec2:us-east-1:1:instance/i-1",
        {"aws:TagKeys": ["environment", "costcenter"], "aws:RequestTag/environment": "PreProd"},
        True,
    ),
    (
        CREATE_TAGS,
        "ec2:CreateTags",
        "arn:aws:ec2:us-east-1:1:instance/i-1",
        {"aws:TagKeys": ["Environment"], "aws:RequestTag/Environment": "preprod"},
        False,
    ),
    (
        CREATE_TAGS,
        "ec2:CreateTags",
        "arn:aws:ec2:us-east-1:1:instance/i-1",
        {"aws:TagKeys": ["costcenter"], "aws:RequestTag/environment": "preprod"},
        False,
    ),
    (
        CREATE_TAGS,
        "ec2:CreateTags",
        "arn:aws:ec2:us-east-1:1:instance/i-1",
        {"aws:RequestTag/environment": "storage"},
        False,
    ),
    (
        CREATE_TAGS,
        "ec2:CreateTags",
        "arn:aws:ec2:us-east-1:1:instance/i-1",
        {"aws:TagKeys": ["environment"]},
        False,
    ),
    (CREATE_TAGS, "ec2:CreateTags", "arn:aws:ec2:us-east-1:1:instance/i-1", {}, False),
    (
        ORG_PATHS,
        "s3:GetObject",
        BUCKET,
        {"aws:ResourceOrgPaths": ["o-acorg/r-acroot/ou-acroot-sportsou/costcenter/"]},
        False,
    ),
    (
        ORG_PATHS,
        "s3:GetObject",
        BUCKET,
        {"aws:ResourceOrgPaths": ["o-acorg/r-acroot/ou-acroot-mediaou/costcenter/"]},
        True,
    ),
    (LIST_UP_TO_10, "s3:ListBucket", BUCKET, {"s3:max-keys": "10"}, True),
    (LIST_UP_TO_10, "s3:ListBucket", BUCKET, {"s3:max-keys": "11"}, False),
    (
        FRESH_CREDENTIALS,
        "iam:UpdateAccessKey",
        USER,
        {"aws:TokenIssueTime": "2026-11-22T07:00:00Z"},
        True,
    ),
    (FRESH_CREDENTIALS, "iam:UpdateAccessKey", USER, {}, False),
    (BOOLEAN_EXAMPLE, "s3:ReplicateObject", BUCKET + "/k", {"aws:SecureTransport": "false"}, True),
    (BOOLEAN_EXAMPLE, "s3:ReplicateObject", BUCKET + "/k", {"aws:SecureTransport": "true"}, False),
    (BOOLEAN_EXAMPLE, "s3:ReplicateObject", BUCKET + "/k", {}, False),
    (BINARY, "s3:GetObject", BUCKET, {"aws:key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}, True),
    (BINARY, "s3:GetObject", BUCKET, {"aws:key": "ASIAIOSFODNN7EXAMPLE"}, False),
    (BINARY, "s3:GetObject", BUCKET, {}, False),
    (SOURCE_IP, "iam:ListAccessKeys", USER, {"aws:SourceIp": "203.0.113.1"}, True),
    (SOURCE_IP, "iam:ListAccessKeys", USER, {"aws:SourceIp": "198.51.100.1"}, False),
    (
        SOURCE_ARN,
        "sqs:SendMessage",
        "arn:aws:sqs:us-west-2:123456789012:QUEUE-ID",
        {"aws:SourceArn": "arn:aws:sns:us-west-2:123456789012:TOPIC-ID"},
        True,
    ),
    (
        SOURCE_ARN,
        "sqs:SendMessage",
        "arn:aws:sqs:us-west-2:123456789012:QUEUE-ID",
        {"aws:SourceArn": "arn:aws:sns:us-west-2:777788889999:TOPIC-ID"},
        False,
    ),
    (SOURCE_ARN, "sqs:SendMessage", "arn:aws:sqs:us-west-2:123456789012:QUEUE-ID", {}, False),
    (
        LOG_SOURCES,
        "logs:PutDeliverySource",
        "arn:aws:logs:us-east-1:123456789012:delivery-source:a",
        {"logs:LogGeneratingResourceArns": [DIST + "costcenter"]},
        True,
    ),
    (
        LOG_SOURCES,
        "logs:PutDeliverySource",
        "arn:aws:logs:us-east-1:123456789012:delivery-source:a",
        {"logs:LogGeneratingResourceArns": [DIST + "costcenter", DIST + "support2025"]},
        True,
    ),
    (
        LOG_SOURCES,
        "logs:PutDeliverySource",
        "arn:aws:logs:us-east-1:123456789012:delivery-source:a",
        {
            "logs:LogGeneratingResourceArns": [
                DIST + "costcenter",
                "arn:aws::cloudfront:123456789012:distribution/admin",
            ]
        },
        True,
    ),
    (
        LOG_SOURCES,
        "logs:PutDeliverySource",
        "arn:aws:logs:us-east-1:123456789012:delivery-source:a",
        {
            "logs:LogGeneratingResourceArns": [
                "arn:aws::cloudfront:777788889999:distribution/costcenter"
            ]
        },
        False,
    ),
    (
        LOG_SOURCES,
        "logs:PutDeliverySource",
        "arn:aws:logs:us-east-1:123456789012:delivery-source:a",
        {},
        True,
    ),
    (RUN_INSTANCE, "ec2:RunInstances", "*", {"ec2:InstanceType": "t1.micro"}, True),
    (RUN_INSTANCE, "ec2:RunInstances", "*", {"ec2:InstanceType": "m2.micro"}, False),
    (RUN_INSTANCE, "ec2:RunInstances", "*", {}, True),
    (TEMPORARY_ONLY, "ec2:RunInstances", "*", {"aws:TokenIssueTime": "2026-11-22T07:00:00Z"}, True),
    (TEMPORARY_ONLY, "ec2:RunInstances", "*", {}, False),
]


@pytest.mark.parametrize(("policy", "action", "resource", "ctx", "match"), DOCUMENTED_TABLES)
def test_documented_operator_tables(policy, action, resource, ctx, match):
    decision = evaluate([policy], action, resource, ctx)
    statement_effect = "Deny" if '"Deny"' in policy else "Allow"
    assert (decision.effect == statement_effect) is match


def test_documented_forallvalues_on_a_missing_key():
    # The ORG_PATHS table on the same page lists "No match" for a request without
    # aws:ResourceOrgPaths, which contradicts the page's own rule ("The ForAllValues qualifier
    # returns true if there are no context keys in the request") and the DenyRestrictedTags
    # table on the multivalued-keys page.  kdiag follows the rule.
    assert (
        evaluate([ORG_PATHS], "s3:GetObject", BUCKET, {}).effect == "Deny"
    )  # The page's table says "No match" for this row, but "distribution/*" in the same policy
    # matches ".../admin" exactly as it matches ".../costcenter" (a "Match" in the first row):
    # the row contradicts the policy it documents.  Every value matches a pattern, so: Match.
