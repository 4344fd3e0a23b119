"""Properties of the decision that must hold for any policy set (hypothesis).

* Adding a Deny statement anywhere never turns a deny into an allow.
* An applicable Deny wins wherever it is placed, in whatever order policies and statements come.
* The decision does not depend on the order of policies or statements.
* Without an applicable Allow, the answer is deny.
* explain() gives evaluate()'s decision, and names statements that really apply.

Hypothesis draws the policies, statements and requests (tests/policy/strategies.py), so a
failure shrinks to a minimal policy set.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.policy import evaluate, explain
from tests.policy.strategies import policies, requests, statements

SETTINGS = settings(max_examples=150, deadline=None)
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def _insert(data: st.DataObject, docs: list[dict[str, Any]], statement: dict[str, Any]) -> None:
    """Put ``statement`` at a place Hypothesis chooses (so it shrinks towards the front)."""
    body = data.draw(st.sampled_from(docs), label="policy")["Statement"]
    body.insert(data.draw(st.integers(0, len(body)), label="position"), statement)


@st.composite
def matching_denies(draw: st.DrawFn, action: str, resource: str, ctx: dict[str, Any]) -> dict:
    """A Deny statement that applies to this request, whatever else it says."""
    deny: dict[str, Any] = {
        "Effect": "Deny",
        "Action": draw(st.sampled_from(["*", action.swapcase(), action.partition(":")[0] + ":*"])),
    }
    if draw(st.booleans()):
        deny["Resource"] = draw(st.sampled_from(["*", resource]))
    else:
        deny["NotResource"] = "arn:aws:ec2:nowhere:000000000000:instance/i-00000000"
    present = sorted(k for k, v in ctx.items() if isinstance(v, str))
    holding = [
        {"Null": {"aws:NoSuchKey": "true"}},
        {"StringNotLike": {"aws:NoSuchKey": "x*"}},
        *({"StringEquals": {key.upper(): ctx[key]}} for key in present),
    ]
    condition = draw(st.none() | st.sampled_from(holding))
    if condition is not None:
        deny["Condition"] = condition
    return deny


@SETTINGS
@given(policies(), requests(), statements(effect="Deny"), st.data())
def test_adding_any_deny_never_allows_more(docs, request, deny, data):
    action, resource, ctx = request
    before = evaluate(docs, action, resource, ctx)
    more = copy.deepcopy(docs)
    _insert(data, more, deny)
    after = evaluate(more, action, resource, ctx)
    assert not after.allowed or before.allowed


@SETTINGS
@given(policies(), requests(), st.data())
def test_applicable_deny_wins_wherever_it_is(docs, request, data):
    action, resource, ctx = request
    docs.insert(
        data.draw(st.integers(0, len(docs)), label="allow-all at"), copy.deepcopy(ALLOW_ALL)
    )
    _insert(data, docs, data.draw(matching_denies(action, resource, ctx), label="deny"))
    decision = evaluate(docs, action, resource, ctx)
    assert (decision.allowed, decision.effect) == (False, "Deny")
    assert decision.reason.endswith("explicit deny")


@SETTINGS
@given(policies(), requests(), st.data())
def test_order_of_policies_and_statements_does_not_matter(docs, request, data):
    action, resource, ctx = request
    before = evaluate(docs, action, resource, ctx)
    shuffled = data.draw(st.permutations(docs), label="policy order")
    shuffled = [
        {**doc, "Statement": data.draw(st.permutations(doc["Statement"]), label="statements")}
        for doc in shuffled
    ]
    after = evaluate(shuffled, action, resource, ctx)
    assert (after.allowed, after.effect) == (before.allowed, before.effect)


@SETTINGS
@given(policies(), requests())
def test_no_allow_statement_means_deny(docs, request):
    action, resource, ctx = request
    for doc in docs:
        kept = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
        doc["Statement"] = kept or [{"Effect": "Deny", "Action": "none:none", "Resource": "*"}]
    assert not evaluate(docs, action, resource, ctx).allowed


@SETTINGS
@given(policies(), requests())
def test_explain_agrees_with_evaluate(docs, request):
    action, resource, ctx = request
    decision = evaluate(docs, action, resource, ctx)
    answer = explain(docs, action, resource, ctx)
    assert answer.decision == decision
    for match in answer.matched:
        # Each named statement, alone in a policy, decides the same way.
        statement = docs[match.policy_index]["Statement"][match.statement_index]
        alone = evaluate(
            [{**docs[match.policy_index], "Statement": [statement]}], action, resource, ctx
        )
        assert alone.effect == match.effect == decision.effect
    for match in answer.stopped:
        statement = docs[match.policy_index]["Statement"][match.statement_index]
        alone = evaluate(
            [{**docs[match.policy_index], "Statement": [statement]}], action, resource, ctx
        )
        assert alone.effect is None
        without = {k: v for k, v in statement.items() if k != "Condition"}
        freed = evaluate(
            [{**docs[match.policy_index], "Statement": [without]}], action, resource, ctx
        )
        assert freed.effect == match.effect
