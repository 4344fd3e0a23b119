"""Decision logic, Action/Resource matching and case rules, from the IAM User Guide.

Sources: "Policy evaluation logic", "IAM JSON policy elements: Action / NotAction / Resource /
NotResource", and the EC2 resource-level policy for SendDiagnosticInterrupt.
"""

from __future__ import annotations

import json

import pytest

from kdiag.policy import _evaluate, evaluate, instance_arn, request_context, validate
from tests.policy.helpers import ACCOUNT, ACTION, ARN, INSTANCE, REGION, allow, decide, deny, doc

# --- the documented resource-level policy for this action, verbatim with real values ------

DOCUMENTED = """{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "ec2:SendDiagnosticInterrupt",
      "Resource": "arn:aws:ec2:region:account-id:instance/instance-id"
    }
  ]
}"""


def documented_policy(region: str, account: str, instance: str) -> str:
    return (
        DOCUMENTED.replace("region", region)
        .replace("account-id", account)
        .replace("instance-id", instance)
    )


def test_documented_resource_level_policy_allows_that_instance_only():
    policy = documented_policy(REGION, ACCOUNT, INSTANCE)
    ctx = request_context(
        account_id=ACCOUNT,
        user_name="alice",
        user_id="AIDAEXAMPLE",
        source_ip="192.0.2.1",
        region=REGION,
        instance_id=INSTANCE,
    )
    ok = evaluate([policy], ACTION, instance_arn(REGION, ACCOUNT, INSTANCE), ctx)
    assert ok.allowed
    assert ok.reason == "policy[0] statement[0] explicit allow"
    other = [
        instance_arn(REGION, ACCOUNT, "i-0fedcba9876543210"),
        instance_arn("eu-west-1", ACCOUNT, INSTANCE),
        instance_arn(REGION, "444455556666", INSTANCE),
    ]
    for arn in other:
        assert evaluate([policy], ACTION, arn, ctx).reason == "implicit deny"
    assert not evaluate([policy], "ec2:RebootInstances", ARN, ctx).allowed


def test_reference_owner_tag_policy():
    # ec2-iam-sigv4.md §2: Allow on every instance whose Owner tag is the caller's user name.
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":'
        '"ec2:SendDiagnosticInterrupt","Resource":"arn:aws:ec2:us-east-1:111122223333:instance/*",'
        '"Condition":{"StringEquals":{"aws:ResourceTag/Owner":"${aws:username}"}}}]}'
    )

    def ctx(owner: str | None) -> dict[str, str | list[str]]:
        return request_context(
            account_id=ACCOUNT,
            user_name="alice",
            user_id="AIDA",
            source_ip="192.0.2.1",
            region=REGION,
            instance_id=INSTANCE,
            tags={"Owner": owner} if owner else {},
        )

    assert evaluate([policy], ACTION, ARN, ctx("alice")).allowed
    assert not evaluate([policy], ACTION, ARN, ctx("bob")).allowed
    assert not evaluate([policy], ACTION, ARN, ctx(None)).allowed


def test_scp_denies_without_mfa_under_boolifexists():
    # The public Terraform guardrail of ec2-iam-sigv4.md §2.
    guard = doc(
        {
            "Sid": "DenyWithoutMFA",
            "Effect": "Deny",
            "Action": ["ec2:StopInstances", "ec2:TerminateInstances", ACTION],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        }
    )
    grant = doc(allow())
    no_mfa = evaluate([grant, guard], ACTION, ARN, {"aws:MultiFactorAuthPresent": "false"})
    assert not no_mfa.allowed
    assert no_mfa.reason == 'policy[1] statement "DenyWithoutMFA" explicit deny'
    # Key absent (long-term access keys): IfExists makes the Deny apply.
    assert not evaluate([grant, guard], ACTION, ARN, {}).allowed
    assert evaluate([grant, guard], ACTION, ARN, {"aws:MultiFactorAuthPresent": "true"}).allowed


# --- decision ---------------------------------------------------------------------------------


def test_no_policies_is_implicit_deny():
    decision = evaluate([], ACTION, ARN, {})
    assert not decision.allowed
    assert decision.reason == "implicit deny"
    assert decision.effect is None


def test_explicit_deny_beats_allow_in_either_order():
    for statements in ((allow(), deny()), (deny(), allow())):
        decision = decide(*statements)
        assert not decision.allowed
        assert decision.effect == "Deny"
    # ... and across policies.
    assert not evaluate([doc(allow()), doc(deny())], ACTION, ARN, {}).allowed
    assert not evaluate([doc(deny()), doc(allow())], ACTION, ARN, {}).allowed


def test_reason_names_policy_and_statement():
    decision = evaluate(
        [doc(allow(Resource="arn:aws:s3:::other")), doc({"Sid": "AllowTagged", **allow()})],
        ACTION,
        ARN,
        {},
    )
    assert decision.allowed
    assert decision.reason == 'policy[1] statement "AllowTagged" explicit allow'
    assert (decision.policy_index, decision.statement_index, decision.sid) == (1, 0, "AllowTagged")
    assert decide(allow(), deny()).reason == "policy[0] statement[1] explicit deny"


def test_deny_that_does_not_apply_leaves_allow():
    assert decide(allow(), deny(Resource="arn:aws:ec2:*:*:instance/i-other")).allowed


def test_policies_as_dicts_strings_bytes_and_compiled():
    text = doc(allow())
    for form in (text, text.encode(), json.loads(text), validate(text)):
        assert evaluate([form], ACTION, ARN, {}).allowed


def test_statement_as_single_object():
    policy = json.dumps({"Version": "2012-10-17", "Statement": allow()})
    assert evaluate([policy], ACTION, ARN, {}).allowed


def test_missing_version_means_2008():
    assert validate(doc(allow(), version=None)).version == "2008-10-17"
    assert decide(allow(), version=None).allowed


# --- Action / NotAction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("ec2:SendDiagnosticInterrupt", "ec2:SendDiagnosticInterrupt", True),
        ("ec2:*", "ec2:SendDiagnosticInterrupt", True),
        ("*", "ec2:SendDiagnosticInterrupt", True),
        ("ec2:Send*", "ec2:SendDiagnosticInterrupt", True),
        ("ec2:*Interrupt", "ec2:SendDiagnosticInterrupt", True),
        ("ec2:SendDiagnosticInterrup?", "ec2:SendDiagnosticInterrupt", True),
        ("ec2:SendDiagnosticInterrupt?", "ec2:SendDiagnosticInterrupt", False),  # ? is one char
        ("ec2:SendDiagnostic?Interrupt", "ec2:SendDiagnosticInterrupt", False),
        ("ec2:Reboot*", "ec2:SendDiagnosticInterrupt", False),
        ("s3:*", "ec2:SendDiagnosticInterrupt", False),
        ("ec2:*", "ec2x:SendDiagnosticInterrupt", False),
        # Actions are case-insensitive, service prefix included (Action element docs).
        ("EC2:senddiagnosticinterrupt", "ec2:SendDiagnosticInterrupt", True),
        ("ec2:SendDiagnosticInterrupt", "Ec2:SENDDIAGNOSTICINTERRUPT", True),
        ("ec2:send*", "EC2:SendDiagnosticInterrupt", True),
        # Regex metacharacters are literal.
        ("ec2:Send.*", "ec2:SendDiagnosticInterrupt", False),
        ("ec2:[S]end*", "ec2:SendDiagnosticInterrupt", False),
        ("ec2:[S]end*", "ec2:[s]endX", True),
    ],
)
def test_action_patterns(pattern: str, action: str, expected: bool):
    assert decide(allow(Action=pattern), action=action).allowed is expected


def test_action_list_is_ored():
    assert decide(allow(Action=["s3:GetObject", "ec2:Send*"])).allowed


def test_allow_with_notaction_allows_everything_else():
    st = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert decide(st).allowed
    assert not decide(st, action="iam:CreateUser").allowed
    assert not decide(st, action="IAM:createuser").allowed


def test_deny_with_notaction_denies_everything_else():
    grant = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    fence = {
        "Effect": "Deny",
        "NotAction": ["ec2:Describe*", "ec2:SendDiagnosticInterrupt"],
        "Resource": "*",
    }
    assert decide(grant, fence).allowed
    assert decide(grant, fence, action="ec2:DescribeInstances").allowed
    assert not decide(grant, fence, action="ec2:TerminateInstances").allowed


# --- Resource / NotResource -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("*", ARN, True),
        (ARN, ARN, True),
        ("arn:aws:ec2:*:*:instance/*", ARN, True),
        (f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*", ARN, True),
        (f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1234567890abcdef?", ARN, True),
        (f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1234567890abcde?", ARN, False),
        ("arn:aws:ec2:eu-*:*:instance/*", ARN, False),
        ("arn:aws:ec2:??-east-1:*:instance/*", ARN, True),
        # ARNs are case-sensitive.
        (f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/I-1234567890ABCDEF0", ARN, False),
        (f"arn:aws:ec2:{REGION}:{ACCOUNT}:Instance/*", ARN, False),
        (f"arn:AWS:EC2:{REGION}:{ACCOUNT}:instance/*", ARN, False),
        # A * that ends a segment may run across colons ("Using wildcards in resource ARNs").
        ("arn:aws:ec2:*", ARN, True),
        (f"arn:aws:ec2:{REGION}:*", ARN, True),
        # A * inside a segment stays inside it: this pattern would match as a plain glob.
        ("arn:aws:ec2:us-*3:instance/*", ARN, False),
        ("arn:aws:ec2:us-*1:*:instance/*", ARN, True),
        # The resource segment can hold colons, and wildcards there cross them.
        ("arn:aws:logs:us-east-1:1:log-group:*", "arn:aws:logs:us-east-1:1:log-group:a:b", True),
        # Dots and brackets are literal.
        ("arn:aws:s3:::my.bucket/*", "arn:aws:s3:::myxbucket/k", False),
        ("arn:aws:s3:::my.bucket/*", "arn:aws:s3:::my.bucket/k", True),
        ("arn:aws:s3:::b/[ab]", "arn:aws:s3:::b/a", False),
        ("arn:aws:s3:::b/[ab]", "arn:aws:s3:::b/[ab]", True),
    ],
)
def test_resource_patterns(pattern: str, resource: str, expected: bool):
    assert decide(allow(Resource=pattern), resource=resource).allowed is expected


def test_deny_with_notresource_denies_every_other_resource():
    grant = allow(Resource="*")
    fence = deny(Resource=None, NotResource=f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*")
    del fence["Resource"]
    assert decide(grant, fence).allowed
    other = "arn:aws:ec2:eu-west-1:111122223333:instance/i-1234567890abcdef0"
    decision = decide(grant, fence, resource=other)
    assert not decision.allowed
    assert decision.effect == "Deny"


def test_allow_with_notresource():
    st = {"Effect": "Allow", "Action": "ec2:*", "NotResource": "arn:aws:ec2:*:*:instance/i-0*"}
    assert decide(st).allowed
    assert not decide(st, resource="arn:aws:ec2:us-east-1:1:instance/i-0abc").allowed


def test_evaluation_is_cached_per_document_text():
    text = doc(allow(Sid="Cached"))
    first = _evaluate._compiled(text)
    evaluate([text], ACTION, ARN, {})
    assert _evaluate._compiled(text) is first
