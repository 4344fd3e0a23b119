"""Properties of the decision that must hold for any policy set (hypothesis).

* Adding a Deny statement anywhere never turns a deny into an allow.
* An applicable Deny wins wherever it is placed, in whatever order policies and statements come.
* The decision does not depend on the order of policies or statements.
* Without an applicable Allow, the answer is deny.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.policy import evaluate
from tests.policy import generate

SETTINGS = settings(max_examples=150, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return policy["Statement"]


def _insert(policies: list[dict[str, Any]], statement: dict[str, Any], rng: random.Random) -> None:
    target = rng.choice(policies)
    body = _statements(target)
    statement = {k: v for k, v in statement.items() if k != "Sid"}
    body.insert(rng.randint(0, len(body)), statement)


def _matching_deny(rng: random.Random, action: str, resource: str, ctx: dict[str, Any]) -> dict:
    """A Deny statement built to apply to this request."""
    deny: dict[str, Any] = {"Effect": "Deny"}
    deny["Action"] = rng.choice(["*", action.swapcase(), action.split(":", maxsplit=1)[0] + ":*"])
    if rng.random() < 0.5:
        deny["Resource"] = rng.choice(["*", resource])
    else:
        deny["NotResource"] = "arn:aws:ec2:nowhere:000000000000:instance/i-00000000"
    present = [k for k, v in ctx.items() if isinstance(v, str)]
    roll = rng.random()
    if roll < 0.3 and present:
        key = rng.choice(present)
        deny["Condition"] = {"StringEquals": {key.upper(): ctx[key]}}
    elif roll < 0.5:
        deny["Condition"] = {"Null": {"aws:NoSuchKey": "true"}}
    elif roll < 0.6:
        deny["Condition"] = {"StringNotLike": {"aws:NoSuchKey": "x*"}}
    return deny


@SETTINGS
@given(seeds)
def test_adding_any_deny_never_allows_more(seed: int):
    rng = random.Random(seed)
    policies, action, resource, ctx = generate.case(rng)
    before = evaluate(policies, action, resource, ctx)
    more = copy.deepcopy(policies)
    _insert(more, generate.statement(rng, ctx, effect="Deny"), rng)
    after = evaluate(more, action, resource, ctx)
    if not before.allowed:
        assert not after.allowed
    if after.allowed:
        assert before.allowed


@SETTINGS
@given(seeds)
def test_applicable_deny_wins_wherever_it_is(seed: int):
    rng = random.Random(seed)
    policies, action, resource, ctx = generate.case(rng)
    policies.insert(
        rng.randint(0, len(policies)),
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        },
    )
    _insert(policies, _matching_deny(rng, action, resource, ctx), rng)
    decision = evaluate(policies, action, resource, ctx)
    assert not decision.allowed
    assert decision.effect == "Deny"
    assert decision.reason.endswith("explicit deny")


@SETTINGS
@given(seeds)
def test_order_of_policies_and_statements_does_not_matter(seed: int):
    rng = random.Random(seed)
    policies, action, resource, ctx = generate.case(rng)
    before = evaluate(policies, action, resource, ctx)
    shuffled = copy.deepcopy(policies)
    rng.shuffle(shuffled)
    for policy in shuffled:
        rng.shuffle(_statements(policy))
    after = evaluate(shuffled, action, resource, ctx)
    assert after.allowed == before.allowed
    assert (after.effect is None) == (before.effect is None)


@SETTINGS
@given(seeds)
def test_no_allow_statement_means_deny(seed: int):
    rng = random.Random(seed)
    policies, action, resource, ctx = generate.case(rng)
    for policy in policies:
        kept = [s for s in _statements(policy) if s["Effect"] == "Deny"]
        policy["Statement"] = kept or [{"Effect": "Deny", "Action": "none:none", "Resource": "*"}]
    assert not evaluate(policies, action, resource, ctx).allowed
