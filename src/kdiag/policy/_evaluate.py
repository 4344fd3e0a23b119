"""The decision: explicit Deny, then Allow, then implicit deny (IAM "Policy evaluation logic")."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kdiag.policy._document import Policy, Statement, validate
from kdiag.policy._patterns import ContextValue

__all__ = ("Decision", "evaluate")


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
        except (TypeError, ValueError):
            return validate(document)  # not JSON data: validate() says what is wrong
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
