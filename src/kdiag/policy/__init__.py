"""IAM JSON policies: validate, compile once, evaluate — pure, no I/O.

>>> from kdiag.policy import evaluate
>>> doc = '''{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
...   "Action": "ec2:SendDiagnosticInterrupt",
...   "Resource": "arn:aws:ec2:us-east-1:111122223333:instance/*",
...   "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}}}}'''
>>> arn = "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0"
>>> evaluate([doc], "ec2:SendDiagnosticInterrupt", arn,
...          {"aws:username": "alice", "aws:ResourceTag/Owner": "alice"}).reason
'policy[0] statement[0] explicit allow'

Semantics follow the IAM User Guide; docs/policy.md lists what is supported and where
kdiag deliberately differs from moto and from principalmapper.
"""

from kdiag.policy._context import instance_arn, request_context, user_arn
from kdiag.policy._document import (
    MAX_DEPTH,
    MAX_DOCUMENT_CHARS,
    USER_POLICY_SIZE_LIMIT,
    Condition,
    Policy,
    Statement,
    policy_size,
    validate,
)
from kdiag.policy._evaluate import Decision, Explanation, StatementMatch, evaluate, explain
from kdiag.policy._simulate import CONTEXT_KEY_TYPES, parse_context_entry, simulate

__all__ = (
    "CONTEXT_KEY_TYPES",
    "MAX_DEPTH",
    "MAX_DOCUMENT_CHARS",
    "USER_POLICY_SIZE_LIMIT",
    "Condition",
    "Decision",
    "Explanation",
    "Policy",
    "Statement",
    "StatementMatch",
    "evaluate",
    "explain",
    "instance_arn",
    "parse_context_entry",
    "policy_size",
    "request_context",
    "simulate",
    "user_arn",
    "validate",
)
