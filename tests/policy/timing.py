"""Per-request cost of the policy engine (not a test: run ``python -m tests.policy.timing``).

Prints the best of five runs of 20,000 calls each, for: ``evaluate`` on a realistic policy
set (an owner-tag/IP-guarded Allow with variables, a Describe* Allow, an MFA guardrail Deny);
``request_context`` plus ``evaluate`` (what interrupts.py does per request); ``validate`` of
one document (the one-off cost when a policy is attached or first seen); and the same
decision by principalmapper's simulator for comparison.  No timing is asserted anywhere.
"""

from __future__ import annotations

import json
import timeit

from kdiag.policy import evaluate, instance_arn, request_context, validate
from tests.policy.conftest import import_principalmapper_simulation
from tests.policy.test_oracle import oracle_identity

ACTION = "ec2:SendDiagnosticInterrupt"
ARN = instance_arn("us-east-1", "111122223333", "i-0123456789abcdef0")
GRANT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowOwned",
            "Effect": "Allow",
            "Action": ACTION,
            "Resource": "arn:aws:ec2:*:111122223333:instance/*",
            "Condition": {
                "StringEquals": {"aws:ResourceTag/Owner": "alice"},
                "IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]},
            },
        },
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
    ],
}
GUARD = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyLockedWithoutMFA",
            "Effect": "Deny",
            "Action": ["ec2:StopInstances", ACTION],
            "Resource": "*",
            "Condition": {
                "BoolIfExists": {"aws:MultiFactorAuthPresent": "false"},
                "StringEquals": {"ec2:ResourceTag/env": "locked"},
            },
        }
    ],
}
WITH_VARIABLES = json.loads(
    json.dumps(GRANT)
    .replace('"alice"', '"${aws:username}"')
    .replace("instance/*", "instance/${ec2:InstanceID}")
)


def _context() -> dict[str, str | list[str]]:
    return request_context(
        account_id="111122223333",
        user_name="alice",
        user_id="AIDAEXAMPLE",
        source_ip="203.0.113.7",
        region="us-east-1",
        instance_id="i-0123456789abcdef0",
        tags={"Owner": "alice", "env": "prod"},
    )


def main() -> None:
    ctx = _context()
    texts = [json.dumps(GRANT), json.dumps(GUARD)]
    with_vars = [json.dumps(WITH_VARIABLES), json.dumps(GUARD)]
    pm = import_principalmapper_simulation()
    assert evaluate(texts, ACTION, ARN, ctx).allowed
    assert evaluate(with_vars, ACTION, ARN, ctx).allowed
    assert oracle_identity(pm, [GRANT, GUARD], ACTION, ARN, ctx)
    runs = [
        ("kdiag evaluate", lambda: evaluate(texts, ACTION, ARN, ctx)),
        ("kdiag evaluate, policy variables", lambda: evaluate(with_vars, ACTION, ARN, ctx)),
        ("kdiag request_context + evaluate", lambda: evaluate(texts, ACTION, ARN, _context())),
        ("kdiag validate (one document)", lambda: validate(texts[0])),
        ("principalmapper decision", lambda: oracle_identity(pm, [GRANT, GUARD], ACTION, ARN, ctx)),
    ]
    number = 20_000
    for label, fn in runs:
        best = min(timeit.repeat(fn, number=number, repeat=5)) / number
        print(f"{label:40s} {best * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
