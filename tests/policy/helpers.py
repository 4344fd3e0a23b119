"""Small builders shared by the policy tests."""

from __future__ import annotations

import json
from typing import Any

from kdiag.policy import Decision, evaluate

ACCOUNT = "111122223333"
REGION = "us-east-1"
INSTANCE = "i-1234567890abcdef0"
ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
ACTION = "ec2:SendDiagnosticInterrupt"


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    body: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        body["Version"] = version
    return json.dumps(body)


def allow(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": ACTION, "Resource": ARN, **fields}


def deny(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": ACTION, "Resource": ARN, **fields}


def decide(
    *statements: dict[str, Any],
    action: str = ACTION,
    resource: str = ARN,
    ctx: dict[str, Any] | None = None,
    version: str | None = "2012-10-17",
) -> Decision:
    return evaluate([doc(*statements, version=version)], action, resource, ctx or {})


def allowed_when(condition: dict[str, Any], ctx: dict[str, Any]) -> bool:
    """Whether an Allow statement guarded by ``condition`` allows in ``ctx``."""
    return decide(allow(Condition=condition), ctx=ctx).allowed
