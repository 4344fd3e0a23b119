"""The policy simulator: ``iam simulate-principal-policy``'s answers, from :func:`explain`.

For each action and resource: ``allowed``, ``explicitDeny`` or ``implicitDeny``, the
statements that decided (by policy name, statement index and Sid), the statements a
condition stopped and the condition keys the context did not carry — in the JSON shape of
IAM's ``EvaluationResults``.  Context entries are read the way the aws CLI takes
``--context-entries``: ``ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,
ContextKeyType=ip`` (or ``key=...,values=...,type=...``, or the JSON form).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kdiag.errors import ConfigError
from kdiag.policy._evaluate import StatementMatch, explain
from kdiag.policy._operators import parse_date, parse_number

__all__ = ("CONTEXT_KEY_TYPES", "parse_context_entry", "simulate")

CONTEXT_KEY_TYPES = (
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
)
"""IAM's ``ContextKeyType`` values; a ``...List`` type takes several values."""

_FIELDS = {
    "contextkeyname": "name",
    "key": "name",
    "contextkeyvalues": "values",
    "values": "values",
    "contextkeytype": "type",
    "type": "type",
}


def _shorthand(text: str) -> dict[str, Any]:
    """``Name=aws:SourceIp,Values=a,b,Type=ipList``: a comma before ``field=`` starts the
    next field; any other comma separates values."""
    fields: dict[str, Any] = {}
    current: str | None = None
    for piece in text.split(","):
        name, equals, value = piece.partition("=")
        field = _FIELDS.get(name.strip().lower()) if equals else None
        if field is not None:
            if field in fields:
                raise ConfigError(f"--context-entries: {name.strip()} is given twice in {text!r}")
            current = field
            fields[field] = [value] if field == "values" else value
        elif current == "values":
            fields["values"].append(piece)
        else:
            raise ConfigError(
                f"--context-entries: cannot read {piece!r} in {text!r}: use"
                " ContextKeyName=KEY,ContextKeyValues=V1,V2,ContextKeyType=TYPE"
            )
    return fields


def _boolean(value: str) -> None:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{value!r} is not true or false")


_CHECKS: dict[str, Callable[[str], object]] = {
    "string": str,
    "numeric": parse_number,
    "boolean": _boolean,
    "ip": lambda value: ipaddress.ip_network(value.strip(), strict=False),
    "binary": lambda value: base64.b64decode(value, validate=True),
    "date": parse_date,
}


def _typed(name: str, kind: str, values: Sequence[str]) -> None:
    check = _CHECKS[kind.removesuffix("List")]
    for value in values:
        try:
            check(value)
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(f"--context-entries: {name} ({kind}): {exc}") from None


def parse_context_entry(text: str) -> dict[str, str | list[str]]:
    """One ``--context-entries`` value: the condition keys it sets.

    Shorthand (``ContextKeyName=K,ContextKeyValues=V1,V2,ContextKeyType=T``, or ``key=``,
    ``values=``, ``type=``) or JSON (an object with those fields, or a list of them).  The
    type defaults to ``string`` (``stringList`` for several values); a single-valued type
    takes exactly one value; values are checked against their type.

    :raises ConfigError: the entry cannot be read.
    """
    stripped = text.strip()
    entries: list[Any]
    if stripped.startswith(("{", "[")):
        try:
            loaded = json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"--context-entries: not valid JSON: {exc}") from None
        entries = loaded if isinstance(loaded, list) else [loaded]
    else:
        entries = [_shorthand(stripped)]
    out: dict[str, str | list[str]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ConfigError("--context-entries: each entry must be an object")
        fields = {_FIELDS.get(str(k).lower(), str(k)): v for k, v in entry.items()}
        name, values, kind = fields.get("name"), fields.get("values"), fields.get("type")
        if isinstance(values, str):
            values = [values]
        if not isinstance(name, str) or ":" not in name:
            raise ConfigError('--context-entries: ContextKeyName must be "service:key"')
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            raise ConfigError(f"--context-entries: {name} needs ContextKeyValues (strings)")
        kind = kind if kind is not None else ("string" if len(values) == 1 else "stringList")
        if kind not in CONTEXT_KEY_TYPES:
            raise ConfigError(
                f"--context-entries: ContextKeyType {kind!r} is not one of"
                f" {', '.join(CONTEXT_KEY_TYPES)}"
            )
        if not kind.endswith("List") and len(values) != 1:
            raise ConfigError(f"--context-entries: {name} is {kind}: give one value")
        _typed(name, kind, values)
        out[name] = list(values) if kind.endswith("List") else values[0]
    return out


def _statement(names: Sequence[str], match: StatementMatch) -> dict[str, Any]:
    out: dict[str, Any] = {
        "SourcePolicyId": names[match.policy_index],
        "SourcePolicyType": "IAM Policy",
        "StatementIndex": match.statement_index,
        "Sid": match.sid,
        "Effect": match.effect,
    }
    if match.failed_condition is not None:
        out["FailedCondition"] = match.failed_condition
    return out


def simulate(
    policies: Mapping[str, str],
    actions: Iterable[str],
    resources: Iterable[str],
    context: Mapping[str, str | Sequence[str]],
) -> list[dict[str, Any]]:
    """IAM's ``EvaluationResults``: one result per action and resource, in that order.

    :param policies: the policy documents by name (the names appear in the results).
    :return: for each, ``EvalActionName``, ``EvalResourceName``, ``EvalDecision``
        (``allowed``, ``explicitDeny``, ``implicitDeny``), ``MatchedStatements`` (the
        statements that decided: every applying Deny, else every applying Allow),
        ``MissingContextValues``, and kdiag's ``StoppedStatements`` (action and resource
        matched, a condition did not hold: ``FailedCondition`` names it).
    :raises PolicyError: a document is malformed.
    """
    names = list(policies)
    documents = [policies[n] for n in names]
    resource_list = list(resources)
    results: list[dict[str, Any]] = []
    for action in actions:
        for resource in resource_list:
            answer = explain(documents, action, resource, context)
            results.append(
                {
                    "EvalActionName": action,
                    "EvalResourceName": resource,
                    "EvalDecision": answer.verdict,
                    "MatchedStatements": [_statement(names, m) for m in answer.matched],
                    "MissingContextValues": list(answer.missing_context_keys),
                    "StoppedStatements": [_statement(names, m) for m in answer.stopped],
                }
            )
    return results
