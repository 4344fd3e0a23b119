"""Wildcard matching against an independent reference matcher, and the escapes (hypothesis).

The reference is a textbook dynamic-programming glob (``*`` any run, ``?`` one character, all
else literal), written here without regular expressions, so a regex-escaping slip in kdiag
(``.``, ``[``, ``\\``, ``$`` ...) shows up as a disagreement.
"""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.helpers import allow, decide

SETTINGS = settings(max_examples=200, deadline=None)
ALPHABET = "ab*?.[]\\^$+(){}|:/-\n é"
texts = st.text(alphabet="ab.[]\\^+(){}|:/-\n é", max_size=8)
patterns = st.text(alphabet=ALPHABET, max_size=8).filter(lambda p: "${" not in p)


def reference_glob(pattern: str, text: str) -> bool:
    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(text)
        if pattern[i] == "*":
            return match(i + 1, j) or (j < len(text) and match(i, j + 1))
        if j == len(text):
            return False
        return (pattern[i] == "?" or pattern[i] == text[j]) and match(i + 1, j + 1)

    return match(0, 0)


def string_like(pattern: str, value: str) -> bool:
    return decide(
        allow(Condition={"StringLike": {"aws:ResourceTag/t": pattern}}),
        ctx={"aws:ResourceTag/t": value},
    ).allowed


def escape(text: str) -> str:
    return text.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}")


@SETTINGS
@given(patterns, texts)
def test_string_like_agrees_with_reference_glob(pattern: str, value: str):
    assert string_like(pattern, value) is reference_glob(pattern, value)


@SETTINGS
@given(patterns, texts)
def test_resource_part_agrees_with_reference_glob(pattern: str, value: str):
    prefix = "arn:aws:s3:::"
    st_ = allow(Action="s3:GetObject", Resource=prefix + pattern)
    got = decide(st_, action="s3:GetObject", resource=prefix + value).allowed
    assert got is reference_glob(pattern, value)


@SETTINGS
@given(st.text(alphabet="ab*?$.{}", max_size=10))
def test_escapes_make_any_text_literal(text: str):
    assert string_like(escape(text), text)
    assert not string_like(escape(text), text + "x")
    if "*" in text or "?" in text:
        assert not string_like(escape(text), text.replace("*", "a").replace("?", "b"))


@SETTINGS
@given(
    st.text(alphabet="abcXYZ:*?", min_size=1, max_size=10), st.text(alphabet="abcXYZ", max_size=6)
)
def test_actions_ignore_case(name: str, suffix: str):
    action = f"svc:{suffix}"
    lower = decide(allow(Action=f"svc:{name}".lower()), action=action).allowed
    upper = decide(allow(Action=f"SVC:{name}".upper()), action=action.swapcase()).allowed
    assert lower is upper is reference_glob(name.lower(), suffix.lower())


# Patterns with three or more "*" are not matched by one backtracking regex (that is
# super-linear: see test_limits.py) but by an atomic-group regex or a position-set
# simulation.  These draw star-heavy patterns so those paths are the ones checked.
star_heavy = st.lists(
    st.sampled_from(["*", "*", "?", "a", "b", ":", "."]), min_size=3, max_size=12
).map("".join)
short_texts = st.text(alphabet="ab:.", max_size=10)


@SETTINGS
@given(star_heavy, short_texts)
def test_star_heavy_string_like_agrees_with_reference_glob(pattern: str, value: str):
    assert string_like(pattern, value) is reference_glob(pattern, value)


@SETTINGS
@given(star_heavy, short_texts)
def test_star_heavy_resource_part_agrees_with_reference_glob(pattern: str, value: str):
    prefix = "arn:aws:s3:::"
    st_ = allow(Action="s3:GetObject", Resource=prefix + pattern)
    got = decide(st_, action="s3:GetObject", resource=prefix + value).allowed
    assert got is reference_glob(pattern, value)


def arn_reference(pattern: str, value: str, *, condition: bool) -> bool:
    """The ARN rules as a dynamic program over (pattern, value) positions.

    Before the pattern's fifth colon a ``?`` is one non-colon character and a ``*`` a run of
    non-colon characters, except (Resource element only) a ``*`` that ends its segment,
    which may run across colons.  From the fifth colon on, plain glob rules.  An ArnLike
    pattern with fewer than six components matches nothing, unless it is a lone ``*``.
    """
    if condition and pattern != "*" and pattern.count(":") < 5:
        return False
    kinds = []  # (char, may_cross_colon) per pattern position
    colons = 0
    for i, char in enumerate(pattern):
        late = colons >= 5
        ends_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
        kinds.append((char, late or (char == "*" and ends_segment and not condition)))
        if char == ":":
            colons += 1

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        char, cross = kinds[i]
        if char == "*":
            if match(i + 1, j):
                return True
            return j < len(value) and (cross or value[j] != ":") and match(i, j + 1)
        if j == len(value):
            return False
        if char == "?":
            return (cross or value[j] != ":") and match(i + 1, j + 1)
        return char == value[j] and match(i + 1, j + 1)

    return pattern == "*" or match(0, 0)


arn_patterns = st.lists(
    st.sampled_from(["*", "*", "?", "a", ":", ":", "-", "arn:", "aws:"]), min_size=1, max_size=14
).map("".join)
arn_values = st.lists(st.sampled_from(["a", ":", "-", "aa", "arn:", "aws:"]), max_size=10).map(
    "".join
)


@SETTINGS
@given(arn_patterns, arn_values)
def test_resource_arn_wildcards_agree_with_reference(pattern: str, value: str):
    got = decide(
        allow(Action="s3:GetObject", Resource="arn:" + pattern),
        action="s3:GetObject",
        resource="arn:" + value,
    ).allowed
    assert got is arn_reference("arn:" + pattern, "arn:" + value, condition=False)


@SETTINGS
@given(arn_patterns, arn_values)
def test_arn_like_wildcards_agree_with_reference(pattern: str, value: str):
    condition = {"ArnLike": {"aws:SourceArn": "arn:" + pattern}}
    got = decide(allow(Condition=condition), ctx={"aws:SourceArn": "arn:" + value}).allowed
    assert got is arn_reference("arn:" + pattern, "arn:" + value, condition=True)
