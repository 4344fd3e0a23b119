"""explain() and simulate(): which statements decided, which a condition stopped, which
condition keys the request lacked; and --context-entries as the aws CLI writes them."""

from __future__ import annotations

import json

import pytest

from kdiag.errors import ConfigError
from kdiag.policy import StatementMatch, explain, parse_context_entry, simulate
from tests.policy.helpers import ACTION, ARN, allow, deny, doc

OWNER = {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}}


def test_every_applying_deny_is_named_in_order_and_the_first_decides():
    policies = [
        doc(allow(Sid="Grant"), deny(Sid="First")),
        doc(deny(), deny(Sid="Tagged", Condition=OWNER)),
    ]
    ctx = {"aws:username": "alice", "aws:ResourceTag/Owner": "alice"}
    answer = explain(policies, ACTION, ARN, ctx)
    assert answer.verdict == "explicitDeny"
    assert answer.decision.reason == 'policy[0] statement "First" explicit deny'
    assert answer.matched == (
        StatementMatch(0, 1, "First", "Deny"),
        StatementMatch(1, 0, None, "Deny"),
        StatementMatch(1, 1, "Tagged", "Deny"),
    )
    assert answer.stopped == ()
    assert answer.missing_context_keys == ()


def test_stopped_statements_name_their_failing_condition_and_missing_keys():
    policies = [
        doc(
            allow(Sid="Owned", Condition=OWNER),
            deny(
                Sid="Guard", Condition={"StringNotEqualsIfExists": {"aws:ResourceTag/env": "dev"}}
            ),
            allow(Action="ec2:Describe*"),
        )
    ]
    answer = explain(policies, ACTION, ARN, {"aws:username": "alice"})
    assert answer.verdict == "explicitDeny"  # the env tag is missing: IfExists holds
    assert answer.matched == (StatementMatch(0, 1, "Guard", "Deny"),)
    assert answer.stopped == (
        StatementMatch(0, 0, "Owned", "Allow", "StringEquals aws:ResourceTag/Owner"),
    )
    assert answer.missing_context_keys == ("aws:ResourceTag/Owner", "aws:ResourceTag/env")
    assert explain(policies, "s3:GetObject", ARN, {}).verdict == "implicitDeny"


def test_simulate_shapes_iams_evaluation_results():
    policies = {"grant": doc(allow(Sid="Grant")), "owned": doc(allow(Condition=OWNER))}
    results = simulate(policies, [ACTION, "ec2:RebootInstances"], [ARN, "*"], {})
    assert [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results] == [
        (ACTION, ARN, "allowed"),
        (ACTION, "*", "implicitDeny"),
        ("ec2:RebootInstances", ARN, "implicitDeny"),
        ("ec2:RebootInstances", "*", "implicitDeny"),
    ]
    assert results[0]["MatchedStatements"] == [
        {
            "SourcePolicyId": "grant",
            "SourcePolicyType": "IAM Policy",
            "StatementIndex": 0,
            "Sid": "Grant",
            "Effect": "Allow",
        }
    ]
    assert results[0]["StoppedStatements"][0]["SourcePolicyId"] == "owned"
    assert results[0]["MissingContextValues"] == ["aws:ResourceTag/Owner"]
    json.dumps(results)  # plain JSON data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip",
            {"aws:SourceIp": "10.0.0.1"},
        ),
        ("key=aws:TagKeys,values=a,b,c,type=stringList", {"aws:TagKeys": ["a", "b", "c"]}),
        (
            "type=date,key=aws:CurrentTime,values=2026-01-01T00:00:00Z",
            {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
        ),
        ("key=aws:TagKeys,values=a,b", {"aws:TagKeys": ["a", "b"]}),
        (
            "key=aws:MultiFactorAuthPresent,values=True,type=boolean",
            {"aws:MultiFactorAuthPresent": "True"},
        ),
        (
            '[{"ContextKeyName": "s3:max-keys", "ContextKeyValues": ["5"],'
            ' "ContextKeyType": "numeric"}, {"key": "aws:username", "values": "bob"}]',
            {"s3:max-keys": "5", "aws:username": "bob"},
        ),
    ],
)
def test_context_entries(text, expected):
    assert parse_context_entry(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "key=s3:max-keys,values=five,type=numeric",
        "key=aws:CurrentTime,values=yesterday,type=date",
        "key=aws:MultiFactorAuthPresent,values=maybe,type=boolean",
        "key=aws:BinaryKey,values=!!,type=binary",
        "key=aws:SourceIp,values=1.2.3.4,type=ipList,type=ip",
        '["not an object"]',
    ],
)
def test_bad_context_entries(text):
    with pytest.raises(ConfigError):
        parse_context_entry(text)
