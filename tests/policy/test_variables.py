"""Policy variables, defaults and escapes (IAM User Guide, "IAM policy elements: Variables and
tags": "Using variables in policies", "Specifying default values", "Policy variables with no
value", and the special characters ``${*}``, ``${?}``, ``${$}``)."""

from __future__ import annotations

import pytest

from kdiag.errors import PolicyError
from kdiag.policy import evaluate, request_context
from tests.policy.helpers import ACCOUNT, ACTION, ARN, INSTANCE, REGION, allow, decide, deny, doc

HOME = "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/*"


def s3(user_object: str) -> str:
    return f"arn:aws:s3:::amzn-s3-demo-bucket/home/{user_object}"


def test_username_in_resource():
    st = allow(Action="s3:GetObject", Resource=HOME)
    assert decide(
        st, action="s3:GetObject", resource=s3("alice/a.txt"), ctx={"aws:username": "alice"}
    ).allowed
    assert not decide(
        st, action="s3:GetObject", resource=s3("bob/a.txt"), ctx={"aws:username": "alice"}
    ).allowed


def test_missing_variable_in_resource_matches_nothing():
    st = allow(Action="s3:GetObject", Resource=HOME)
    assert not decide(st, action="s3:GetObject", resource=s3("/a.txt")).allowed
    assert not decide(
        st,
        action="s3:GetObject",
        resource="arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/x",
    ).allowed


def test_missing_variable_in_notresource_excludes_nothing():
    fence = {"Effect": "Deny", "Action": "s3:*", "NotResource": HOME}
    grant = allow(Action="s3:*", Resource="*")
    assert not decide(grant, fence, action="s3:GetObject", resource=s3("alice/x")).allowed
    assert decide(
        grant, fence, action="s3:GetObject", resource=s3("alice/x"), ctx={"aws:username": "alice"}
    ).allowed


def test_variable_names_are_case_insensitive():
    st = allow(Resource="arn:aws:ec2:*:111122223333:instance/${EC2:instanceid}")
    assert decide(st, ctx={"ec2:InstanceID": INSTANCE}).allowed


def test_variables_only_in_the_resource_part_of_an_arn():
    # "You can't use a variable to replace parts of the ARN before the fifth colon".
    with pytest.raises(PolicyError) as info:
        decide(allow(Resource="arn:aws:ec2:${aws:RequestedRegion}:111122223333:instance/*"))
    assert str(info.value) == (
        "Statement[0].Resource: policy variable ${aws:RequestedRegion} is before the fifth colon"
        " of 'arn:aws:ec2:${aws:RequestedRegion}:111122223333:instance/*': variables are allowed"
        " only in the resource part of an ARN"
    )
    # In 2008-10-17 the same text is literal, so it is accepted.
    assert not decide(
        allow(Resource="arn:aws:ec2:${aws:RequestedRegion}:111122223333:instance/*"),
        version="2008-10-17",
    ).allowed


def test_documented_resource_with_several_tag_variables():
    # "Where you can use policy variables", AllowAccessBasedOnArnMatching (verbatim).
    policy = """{
      "Version":"2012-10-17",
      "Statement": [
        {
          "Sid": "AllowAccessBasedOnArnMatching",
          "Effect": "Allow",
          "Action": [
            "sns:CreateTopic",
            "sns:DeleteTopic"],
          "Resource": ["arn:aws:sns:*:*:${aws:PrincipalTag/access-project}-${aws:PrincipalTag/access-application}-${aws:PrincipalTag/access-environment}-*"
          ]
        }
      ]
    }"""  # noqa: E501  (the documented policy, verbatim)
    tags = {
        "aws:PrincipalTag/access-project": "peg",
        "aws:PrincipalTag/access-application": "engineering",
        "aws:PrincipalTag/access-environment": "prod",
    }
    topic = "arn:aws:sns:us-east-1:111122223333:peg-engineering-prod-alerts"
    assert evaluate([policy], "sns:CreateTopic", topic, tags).allowed
    assert not evaluate([policy], "sns:CreateTopic", topic.replace("prod", "dev"), tags).allowed
    missing = {k: v for k, v in tags.items() if not k.endswith("environment")}
    assert not evaluate([policy], "sns:DeleteTopic", topic, missing).allowed


def test_documented_deny_when_principal_tag_missing():
    # "Policy variables with no value": access is explicitly denied when
    # aws:PrincipalTag/Team is not set (the inverted operator matches the null value).
    fence = """{
      "Version":"2012-10-17",
      "Statement": [
       {
        "Effect": "Deny",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
        "Condition": {
          "StringNotEquals": {
            "s3:ExistingObjectTag/Team": "${aws:PrincipalTag/Team}"
           }
          }
        }
      ]
    }"""
    grant = doc(allow(Action="s3:GetObject", Resource="*"))
    obj = "arn:aws:s3:::amzn-s3-demo-bucket/report.pdf"
    same = {"s3:ExistingObjectTag/Team": "blue", "aws:PrincipalTag/Team": "blue"}
    assert evaluate([grant, fence], "s3:GetObject", obj, same).allowed
    other = {**same, "aws:PrincipalTag/Team": "red"}
    assert not evaluate([grant, fence], "s3:GetObject", obj, other).allowed
    unset = {"s3:ExistingObjectTag/Team": "blue"}
    decision = evaluate([grant, fence], "s3:GetObject", obj, unset)
    assert not decision.allowed
    assert decision.effect == "Deny"


def test_documented_default_value_bucket():
    # "Specifying default values" (verbatim Resource).
    st = allow(
        Action="s3:ListBucket",
        Resource="arn:aws:s3:::amzn-s3-demo-bucket-${aws:PrincipalTag/team, 'company-wide'}",
    )
    yellow = "arn:aws:s3:::amzn-s3-demo-bucket-yellow"
    wide = "arn:aws:s3:::amzn-s3-demo-bucket-company-wide"
    team = {"aws:PrincipalTag/team": "yellow"}
    assert decide(st, action="s3:ListBucket", resource=yellow, ctx=team).allowed
    assert not decide(st, action="s3:ListBucket", resource=wide, ctx=team).allowed
    assert decide(st, action="s3:ListBucket", resource=wide).allowed
    assert not decide(st, action="s3:ListBucket", resource=yellow).allowed


def test_userid_sourceip_and_resource_tag_variables():
    ctx = request_context(
        account_id=ACCOUNT,
        user_name="alice",
        user_id="AIDAEXAMPLE",
        source_ip="192.0.2.7",
        region=REGION,
        instance_id=INSTANCE,
        tags={"Owner": "AIDAEXAMPLE", "Ip": "192.0.2.7"},
    )
    by_id = allow(Condition={"StringEquals": {"ec2:ResourceTag/Owner": "${aws:userid}"}})
    by_ip = allow(Condition={"StringEquals": {"aws:ResourceTag/Ip": "${aws:SourceIp}"}})
    by_tag = allow(Resource="arn:aws:ec2:*:*:instance/${ec2:InstanceID}")
    for st in (by_id, by_ip, by_tag):
        assert evaluate([doc(st)], ACTION, ARN, ctx).allowed
    ctx["aws:userid"] = "AIDAOTHER"
    assert not evaluate([doc(by_id)], ACTION, ARN, ctx).allowed


def test_tag_variable_in_condition_value():
    st = allow(Condition={"StringEquals": {"aws:PrincipalTag/team": "${ec2:ResourceTag/team}"}})
    ctx = {"aws:PrincipalTag/team": "red", "ec2:ResourceTag/team": "red"}
    assert decide(st, ctx=ctx).allowed
    assert not decide(st, ctx={**ctx, "ec2:ResourceTag/team": "blue"}).allowed


def test_missing_variable_in_condition_value_matches_nothing():
    like = allow(Condition={"StringLike": {"aws:ResourceTag/dept": "${aws:PrincipalTag/dept}"}})
    assert not decide(like, ctx={"aws:ResourceTag/dept": ""}).allowed
    assert not decide(like, ctx={"aws:ResourceTag/dept": "${aws:PrincipalTag/dept}"}).allowed
    # A negated operator whose only value cannot be resolved: nothing matches, so it holds.
    unlike = allow(
        Condition={"StringNotEquals": {"aws:ResourceTag/dept": "${aws:PrincipalTag/dept}"}}
    )
    assert decide(unlike, ctx={"aws:ResourceTag/dept": "sales"}).allowed


def test_multivalued_key_is_not_a_variable():
    st = allow(Condition={"StringEquals": {"aws:ResourceTag/k": "${aws:TagKeys}"}})
    assert not decide(st, ctx={"aws:TagKeys": ["a"], "aws:ResourceTag/k": "a"}).allowed


def test_default_value():
    st = allow(
        Condition={
            "StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team, 'company-wide'}"}
        }
    )
    assert decide(st, ctx={"aws:ResourceTag/team": "company-wide"}).allowed
    assert not decide(st, ctx={"aws:ResourceTag/team": "red"}).allowed
    assert decide(st, ctx={"aws:ResourceTag/team": "red", "aws:PrincipalTag/team": "red"}).allowed
    assert not decide(
        st, ctx={"aws:ResourceTag/team": "company-wide", "aws:PrincipalTag/team": "red"}
    ).allowed


def test_default_value_in_resource_and_quote_escape():
    st = allow(Resource="arn:aws:ec2:*:*:instance/${aws:PrincipalTag/box,'i-1234567890abcdef0'}")
    assert decide(st).allowed
    quoted = allow(Condition={"StringEquals": {"aws:ResourceTag/n": "${aws:x, 'it''s'}"}})
    assert decide(quoted, ctx={"aws:ResourceTag/n": "it's"}).allowed
    # One round of substitution only: a default that looks like a variable stays literal.
    nested = allow(Condition={"StringEquals": {"aws:ResourceTag/n": "${aws:x, '${aws:y}'}"}})
    assert decide(nested, ctx={"aws:ResourceTag/n": "${aws:y}", "aws:y": "z"}).allowed


def test_escapes_are_literal_characters():
    star = allow(Condition={"StringLike": {"aws:ResourceTag/n": "a${*}"}})
    assert decide(star, ctx={"aws:ResourceTag/n": "a*"}).allowed
    assert not decide(star, ctx={"aws:ResourceTag/n": "abc"}).allowed
    qmark = allow(Condition={"StringLike": {"aws:ResourceTag/n": "a${?}"}})
    assert decide(qmark, ctx={"aws:ResourceTag/n": "a?"}).allowed
    assert not decide(qmark, ctx={"aws:ResourceTag/n": "ab"}).allowed
    dollar = allow(Condition={"StringEquals": {"aws:ResourceTag/n": "${$}{aws:username}"}})
    assert decide(
        dollar, ctx={"aws:ResourceTag/n": "${aws:username}", "aws:username": "alice"}
    ).allowed
    arn = allow(Resource="arn:aws:s3:::bucket/${*}/${?}")
    assert decide(arn, resource="arn:aws:s3:::bucket/*/?").allowed
    assert not decide(arn, resource="arn:aws:s3:::bucket/x/y").allowed


def test_substituted_text_is_not_a_wildcard():
    st = allow(Condition={"StringLike": {"aws:ResourceTag/Owner": "${aws:username}"}})
    assert not decide(st, ctx={"aws:username": "*", "aws:ResourceTag/Owner": "alice"}).allowed
    assert decide(st, ctx={"aws:username": "*", "aws:ResourceTag/Owner": "*"}).allowed
    res = allow(Resource="arn:aws:ec2:*:*:instance/${aws:username}")
    assert not decide(res, ctx={"aws:username": "*"}).allowed
    # ... but wildcards written around a variable still are.
    pre = allow(Condition={"StringLike": {"aws:ResourceTag/Owner": "${aws:username}-*"}})
    assert decide(pre, ctx={"aws:username": "al", "aws:ResourceTag/Owner": "al-x"}).allowed


def test_arn_condition_with_variable():
    st = allow(Condition={"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:${aws:PrincipalAccount}:*"}})
    ctx = {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:t", "aws:PrincipalAccount": ACCOUNT}
    assert decide(st, ctx=ctx).allowed
    assert not decide(st, ctx={**ctx, "aws:PrincipalAccount": "444455556666"}).allowed


def test_no_variables_in_version_2008():
    literal = "arn:aws:s3:::b/${aws:username}"
    st = allow(Action="s3:GetObject", Resource=literal)
    ctx = {"aws:username": "alice"}
    assert not decide(
        st, action="s3:GetObject", resource="arn:aws:s3:::b/alice", ctx=ctx, version="2008-10-17"
    ).allowed
    assert decide(
        st, action="s3:GetObject", resource=literal, ctx=ctx, version="2008-10-17"
    ).allowed
    cond = allow(Condition={"StringEquals": {"aws:ResourceTag/o": "${aws:username}"}})
    assert decide(
        cond, ctx={**ctx, "aws:ResourceTag/o": "${aws:username}"}, version="2008-10-17"
    ).allowed
    assert not decide(cond, ctx={**ctx, "aws:ResourceTag/o": "alice"}, version="2008-10-17").allowed


def test_variables_not_substituted_outside_string_and_arn_operators():
    # "You can't use a policy variable with other operators, such as Numeric, Date, Boolean,
    # Binary, IP Address, or Null operators": there the text must be a value of that type.
    for operator, key in [
        ("NumericEquals", "s3:max-keys"),
        ("DateLessThan", "aws:CurrentTime"),
        ("BinaryEquals", "aws:BinaryKey"),
        ("IpAddress", "aws:SourceIp"),
        ("Null", "aws:SourceIp"),
    ]:
        with pytest.raises(PolicyError):
            decide(allow(Condition={operator: {key: "${aws:x}"}}))


def test_bool_takes_variables():
    # "Boolean condition operators ... Policy variables – Supported" (condition operators page).
    st = allow(Condition={"Bool": {"aws:SecureTransport": "${aws:PrincipalTag/tls}"}})
    assert decide(st, ctx={"aws:SecureTransport": "true", "aws:PrincipalTag/tls": "true"}).allowed
    assert not decide(
        st, ctx={"aws:SecureTransport": "false", "aws:PrincipalTag/tls": "true"}
    ).allowed
    assert not decide(st, ctx={"aws:SecureTransport": "true"}).allowed


def test_deny_with_variable_in_resource():
    fence = deny(Resource="arn:aws:ec2:*:*:instance/${aws:PrincipalTag/protected}")
    ctx = {"aws:PrincipalTag/protected": INSTANCE}
    assert not decide(allow(), fence, ctx=ctx).allowed
    assert decide(allow(), fence).allowed
