"""The decision: explicit Deny, then Allow, then implicit deny (IAM "Policy evaluation logic").

:func:`evaluate` answers on the first deciding statement (it runs on every request);
:func:`explain` answers the policy author's question — which statements decided, which
were stopped by a condition, which condition keys the request did not carry — at the cost
of looking at every statement.  Both give the same :class:`Decision`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kdiag.policy._document import Policy, Statement, validate
from kdiag.policy._patterns import ContextValue

__all__ = ("Decision", "Explanation", "StatementMatch", "evaluate", "explain")


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict and what decided it.

    ``reason`` is for people and the audit log, e.g. ``policy[0] statement "AllowTagged"
    explicit allow``, ``policy[1] statement[2] explicit deny`` or ``implicit deny``.
    """

    allowed: bool
    reason: str
    effect: Literal["Allow", "Deny"] | None = None
    """Effect of the deciding statement; ``None`` for an implicit deny."""
    policy_index: int | None = None
    statement_index: int | None = None
    sid: str | None = None


_IMPLICIT_DENY = Decision(False, "implicit deny")


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Policy:
    return validate(text)


def _policy(document: str | bytes | Mapping[str, Any] | Policy) -> Policy:
    if isinstance(document, str):
        return _compiled(document)
    if isinstance(document, Mapping):
        try:
            text = json.dumps(document)
        except (TypeError, ValueError, RecursionError):
            return validate(document)  # not JSON data, or too deep: validate() says what
        return _compiled(text)
    return validate(document)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _context(context: Mapping[str, str | Sequence[str]]) -> dict[str, ContextValue]:
    out: dict[str, ContextValue] = {}
    for key, value in context.items():
        if isinstance(value, str):
            out[key.lower()] = value
        elif isinstance(value, Sequence):
            out[key.lower()] = tuple(_scalar(v) for v in value)
        else:  # be forgiving with a stray bool or number
            out[key.lower()] = _scalar(value)
    return out


def _decided(index: int, statement: Statement) -> Decision:
    allowed = statement.effect == "Allow"
    verdict = "explicit allow" if allowed else "explicit deny"
    return Decision(
        allowed,
        f"policy[{index}] {statement.label} {verdict}",
        statement.effect,
        index,
        statement.index,
        statement.sid,
    )


def evaluate(
    policies: Iterable[str | bytes | Mapping[str, Any] | Policy],
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]],
) -> Decision:
    """Decide whether ``action`` on ``resource`` is allowed by ``policies`` in ``context``.

    ``policies`` are policy documents (JSON text, parsed objects, or :class:`Policy` from
    :func:`validate`); JSON text is compiled once and cached.  ``context`` maps condition keys
    (any case) to a string or a list of strings.  An applicable ``Deny`` in any policy wins;
    otherwise an applicable ``Allow`` allows; otherwise the answer is an implicit deny.
    Raises :class:`~kdiag.errors.PolicyError` when a document is malformed.
    """
    compiled = [_policy(p) for p in policies]
    ctx = _context(context)
    action_key = action.lower()
    allow: Decision | None = None
    for index, policy in enumerate(compiled):
        for statement in policy.statements:
            if statement.effect == "Deny":
                if statement.applies(action_key, resource, ctx):
                    return _decided(index, statement)
            elif allow is None and statement.applies(action_key, resource, ctx):
                allow = _decided(index, statement)
    return allow or _IMPLICIT_DENY


@dataclass(frozen=True, slots=True)
class StatementMatch:
    """A statement of ``policies[policy_index]`` that matched the action and resource."""

    policy_index: int
    statement_index: int
    sid: str | None
    effect: Literal["Allow", "Deny"]
    failed_condition: str | None = None
    """``None`` when every condition held, else the first that did not, as
    ``Operator key`` (e.g. ``StringEquals aws:ResourceTag/Owner``)."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """:func:`explain`'s answer: the decision and the statements behind it."""

    decision: Decision
    matched: tuple[StatementMatch, ...]
    """Every statement of the deciding effect that applies (Deny statements for an
    explicit deny, Allow statements for an allow), in policy and statement order; the first
    is the one ``decision`` names.  Empty for an implicit deny."""
    stopped: tuple[StatementMatch, ...]
    """Statements whose action and resource matched but a condition did not hold."""
    missing_context_keys: tuple[str, ...]
    """Condition keys of the statements that matched the action and resource (applied or
    stopped) which the context does not carry, as written: a missing key decides
    ``...IfExists``, negated operators and ``Null`` as much as a present one."""

    @property
    def verdict(self) -> Literal["allowed", "explicitDeny", "implicitDeny"]:
        """The decision in the words of IAM's policy simulator (``EvalDecision``)."""
        if self.decision.allowed:
            return "allowed"
        return "explicitDeny" if self.decision.effect == "Deny" else "implicitDeny"


def explain(
    policies: Iterable[str | bytes | Mapping[str, Any] | Policy],
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]],
) -> Explanation:
    """:func:`evaluate`, with every statement that took part.

    Same arguments, same decision; it looks at every statement instead of stopping at the
    first Deny, so it is for people asking why, not for the request path.
    """
    compiled = [_policy(p) for p in policies]
    ctx = _context(context)
    action_key = action.lower()
    applied: list[tuple[int, Statement]] = []
    stopped: list[StatementMatch] = []
    missing: dict[str, None] = {}
    for index, policy in enumerate(compiled):
        for statement in policy.statements:
            if not statement.targets(action_key, resource, ctx):
                continue
            conditions = statement.conditions
            missing.update(dict.fromkeys(c.key_name for c in conditions if c.key not in ctx))
            failed = next((c for c in conditions if not c.holds(ctx)), None)
            if failed is None:
                applied.append((index, statement))
                continue
            stopped.append(
                StatementMatch(
                    index,
                    statement.index,
                    statement.sid,
                    statement.effect,
                    f"{failed.operator} {failed.key_name}",
                )
            )
    deny = [(i, s) for i, s in applied if s.effect == "Deny"]
    deciding = deny or [(i, s) for i, s in applied if s.effect == "Allow"]
    decision = _decided(*deciding[0]) if deciding else _IMPLICIT_DENY
    matched = tuple(StatementMatch(i, s.index, s.sid, s.effect) for i, s in deciding)
    return Explanation(decision, matched, tuple(stopped), tuple(missing))
