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
