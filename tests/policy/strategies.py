"""Hypothesis strategies for policies and requests, over generate.py's vocabularies.

Hypothesis draws every statement, condition and context key itself (no seed), so a failing
case shrinks to the fewest policies, statements and conditions that still fail.  Unlike
generate.py, which stays inside principalmapper's agreeable subset for the oracle test,
these draw from the whole grammar kdiag accepts: the properties must hold for any valid
policy.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.policy import generate as vocab

__all__ = ("contexts", "policies", "requests", "statements")

STRING_VALUES = sorted(
    {v for pool in vocab.STRING_KEYS.values() for v in pool}
    | {v for pool in vocab.MULTI_KEYS.values() for v in pool}
    | set(vocab.STRING_LIKE)
    | set(vocab.MULTI_LIKE)
)
ARN_VALUES = sorted(set(vocab.ARN_PATTERNS) | {v for p in vocab.ARN_KEYS.values() for v in p})
RESOURCES = [
    *vocab.RESOURCE_PATTERNS,
    *(
        f"arn:aws:ec2:{r}:{a}:instance/{i}"
        for r in vocab.REGIONS
        for a in vocab.ACCOUNTS
        for i in vocab.INSTANCES
    ),
]
REQUEST_RESOURCES = [r for r in RESOURCES if "*" not in r and "?" not in r] + [
    "arn:aws:s3:::my.bucket/key",
    "arn:aws:s3:::myxbucket/key",
]


def _one_or_many(pool: list[str]) -> st.SearchStrategy[str | list[str]]:
    element = st.sampled_from(pool)
    return st.one_of(element, st.lists(element, min_size=1, max_size=3, unique=True))


def _cased(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([text, text.upper(), text.swapcase()])


def contexts() -> st.SearchStrategy[dict[str, Any]]:
    """A request context: each key present or not, single- or multi-valued as IAM has it."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for key, pool in vocab.STRING_KEYS.items():
        optional[key] = st.sampled_from(pool)
    for key, pool in vocab.MULTI_KEYS.items():
        optional[key] = st.lists(st.sampled_from(pool), max_size=len(pool), unique=True)
    for key, pool in vocab.ARN_KEYS.items():
        optional[key] = st.sampled_from(pool)
    for key in vocab.BOOL_KEYS:
        optional[key] = st.sampled_from(["true", "false"])
    optional["aws:SourceIp"] = st.sampled_from(vocab.IPS)
    optional["s3:max-keys"] = st.sampled_from(vocab.NUMBERS)
    optional["aws:CurrentTime"] = st.sampled_from(vocab.DATES)
    optional["aws:BinaryKey"] = st.sampled_from(vocab.BINARIES)
    return st.fixed_dictionaries({}, optional=optional)


def _prefixed(base: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda qualifier, op, if_exists: qualifier + op + if_exists,
        st.sampled_from(["", "", "ForAnyValue:", "ForAllValues:"]),
        st.sampled_from(base),
        st.sampled_from(["", "", "IfExists"]),
    )


def _block(
    operators: st.SearchStrategy[str], keys: list[str], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.tuples(
        operators,
        st.dictionaries(st.sampled_from(keys).flatmap(_cased), values, min_size=1, max_size=2),
    )


def _conditions() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    relations = ["Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan"]
    string_keys = sorted(vocab.STRING_KEYS) + sorted(vocab.MULTI_KEYS)
    return st.one_of(
        _block(_prefixed(vocab.STRING_OPS), string_keys, _one_or_many(STRING_VALUES)),
        _block(
            _prefixed(["ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"]),
            sorted(vocab.ARN_KEYS),
            _one_or_many(ARN_VALUES),
        ),
        _block(
            st.sampled_from(["Bool", "BoolIfExists"]),
            vocab.BOOL_KEYS,
            st.sampled_from(["true", "false"]),
        ),
        _block(
            st.sampled_from(["IpAddress", "NotIpAddress", "IpAddressIfExists"]),
            ["aws:SourceIp"],
            _one_or_many(vocab.NETWORKS),
        ),
        _block(
            st.sampled_from(["Numeric" + r for r in relations]),
            ["s3:max-keys"],
            _one_or_many(vocab.NUMBERS),
        ),
        _block(
            st.sampled_from(["Date" + r for r in relations]),
            ["aws:CurrentTime"],
            _one_or_many(vocab.DATES),
        ),
        _block(
            st.just("Null"),
            [*sorted(vocab.STRING_KEYS), "aws:SourceIp", "aws:TagKeys"],
            st.sampled_from(["true", "false"]),
        ),
        _block(st.just("BinaryEquals"), ["aws:BinaryKey"], _one_or_many(vocab.BINARIES)),
    )


def _condition_blocks() -> st.SearchStrategy[dict[str, dict[str, Any]]]:
    def merge(blocks: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for operator, keys in blocks:
            merged.setdefault(operator, {}).update(keys)
        return merged

    return st.lists(_conditions(), min_size=1, max_size=3).map(merge)


def statements(effect: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """One statement: Action or NotAction, Resource or NotResource, maybe a Condition."""
    actions = st.sampled_from(vocab.ACTION_PATTERNS + vocab.ACTIONS).flatmap(_cased)
    return st.builds(
        lambda effect, action_field, action, resource_field, resource, condition: {
            "Effect": effect,
            action_field: action,
            resource_field: resource,
            **({"Condition": condition} if condition else {}),
        },
        st.just(effect) if effect else st.sampled_from(["Allow", "Allow", "Deny"]),
        st.sampled_from(["Action", "Action", "Action", "NotAction"]),
        st.one_of(actions, st.lists(actions, min_size=1, max_size=3)),
        st.sampled_from(["Resource", "Resource", "Resource", "NotResource"]),
        _one_or_many(RESOURCES),
        st.none() | _condition_blocks(),
    )


def _policy() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"Statement": st.lists(statements(), min_size=1, max_size=4)},
        optional={"Version": st.sampled_from(["2012-10-17", "2008-10-17"])},
    )


def policies() -> st.SearchStrategy[list[dict[str, Any]]]:
    """One to three policy documents (as parsed JSON)."""
    return st.lists(_policy(), min_size=1, max_size=3)


def requests() -> st.SearchStrategy[tuple[str, str, dict[str, Any]]]:
    """``(action, resource, context)``."""
    return st.tuples(
        st.sampled_from(vocab.ACTIONS).flatmap(_cased),
        st.sampled_from(REQUEST_RESOURCES),
        contexts(),
    )
