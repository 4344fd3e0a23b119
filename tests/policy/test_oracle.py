"""kdiag.policy agrees with principalmapper's local simulator on generated cases.

principalmapper (NCC Group's Principal Mapper 1.1.5) is an independent implementation of IAM
evaluation.  Two of its entry points are used as oracles:

* ``policy_has_matching_statement(policy, effect, action, resource, context)`` per policy and
  effect (identity-policy evaluation: Deny wins, then Allow, else implicit deny);
* ``resource_policy_authorization(...)`` with every statement merged into one resource policy
  with ``"Principal": "*"`` (``DENY_MATCH`` / ``SERVICE_MATCH`` / ``NO_MATCH``).

The generator (tests/policy/generate.py) stays out of the areas where principalmapper is
known to differ from the AWS documentation; hand-written cases cover those.
"""

from __future__ import annotations

import json
import random

from kdiag.policy import evaluate
from tests.policy import generate

CASES = 3000
SEED = 20261122


def oracle_identity(pm, policies, action, resource, ctx) -> bool:
    keys = pm.CaseInsensitiveDict(ctx)
    matched = {
        effect: any(
            pm.policy_has_matching_statement(p, effect, action, resource, keys) for p in policies
        )
        for effect in ("Deny", "Allow")
    }
    return matched["Allow"] and not matched["Deny"]


def oracle_resource_policy(pm, policies, action, resource, ctx) -> bool:
    statements = []
    for policy in policies:
        body = policy["Statement"]
        for st in body if isinstance(body, list) else [body]:
            statements.append({**st, "Principal": "*"})
    result = pm.resource_policy_authorization(
        "ec2.amazonaws.com", "111122223333", {"Statement": statements}, action, resource, dict(ctx)
    )
    return result == pm.ResourcePolicyEvalResult.SERVICE_MATCH


def test_agrees_with_principalmapper(pmapper):
    rng = random.Random(SEED)
    disagreements = []
    outcomes = {"allow": 0, "explicit deny": 0, "implicit deny": 0}
    conditions_seen = set()
    for number in range(CASES):
        policies, action, resource, ctx = generate.case(rng)
        for policy in policies:
            for st in policy["Statement"]:
                conditions_seen.update(st.get("Condition", {}))
        ours = evaluate([json.dumps(p) for p in policies], action, resource, ctx)
        identity = oracle_identity(pmapper, policies, action, resource, ctx)
        merged = oracle_resource_policy(pmapper, policies, action, resource, ctx)
        outcomes[
            "allow" if ours.allowed else "explicit deny" if ours.effect else "implicit deny"
        ] += 1
        if not (ours.allowed == identity == merged):
            disagreements.append(
                f"case {number}: kdiag={ours.allowed} ({ours.reason}) "
                f"pmapper identity={identity} resource-policy={merged}\n"
                f"  action={action} resource={resource}\n  ctx={json.dumps(ctx)}\n"
                f"  policies={json.dumps(policies)}"
            )
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(
        disagreements[:5]
    )
    # The generator must exercise every outcome and every operator family, or agreement
    # would say little.
    assert min(outcomes.values()) >= CASES // 10, outcomes
    families = (
        "String",
        "ForAnyValue:",
        "ForAllValues:",
        "Arn",
        "Bool",
        "IpAddress",
        "NotIpAddress",
        "Numeric",
        "Date",
        "Null",
        "BinaryEquals",
        "IfExists",
    )
    for family in families:
        assert any(family in op for op in conditions_seen), family


def test_oracle_disagrees_where_documented(pmapper):
    """The known divergences are real (so the generator is right to avoid them)."""
    ctx: dict[str, str] = {}
    not_like = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ec2:*",
                "Resource": "*",
                "Condition": {"StringNotLike": {"ec2:InstanceType": "t3.*"}},
            }
        ],
    }
    arn = "arn:aws:ec2:us-east-1:111122223333:instance/i-1234567890abcdef0"
    action = "ec2:SendDiagnosticInterrupt"
    # AWS: StringNotLike on a missing key is true.  principalmapper: false.
    assert evaluate([not_like], action, arn, ctx).allowed
    assert not oracle_identity(pmapper, [not_like], action, arn, ctx)
    # AWS: ARNs are case-sensitive.  principalmapper: case-insensitive.
    upper = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ec2:*",
                "Resource": arn.upper().replace("ARN:AWS:EC2", "arn:aws:ec2"),
            }
        ],
    }
    assert not evaluate([upper], action, arn, ctx).allowed
    assert oracle_identity(pmapper, [upper], action, arn, ctx)
    # AWS: variables are substituted in condition values.  principalmapper: not.
    owner = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ec2:*",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
            }
        ],
    }
    who = {"aws:username": "alice", "aws:ResourceTag/Owner": "alice"}
    assert evaluate([owner], action, arn, who).allowed
    assert not oracle_identity(pmapper, [owner], action, arn, who)
    # AWS: ${*} is a literal star.  principalmapper: it leaves "${" in the pattern.
    star = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "arn:aws:s3:::b/${*}"}],
    }
    assert evaluate([star], action, "arn:aws:s3:::b/*", ctx).allowed
    assert not oracle_identity(pmapper, [star], action, "arn:aws:s3:::b/*", ctx)
    # AWS: default values for variables.  principalmapper: no such syntax.
    team = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": "arn:aws:s3:::bucket-${aws:PrincipalTag/team, 'company-wide'}",
            }
        ],
    }
    wide = "arn:aws:s3:::bucket-company-wide"
    assert evaluate([team], "s3:ListBucket", wide, ctx).allowed
    assert not oracle_identity(pmapper, [team], "s3:ListBucket", wide, ctx)
    # AWS: ArnLike compares the six ARN components separately.  principalmapper: one glob.
    short = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ec2:*",
                "Resource": "*",
                "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*"}},
            }
        ],
    }
    principal = {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}
    assert not evaluate([short], action, arn, principal).allowed
    assert oracle_identity(pmapper, [short], action, arn, principal)
