"""Hostile policy documents are refused with MalformedPolicyDocument, and hostile patterns
cost linear time: deep nesting, huge text, NaN, giant numbers, duplicate keys, many
statements, long strings and wildcard-heavy patterns."""

from __future__ import annotations

import json
import time

import pytest

from kdiag.errors import PolicyError
from kdiag.policy import MAX_DEPTH, MAX_DOCUMENT_CHARS, evaluate, explain, policy_size, validate
from tests.policy.helpers import ACTION, ARN, allow, doc


def refused(document) -> str:
    with pytest.raises(PolicyError) as info:
        validate(document)
    assert info.value.code == "MalformedPolicyDocument"
    return str(info.value)


def nested(depth: int) -> str:
    """A valid-looking statement whose condition value is ``depth`` arrays deep."""
    inner = "[" * depth + '"x"' + "]" * depth
    return (
        '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*",'
        f'"Condition":{{"StringEquals":{{"aws:username":{inner}}}}}}}}}'
    )


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 20_000 + "1" + "}" * 20_000,
        nested(60_000),
    ],
    ids=["arrays-100k", "objects-20k", "in-a-condition-60k"],
)
def test_deep_nesting_is_malformed_not_a_recursion_error(text):
    message = refused(text)
    assert "nested more than" in message or "characters long" in message


def test_depth_bound_is_exact():
    # nested(n): document, Statement, Condition, StringEquals are 4 objects, then n arrays.
    assert "Condition" in refused(nested(MAX_DEPTH - 4))  # past the bound check: grammar
    assert "nested more than 32 levels" in refused(nested(MAX_DEPTH - 3))


def test_brackets_inside_strings_do_not_count():
    sid_free = allow(Resource="arn:aws:s3:::" + "[{" * 100 + '\\"' + "}]" * 100)
    assert validate(doc(sid_free)).statements[0].effect == "Allow"


def test_deep_python_objects_are_refused_before_json_dumps():
    deep: dict = {}
    cursor = deep
    for _ in range(100_000):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert "nested more than" in refused(deep)
    with pytest.raises(PolicyError):
        evaluate([deep], ACTION, ARN, {})


def test_huge_text_is_refused_before_parsing():
    huge = '{"Statement":"' + "x" * 10_000_000 + '"}'
    assert f"at most {MAX_DOCUMENT_CHARS:,} are read" in refused(huge)
    assert "characters long" in refused(huge.encode())


def test_huge_python_document_is_refused():
    many = {"Version": "2012-10-17", "Statement": [allow(Sid=f"S{i}") for i in range(2000)]}
    assert "characters long" in refused(many)


def test_many_statements_within_the_bound_evaluate_quickly():
    body = [allow(Action=f"svc:Action{i}", Resource="*") for i in range(1500)]
    text = doc(*body)
    assert len(text) <= MAX_DOCUMENT_CHARS
    started = time.perf_counter()
    decision = evaluate([text], "svc:Action1499", ARN, {})
    assert decision.allowed
    assert decision.statement_index == 1499
    assert time.perf_counter() - started < 20  # ~0.15 s here; generous for a loaded machine


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            doc(allow(Condition={"NumericEquals": {"s3:max-keys": "X"}})).replace('"X"', "NaN"),
            "NaN",
        ),
        (
            doc(allow(Condition={"NumericEquals": {"s3:max-keys": "X"}})).replace(
                '"X"', "-Infinity"
            ),
            "-Infinity",
        ),
        (
            doc(allow(Condition={"NumericEquals": {"s3:max-keys": "X"}})).replace(
                '"X"', "9" * 5000
            ),
            "digits",
        ),
        (
            '{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}',
            'duplicate key "Version"',
        ),
    ],
    ids=["nan", "infinity", "5000-digit-number", "duplicate-key"],
)
def test_json_that_is_not_json_data(text, expected):
    message = refused(text)
    assert message.startswith(("not valid JSON", "duplicate key"))
    assert expected in message


def _wildcard_bomb(stars: int) -> str:
    return "arn:aws:ec2:*:*:instance/" + "*a" * stars + "b"


@pytest.mark.parametrize("prefix", ["arn:aws:ec2:*:*:instance/", "arn:aws:ec2:us-*-1:*:instance/"])
def test_wildcard_heavy_patterns_cost_linear_time(prefix):
    # A backtracking regex takes ~40 s for 8 of these against 60 characters, and grows
    # exponentially; every one of these must answer at once.
    value = "arn:aws:ec2:us-east-1:111122223333:instance/" + "a" * 60
    pattern = prefix + "*a" * 40 + "b"
    started = time.perf_counter()
    for text_pattern in (pattern, pattern[:-1]):
        policy = doc(allow(Action="*", Resource=text_pattern))
        decision = evaluate([policy], ACTION, value, {})
        assert decision.allowed is text_pattern.endswith("a")
        like = doc(allow(Condition={"StringLike": {"aws:username": "*a" * 40 + "b"}}))
        assert not evaluate([like], ACTION, ARN, {"aws:username": "a" * 2000}).allowed
        arn_like = doc(allow(Condition={"ArnLike": {"aws:PrincipalArn": text_pattern}}))
        assert evaluate([arn_like], ACTION, ARN, {"aws:PrincipalArn": value}).allowed is (
            text_pattern.endswith("a")
        )
        assert explain([policy], ACTION, value, {}).decision.allowed is text_pattern.endswith("a")
    assert time.perf_counter() - started < 10  # milliseconds here; backtracking: hours


def test_policy_size_does_not_count_whitespace():
    compact = json.dumps(json.loads(doc(allow())), separators=(",", ":"))
    pretty = json.dumps(json.loads(compact), indent=4)
    assert policy_size(compact) == len(compact)
    assert policy_size(pretty) == policy_size(compact) < len(pretty)
    assert policy_size(' {"a" :\t"b c"}\r\n') == len('{"a":"bc"}')


def test_undecodable_bytes_in_a_str_are_not_utf8():
    # A command-line argument with invalid UTF-8 reaches Python as lone surrogates.
    text = doc(allow(Action="ec2:X")).replace("ec2:X", "ec2:\udcff")
    assert refused(text) == "not valid JSON: the document is not UTF-8"
    escaped = doc(allow(Action="ec2:X")).replace("ec2:X", "ec2:\\ud800")  # a JSON escape
    assert validate(escaped).statements[0].effect == "Allow"


@pytest.mark.parametrize(
    "text",
    ['"' + '\\"' * 60_000, '"\\' * 60_000, '"a' * 60_000 + "\\", '"' + "[" * 120_000],
    ids=["escaped-quotes", "quote-backslash", "trailing-backslash", "open-string"],
)
def test_the_nesting_scan_is_linear(text):
    # The scan once retried a string that never closed from every later quote: 56 s here.
    started = time.perf_counter()
    assert refused(text).startswith("not valid JSON")
    assert time.perf_counter() - started < 10  # milliseconds here; the quadratic scan: 56 s
