"""A malformed policy is rejected with a PolicyError that points at statement and field."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kdiag import ConfigError, PolicyError
from kdiag.policy import validate
from tests.policy.helpers import allow


def error_for(document) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        validate(document)
    return info.value


def policy(*statements, **top) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements), **top}


def test_policy_error_is_a_config_error_with_iam_code():
    err = error_for("{")
    assert isinstance(err, ConfigError)
    assert err.code == "MalformedPolicyDocument"
    assert err.exit_code == 2


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            "{",
            "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        (b"\xff", "not valid JSON: the document is not UTF-8"),
        ("[]", "the policy document must be a JSON object"),
        (
            {"Statement": [allow()], "Version": "2012-10-18"},
            "Version: Version must be '2012-10-17' or '2008-10-17', not '2012-10-18'",
        ),
        ({"Version": "2012-10-17"}, "Statement: the policy has no Statement"),
        ({"Version": "2012-10-17", "Statement": []}, "Statement: Statement must not be empty"),
        (
            {"Version": "2012-10-17", "Statement": "x"},
            "Statement: Statement must be an object or a list of objects",
        ),
        ({"Statement": [allow()], "Extra": 1}, 'Extra: unknown top-level field "Extra"'),
        ({"Statement": [allow()], "Id": 5}, "Id: Id must be a string"),
        ('{"Statement": [], "Statement": []}', 'duplicate key "Statement" in a JSON object'),
        (policy(allow(), "x"), "Statement[1]: a statement must be a JSON object"),
        (
            policy(allow(Effect="allow")),
            'Statement[0].Effect: Effect must be "Allow" or "Deny", not \'allow\'',
        ),
        (
            policy({"Action": "ec2:*", "Resource": "*"}),
            'Statement[0].Effect: the statement has no Effect ("Allow" or "Deny")',
        ),
        (
            policy(allow(NotAction="s3:*")),
            "Statement[0].Action: a statement cannot have both Action and NotAction",
        ),
        (
            policy({"Effect": "Allow", "Resource": "*"}),
            "Statement[0].Action: the statement has neither Action nor NotAction",
        ),
        (
            policy({"Effect": "Allow", "Action": "*"}),
            "Statement[0].Resource: the statement has neither Resource nor NotResource",
        ),
        (
            policy(allow(NotResource="*")),
            "Statement[0].Resource: a statement cannot have both Resource and NotResource",
        ),
        (
            policy(allow(Action=[])),
            "Statement[0].Action: must be a string or a non-empty list of strings",
        ),
        (policy(allow(Action=["ec2:X", 3])), "Statement[0].Action[1]: must be a non-empty string"),
        (
            policy(allow(Action="SendDiagnosticInterrupt")),
            "Statement[0].Action: action 'SendDiagnosticInterrupt' must be \"*\" or "
            '"service:action" (e.g. "ec2:SendDiagnosticInterrupt")',
        ),
        (
            policy(allow(Resource="i-1234567890abcdef0")),
            "Statement[0].Resource: resource "
            '\'i-1234567890abcdef0\' must be an ARN ("arn:...") or "*"',
        ),
        (
            policy(allow(Resource="arn:aws:s3:::b/${aws:username")),
            "Statement[0].Resource: unterminated policy variable at '${aws:username'",
        ),
        (
            policy(allow(Resource="arn:aws:s3:::b/${aws:username, x}")),
            "Statement[0].Resource: policy variable ${aws:username, ...}: "
            "the default value must be in single quotes",
        ),
        (
            policy(allow(Principal={"AWS": "*"})),
            "Statement[0].Principal: Principal is not allowed in an identity policy",
        ),
        (policy(allow(Foo=1)), 'Statement[0].Foo: unknown statement field "Foo"'),
        (
            policy(allow(Sid="has-dash")),
            'Statement[0].Sid: Sid must be a string of letters and digits only (Sid "has-dash")',
        ),
        (
            policy(allow(Sid="A"), allow(Sid="A")),
            'Statement[1].Sid: Sid "A" is already used by '
            "Statement[0] (Sids must be unique within a "
            "policy)",
        ),
        (
            policy(allow(Condition=[])),
            "Statement[0].Condition: Condition must be an object of operators",
        ),
        (
            policy(
                allow(),
                allow(Sid="AllowTagged", Condition={"StringEquals": {"aws:username": {"a": 1}}}),
            ),
            "Statement[1].Condition.StringEquals: value must be a string or list of strings "
            '(key "aws:username") (Sid "AllowTagged")',
        ),
        (
            policy(allow(), allow(Condition={"StringEquals": {"aws:username": [None]}})),
            "Statement[1].Condition.StringEquals: value must be a string or list of strings "
            '(key "aws:username")',
        ),
        (
            policy(allow(Condition={"StringEquals": {"aws:username": []}})),
            "Statement[0].Condition.StringEquals: value must list at "
            'least one value (key "aws:username")',
        ),
        (
            policy(allow(Condition={"StringEquals": "x"})),
            "Statement[0].Condition.StringEquals: must be an "
            "object mapping condition keys to values",
        ),
        (
            policy(allow(Condition={"StringEquals": {"username": "x"}})),
            "Statement[0].Condition.StringEquals: condition key "
            "'username' must be \"service:name\" "
            '(e.g. "aws:SourceIp")',
        ),
        (
            policy(allow(Condition={"StringMatches": {"aws:username": "x"}})),
            'Statement[0].Condition.StringMatches: unknown condition operator "StringMatches"',
        ),
        (
            policy(allow(Condition={"stringequals": {"aws:username": "x"}})),
            'Statement[0].Condition.stringequals: unknown condition operator "stringequals" '
            '(operators are case-sensitive: "StringEquals")',
        ),
        (
            policy(allow(Condition={"ForSomeValues:StringEquals": {"aws:TagKeys": "x"}})),
            "Statement[0].Condition.ForSomeValues:StringEquals: "
            'unknown set qualifier "ForSomeValues:" '
            "(use ForAnyValue: or ForAllValues:)",
        ),
        (
            policy(allow(Condition={"NullIfExists": {"aws:TagKeys": "true"}})),
            "Statement[0].Condition.NullIfExists: Null takes neither IfExists nor a set qualifier",
        ),
        (
            policy(allow(Condition={"Null": {"aws:TagKeys": "yes"}})),
            'Statement[0].Condition.Null: Null takes "true" or "false", not \'yes\'',
        ),
        (
            policy(allow(Condition={"Bool": {"aws:SecureTransport": "yes"}})),
            'Statement[0].Condition.Bool: Bool takes "true" or "false", not \'yes\' '
            '(key "aws:SecureTransport")',
        ),
        (
            policy(allow(Condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/33"}})),
            "Statement[0].Condition.IpAddress: '203.0.113.0/33' is not an IPv4 or IPv6 address or "
            'CIDR range (key "aws:SourceIp")',
        ),
        (
            policy(allow(Condition={"NumericLessThan": {"s3:max-keys": "ten"}})),
            "Statement[0].Condition.NumericLessThan: 'ten' is not a number (key \"s3:max-keys\")",
        ),
        (
            policy(allow(Condition={"NumericLessThan": {"s3:max-keys": "NaN"}})),
            "Statement[0].Condition.NumericLessThan: 'NaN' is not a "
            'finite number (key "s3:max-keys")',
        ),
        (
            policy(allow(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})),
            "Statement[0].Condition.DateLessThan: 'tomorrow' is "
            "not an ISO 8601 date or epoch seconds "
            '(key "aws:CurrentTime")',
        ),
        (
            policy(allow(Condition={"BinaryEquals": {"aws:BinaryKey": "not base64!"}})),
            "Statement[0].Condition.BinaryEquals: BinaryEquals takes base64-encoded values, not "
            "'not base64!' (key \"aws:BinaryKey\")",
        ),
        (
            policy(allow(Condition={"StringLike": {"aws:username": "${aws:x, 'open"}})),
            "Statement[0].Condition.StringLike: policy variable "
            "${aws:x, ...}: unterminated default "
            'value (key "aws:username")',
        ),
        (42, "a policy document must be a JSON string or an object, not int"),
    ],
)
def test_malformed(document, expected):
    assert str(error_for(document)) == expected


def test_error_carries_path():
    err = error_for(policy(allow(), allow(Condition={"StringEquals": {"aws:username": {}}})))
    assert err.path == "Statement[1].Condition.StringEquals"


def test_valid_documents_compile():
    compiled = validate(
        json.dumps(
            policy(
                allow(Sid="One"),
                {
                    "Effect": "Deny",
                    "NotAction": ["iam:*", "s3:*"],
                    "NotResource": "arn:aws:s3:::b/*",
                    "Condition": {
                        "ForAllValues:StringLike": {"aws:TagKeys": "a*"},
                        "DateGreaterThan": {"aws:CurrentTime": 1700000000},
                        "Bool": {"aws:SecureTransport": False},
                    },
                },
                Id="example",
            )
        )
    )
    assert compiled.version == "2012-10-17"
    assert compiled.id == "example"
    assert [s.sid for s in compiled.statements] == ["One", None]
    second = compiled.statements[1]
    assert (second.effect, second.not_action, second.not_resource) == ("Deny", True, True)
    assert [c.operator for c in second.conditions] == [
        "ForAllValues:StringLike",
        "DateGreaterThan",
        "Bool",
    ]
    assert second.conditions[2].values == ("false",)
    assert validate(compiled) is compiled


def test_compiled_policy_is_immutable():
    compiled = validate(json.dumps(policy(allow())))
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.version = "2008-10-17"  # type: ignore[misc]
