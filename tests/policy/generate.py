"""A seeded generator of random policies and requests inside principalmapper's agreeable subset.

The generator draws actions, resources, conditions and request contexts from small
vocabularies so that statements often apply and decisions come out both ways.  It stays out
of the areas where principalmapper 1.1.5 is known to differ from the AWS documentation (those
are covered by hand-written cases in test_conditions.py and test_variables.py):

* ARNs and resource patterns are lower-case (principalmapper compares them case-insensitively);
* no policy variables and no ``${*}``/``${?}``/``${$}`` escapes;
* ``StringNotLike`` without ``IfExists`` only on keys present in the request;
* ``ForAnyValue:`` only with positive operators and one key per block (principalmapper ORs the
  keys of a ForAnyValue block and evaluates negated operators against the whole set);
* no ``IfExists`` on Numeric, Date, IpAddress or BinaryEquals (principalmapper compares the
  operator name exactly and so treats e.g. ``IpAddressIfExists`` as ``NotIpAddress``);
* ARN condition values always have six components (principalmapper matches them as one glob
  over the whole string, AWS component by component);
* set qualifiers only on String operators; Date ordering operators with one value (it reads
  only the first); Null only on single-valued keys; no empty strings in the context.
"""

from __future__ import annotations

import random
from typing import Any

ACTIONS = [
    "ec2:SendDiagnosticInterrupt",
    "ec2:RebootInstances",
    "ec2:DescribeInstances",
    "s3:GetObject",
    "iam:PassRole",
]
ACTION_PATTERNS = [
    "*",
    "ec2:*",
    "ec2:Send*",
    "ec2:SendDiagnosticInterrup?",
    "ec2:*Instances",
    "ec2:Describe*",
    "ec2:Reboot??stances",
    "s3:*",
    "s3:Get*",
    "iam:?assRole",
]
REGIONS = ["us-east-1", "eu-west-1"]
ACCOUNTS = ["111122223333", "444455556666"]
INSTANCES = ["i-0123456789abcdef0", "i-0fedcba9876543210"]
RESOURCE_PATTERNS = [
    "*",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:ec2:us-east-1:111122223333:instance/*",
    "arn:aws:ec2:*:111122223333:instance/i-0123456789abcdef?",
    "arn:aws:ec2:us-east-1:*",
    "arn:aws:ec2:*",
    "arn:aws:ec2:eu-*:*:instance/*",
    "arn:aws:ec2:??-east-1:*:instance/*",
    "arn:aws:ec2:*:444455556666:instance/i-0f*",
    "arn:aws:s3:::my.bucket/*",
    "arn:aws:s3:::myxbucket/*",
    "arn:aws:s3:::my.bucket/key",
]

# Single-valued string keys and the values they take.
STRING_KEYS = {
    "aws:username": ["alice", "Alice", "bob"],
    "aws:ResourceTag/Owner": ["alice", "bob", "ALICE"],
    "ec2:ResourceTag/env": ["prod", "dev", "prod-eu"],
    "aws:RequestedRegion": ["us-east-1", "eu-west-1"],
    "ec2:InstanceID": INSTANCES,
}
STRING_LIKE = ["al*", "a?ice", "*", "*-1", "d?v", "pro*", "i-0*", "prod-??", "b*b", "*e*"]
MULTI_KEYS = {
    "aws:TagKeys": ["Owner", "env", "Name", "cost"],
    "ec2:Attribute/groups": ["red", "blue", "green"],
}
MULTI_LIKE = ["O*", "*e*", "?ed", "n*", "*"]
ARN_KEYS = {
    "aws:PrincipalArn": [
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:iam::444455556666:user/bob",
        "arn:aws:iam::111122223333:role/admin1",
    ],
    "aws:SourceArn": [
        "arn:aws:sns:us-east-1:111122223333:topic",
        "arn:aws:sns:eu-west-1:444455556666:other",
    ],
}
ARN_PATTERNS = [
    "arn:aws:iam::111122223333:user/*",
    "arn:aws:iam::*:user/alice",
    "arn:aws:iam::111122223333:*",
    "arn:aws:iam::*:role/admin?",
    "arn:aws:sns:*:*:topic",
    "arn:aws:sns:*:444455556666:*",
    "arn:aws:sns:us-*:111122223333:t*",
]
BOOL_KEYS = ["aws:SecureTransport", "aws:MultiFactorAuthPresent"]
IPS = ["10.1.2.3", "192.0.2.10", "203.0.113.7", "2001:db8::1", "2001:db8:1234:5678::9"]
NETWORKS = [
    "10.0.0.0/8",
    "192.0.2.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
    "2001:db8:1234:5678::/64",
    "192.0.2.10/32",
    "0.0.0.0/0",
    "::/0",
]
NUMBERS = ["5", "10", "100", "2.5", "0", "-3"]
DATES = [
    "2026-01-01T00:00:00Z",
    "2026-11-22T07:00:00Z",
    "2027-06-30T12:30:00Z",
    "1767225600",
    "1795000000",
]
BINARIES = ["QmluYXJ5VmFsdWVJbkJhc2U2NA==", "YWJj", "ZGVm"]

STRING_OPS = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
]


def _mangle_case(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.6:
        return text
    if roll < 0.8:
        return text.upper()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def _one_or_many(rng: random.Random, pool: list[str], most: int = 3) -> str | list[str]:
    values = rng.sample(pool, rng.randint(1, min(most, len(pool))))
    return values[0] if len(values) == 1 and rng.random() < 0.5 else values


def _context(rng: random.Random) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for key, pool in STRING_KEYS.items():
        if rng.random() < 0.7:
            ctx[key] = rng.choice(pool)
    for key, pool in MULTI_KEYS.items():
        if rng.random() < 0.75:
            ctx[key] = rng.sample(pool, rng.randint(0, len(pool)))
    for key, pool in ARN_KEYS.items():
        if rng.random() < 0.7:
            ctx[key] = rng.choice(pool)
    for key in BOOL_KEYS:
        if rng.random() < 0.7:
            ctx[key] = rng.choice(["true", "false"])
    if rng.random() < 0.8:
        ctx["aws:SourceIp"] = rng.choice(IPS)
    if rng.random() < 0.7:
        ctx["s3:max-keys"] = rng.choice(NUMBERS)
    if rng.random() < 0.8:
        ctx["aws:CurrentTime"] = rng.choice(DATES)
    if rng.random() < 0.5:
        ctx["aws:BinaryKey"] = rng.choice(BINARIES)
    return ctx


RELATIONS = [
    "Equals",
    "NotEquals",
    "LessThan",
    "LessThanEquals",
    "GreaterThan",
    "GreaterThanEquals",
]

Block = tuple[str, dict[str, Any]]


def _string_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    op = rng.choice(STRING_OPS)
    keys = rng.sample(sorted(STRING_KEYS), rng.randint(1, 2))
    missing = not all(k in ctx for k in keys)
    if (op == "StringNotLike" and missing) or rng.random() < 0.1:
        op += "IfExists"  # StringNotLike on a missing key: see the module docstring
    block = {}
    for key in keys:
        pool = STRING_LIKE if "Like" in op else STRING_KEYS[key]
        block[_mangle_case(rng, key)] = _one_or_many(rng, pool)
    return op, block


def _set_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    if rng.random() < 0.5:
        op = "ForAnyValue:" + rng.choice(["StringEquals", "StringEqualsIgnoreCase", "StringLike"])
        keys = [rng.choice(sorted(MULTI_KEYS))]
    else:
        op = "ForAllValues:" + rng.choice(STRING_OPS)
        keys = rng.sample(sorted(MULTI_KEYS), rng.randint(1, 2))
    block = {}
    for key in keys:
        pool = MULTI_LIKE if "Like" in op else MULTI_KEYS[key]
        block[key] = _one_or_many(rng, pool)
    return op, block


def _arn_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    op = rng.choice(["ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"])
    if rng.random() < 0.3:
        op += "IfExists"
    key = rng.choice(sorted(ARN_KEYS))
    return op, {key: _one_or_many(rng, ARN_PATTERNS + ARN_KEYS[key])}


def _bool_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    op = "BoolIfExists" if rng.random() < 0.3 else "Bool"
    return op, {rng.choice(BOOL_KEYS): rng.choice(["true", "false"])}


def _ip_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    op = rng.choice(["IpAddress", "NotIpAddress"])
    return op, {"aws:SourceIp": _one_or_many(rng, NETWORKS)}


def _numeric_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    rel = rng.choice(RELATIONS)
    return "Numeric" + rel, {"s3:max-keys": _one_or_many(rng, NUMBERS)}


def _date_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    rel = rng.choice(RELATIONS)
    values = _one_or_many(rng, DATES) if rel in ("Equals", "NotEquals") else rng.choice(DATES)
    return "Date" + rel, {"aws:CurrentTime": values}


def _null_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    key = rng.choice([*sorted(STRING_KEYS), "aws:SourceIp", "aws:CurrentTime"])
    return "Null", {key: rng.choice(["true", "false"])}


def _binary_block(rng: random.Random, ctx: dict[str, Any]) -> Block:
    return "BinaryEquals", {"aws:BinaryKey": _one_or_many(rng, BINARIES)}


# Operator families and how often each is drawn (listed twice: drawn twice as often).
FAMILIES = [
    _string_block,
    _string_block,
    _set_block,
    _set_block,
    _arn_block,
    _bool_block,
    _ip_block,
    _numeric_block,
    _date_block,
    _null_block,
    _binary_block,
]


def _condition(rng: random.Random, ctx: dict[str, Any]) -> Block:
    """One operator block (``operator``, ``{key: values}``) from a randomly drawn family."""
    return rng.choice(FAMILIES)(rng, ctx)


def statement(rng: random.Random, ctx: dict[str, Any], effect: str | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": effect or rng.choice(["Allow", "Allow", "Deny"])}
    patterns = [_mangle_case(rng, a) for a in ACTION_PATTERNS + ACTIONS]
    st["NotAction" if rng.random() < 0.15 else "Action"] = _one_or_many(rng, patterns)
    resources = RESOURCE_PATTERNS + [
        f"arn:aws:ec2:{r}:{a}:instance/{i}" for r in REGIONS for a in ACCOUNTS for i in INSTANCES
    ]
    st["NotResource" if rng.random() < 0.15 else "Resource"] = _one_or_many(rng, resources)
    if rng.random() < 0.75:
        condition: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            op, block = _condition(rng, ctx)
            if op.startswith("ForAnyValue:") and op in condition:
                continue  # one key per ForAnyValue block
            condition.setdefault(op, {}).update(block)
        st["Condition"] = condition
    return st


def case(rng: random.Random) -> tuple[list[dict[str, Any]], str, str, dict[str, Any]]:
    """``(policies, action, resource, context)``."""
    ctx = _context(rng)
    policies = []
    for _ in range(rng.randint(1, 3)):
        statements = [statement(rng, ctx) for _ in range(rng.randint(1, 4))]
        for index, st in enumerate(statements):
            if rng.random() < 0.3:
                st["Sid"] = f"S{index}"
        body: dict[str, Any] = {"Statement": statements}
        if rng.random() < 0.9:
            body["Version"] = rng.choice(["2012-10-17", "2008-10-17"])
        policies.append(body)
    action = _mangle_case(rng, rng.choice(ACTIONS))
    if rng.random() < 0.85:
        resource = (
            f"arn:aws:ec2:{rng.choice(REGIONS)}:{rng.choice(ACCOUNTS)}:instance/"
            f"{rng.choice(INSTANCES)}"
        )
    else:
        resource = rng.choice(["arn:aws:s3:::my.bucket/key", "arn:aws:s3:::myxbucket/key"])
    return policies, action, resource, ctx
