"""Parse and validate an IAM policy document into immutable, precompiled objects.

:func:`validate` is the only way in: it checks the grammar (IAM User Guide, "IAM JSON policy
element reference" and "Grammar of the IAM JSON policy language") and compiles every pattern
and condition once, so evaluation never parses anything.  Any problem raises
:class:`~kdiag.errors.PolicyError` whose ``path`` names the statement and field, for example
``Statement[1].Condition.StringEquals``.

Hostile documents are bounded before anything is built from them: JSON text longer than
:data:`MAX_DOCUMENT_CHARS` or nested deeper than :data:`MAX_DEPTH` is refused before it is
parsed (Python's JSON parser recurses, so 100,000 nested brackets would otherwise end in a
``RecursionError``), as are duplicate keys, ``NaN``/``Infinity`` and numbers too long for
Python to convert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kdiag.errors import PolicyError
from kdiag.policy._operators import OPERATORS, ValueTest, build_test
from kdiag.policy._patterns import Context, GlobMatcher, Variable, glob, parse

__all__ = (
    "MAX_DEPTH",
    "MAX_DOCUMENT_CHARS",
    "USER_POLICY_SIZE_LIMIT",
    "VERSIONS",
    "Condition",
    "Policy",
    "Statement",
    "policy_size",
    "validate",
)

VERSIONS = ("2012-10-17", "2008-10-17")
"""Accepted ``Version`` values; policy variables exist only in ``2012-10-17``."""

_STATEMENT_FIELDS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_SID = re.compile(r"[A-Za-z0-9]*")

MAX_DOCUMENT_CHARS = 131_072
"""The longest policy text :func:`validate` reads, whitespace included.  IAM's own quotas
are far below it (6,144 characters for a managed policy, 2,048 for all of a user's inline
policies together, whitespace not counted); this bound only keeps a hostile document from
costing memory and time before it is refused."""
USER_POLICY_SIZE_LIMIT = 2048
"""IAM's quota on all of one user's inline policies together, in :func:`policy_size`
characters ("IAM and AWS STS quotas": user policy size)."""
MAX_DEPTH = 32
"""The deepest nesting of JSON objects and arrays :func:`validate` reads.  A valid policy
needs six (document, Statement list, statement, Condition, operator, value list)."""
# A JSON string or a bracket outside strings.  Possessive, and a string left open (or ending
# in a lone backslash) runs to the end of the text: no match ever fails after scanning ahead,
# so the scan is linear (a string that must close made '"\\"\\"\\"...' quadratic: 56 s).
_STRUCTURE = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def policy_size(text: str) -> int:
    """The size IAM counts against its policy quotas: characters, not counting whitespace."""
    return len(text) - sum(len(m) for m in _JSON_WHITESPACE.findall(text))


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition key under one operator: ``{"StringEquals": {"aws:username": [...]}}``."""

    operator: str
    """As written, e.g. ``ForAnyValue:StringLikeIfExists``."""
    key: str
    """Lower-cased: condition key names are case-insensitive."""
    values: tuple[str, ...]
    qualifier: Literal["ForAnyValue", "ForAllValues"] | None
    if_exists: bool
    negated: bool
    test: ValueTest | None
    """``None`` for ``Null``."""
    key_name: str = ""
    """The key as written in the policy (``key`` is lower-cased)."""

    def holds(self, ctx: Context) -> bool:
        raw = ctx.get(self.key)
        values: tuple[str, ...] = () if raw is None else (raw,) if isinstance(raw, str) else raw
        if self.test is None:  # Null: "true" means the key is absent (or empty)
            absent = not values or values == ("",)
            return any((v == "true") == absent for v in self.values)
        if not values:
            # The missing-key rule: false, except IfExists (true) and negated operators
            # (true); ForAllValues is true and ForAnyValue false for a missing or empty key.
            if self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return self.if_exists
            return self.if_exists or self.negated
        test = self.test
        if self.qualifier is None:
            hit = any(test(v, ctx) for v in values)
            return not hit if self.negated else hit
        # For the set qualifiers an empty string is part of a "null data set".
        values = tuple(v for v in values if v)
        if not values:
            return self.qualifier == "ForAllValues" or self.if_exists
        if self.qualifier == "ForAnyValue":
            return any(test(v, ctx) != self.negated for v in values)
        return all(test(v, ctx) != self.negated for v in values)


@dataclass(frozen=True, slots=True)
class Statement:
    """One compiled statement; ``index`` is its position in the policy's ``Statement`` list."""

    index: int
    sid: str | None
    effect: Literal["Allow", "Deny"]
    actions: tuple[GlobMatcher, ...]
    not_action: bool
    resources: tuple[GlobMatcher, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    @property
    def label(self) -> str:
        """``statement "Sid"`` when it has a Sid, else ``statement[index]``."""
        return f'statement "{self.sid}"' if self.sid else f"statement[{self.index}]"

    def targets(self, action: str, resource: str, ctx: Context) -> bool:
        """True when action and resource match, whatever the conditions say."""
        if any(m.matches(action, ctx) for m in self.actions) == self.not_action:
            return False
        return any(m.matches(resource, ctx) for m in self.resources) != self.not_resource

    def applies(self, action: str, resource: str, ctx: Context) -> bool:
        """True when action, resource and every condition match (``action`` lower-cased).

        :meth:`targets` and the conditions, inlined: this runs for every statement of every
        request."""
        if any(m.matches(action, ctx) for m in self.actions) == self.not_action:
            return False
        if any(m.matches(resource, ctx) for m in self.resources) == self.not_resource:
            return False
        return all(c.holds(ctx) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated, compiled policy document."""

    version: str
    id: str | None
    statements: tuple[Statement, ...]
    source: str
    """The document as compact JSON (what was validated)."""


def validate(document: str | bytes | Mapping[str, Any] | Policy) -> Policy:
    """Parse, check and compile one policy document; raise PolicyError when it is malformed."""
    if isinstance(document, Policy):
        return document
    doc = _top_level(document)
    version = doc.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise PolicyError(
            f"Version must be {VERSIONS[0]!r} or {VERSIONS[1]!r}, not {version!r}", path="Version"
        )
    policy_id = doc.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise PolicyError("Id must be a string", path="Id")
    statements = _statements(doc, variables=version == "2012-10-17")
    try:
        source = json.dumps(doc, separators=(",", ":"))
    except (TypeError, ValueError):  # a Mapping that is not plain JSON data
        source = repr(doc)
    if len(source) > MAX_DOCUMENT_CHARS:
        raise PolicyError(_too_long(len(source)))
    return Policy(version, policy_id, statements, source)


def _top_level(document: object) -> Mapping[str, Any]:
    """The document as a JSON object with only IAM's top-level fields, its size bounded."""
    doc: Any
    if isinstance(document, (str, bytes)):
        doc = _load_json(document)
    elif isinstance(document, Mapping):
        _check_depth(document)
        doc = document
    else:
        raise PolicyError(
            f"a policy document must be a JSON string or an object, not {type(document).__name__}"
        )
    if not isinstance(doc, Mapping):
        raise PolicyError("the policy document must be a JSON object")
    for field in doc:
        if field not in ("Version", "Id", "Statement"):
            raise PolicyError(f'unknown top-level field "{field}"', path=str(field))
    return doc


def _statements(doc: Mapping[str, Any], *, variables: bool) -> tuple[Statement, ...]:
    """Every statement, compiled; one statement or a non-empty list, Sids unique."""
    if "Statement" not in doc:
        raise PolicyError("the policy has no Statement", path="Statement")
    raw = doc["Statement"]
    items: Sequence[Any]
    if isinstance(raw, Mapping):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise PolicyError("Statement must be an object or a list of objects", path="Statement")
    if not items:
        raise PolicyError("Statement must not be empty", path="Statement")
    statements: list[Statement] = []
    sids: dict[str, int] = {}
    for index, item in enumerate(items):
        statement = _statement(item, index, variables=variables)
        if statement.sid:
            if statement.sid in sids:
                raise PolicyError(
                    f'Sid "{statement.sid}" is already used by Statement[{sids[statement.sid]}]'
                    " (Sids must be unique within a policy)",
                    path=f"Statement[{index}].Sid",
                )
            sids[statement.sid] = index
        statements.append(statement)
    return tuple(statements)


def _too_long(length: int) -> str:
    return f"the document is {length:,} characters long; at most {MAX_DOCUMENT_CHARS:,} are read"


def _too_deep() -> str:
    return f"the document is nested more than {MAX_DEPTH} levels deep"


def _check_nesting(text: str) -> None:
    """Refuse text nested deeper than MAX_DEPTH, without recursing (brackets inside strings
    do not count)."""
    depth = 0
    for match in _STRUCTURE.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise PolicyError(_too_deep())
        elif bracket in "]}":
            depth -= 1


def _check_depth(document: Mapping[str, Any]) -> None:
    """The same bound for a document given as Python objects (walked without recursion)."""
    todo: list[tuple[Any, int]] = [(document, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise PolicyError(_too_deep())
        if isinstance(value, Mapping):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend((v, depth + 1) for v in value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PolicyError(f'duplicate key "{key}" in a JSON object')
        out[key] = value
    return out


def _not_a_number(name: str) -> Any:
    raise PolicyError(f"not valid JSON: {name} is not a JSON number")


def _load_json(raw: str | bytes) -> Any:
    if len(raw) > MAX_DOCUMENT_CHARS:
        raise PolicyError(_too_long(len(raw)))
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise PolicyError("not valid JSON: the document is not UTF-8") from exc
    if _SURROGATE.search(text):  # undecodable bytes that reached a str (surrogateescape)
        raise PolicyError("not valid JSON: the document is not UTF-8")
    _check_nesting(text)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except ValueError as exc:  # an integer longer than Python converts (4,300 digits)
        raise PolicyError(f"not valid JSON: {exc}") from exc
    except RecursionError as exc:  # not reached after _check_nesting; kept as a backstop
        raise PolicyError(_too_deep()) from exc


class _Where:
    """Builds error paths and messages for one statement."""

    def __init__(self, index: int, sid: str | None) -> None:
        self.index = index
        self.sid = sid

    def error(self, field: str, message: str) -> PolicyError:
        suffix = f' (Sid "{self.sid}")' if self.sid else ""
        path = f"Statement[{self.index}]" + (f".{field}" if field else "")
        return PolicyError(message + suffix, path=path)


def _statement(item: Any, index: int, *, variables: bool) -> Statement:
    if not isinstance(item, Mapping):
        raise PolicyError("a statement must be a JSON object", path=f"Statement[{index}]")
    sid = item.get("Sid")
    where = _Where(index, sid if isinstance(sid, str) else None)
    if sid is not None and (not isinstance(sid, str) or not _SID.fullmatch(sid)):
        raise where.error("Sid", "Sid must be a string of letters and digits only")
    for field in item:
        if field in ("Principal", "NotPrincipal"):
            raise where.error(field, f"{field} is not allowed in an identity policy")
        if field not in _STATEMENT_FIELDS:
            raise where.error(str(field), f'unknown statement field "{field}"')
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        if effect is None:
            raise where.error("Effect", 'the statement has no Effect ("Allow" or "Deny")')
        raise where.error("Effect", f'Effect must be "Allow" or "Deny", not {effect!r}')
    action_field = _exactly_one(item, "Action", "NotAction", where)
    resource_field = _exactly_one(item, "Resource", "NotResource", where)
    actions = tuple(
        glob(a.lower(), "text", False) for a in _actions(item[action_field], action_field, where)
    )
    resources = tuple(
        _resource(r, resource_field, where, variables)
        for r in _strings(item[resource_field], resource_field, where)
    )
    conditions = _conditions(item.get("Condition"), where, variables)
    return Statement(
        index=index,
        sid=sid or None,
        effect=effect,
        actions=actions,
        not_action=action_field == "NotAction",
        resources=resources,
        not_resource=resource_field == "NotResource",
        conditions=conditions,
    )


def _exactly_one(item: Mapping[str, Any], name: str, negated: str, where: _Where) -> str:
    if name in item and negated in item:
        raise where.error(name, f"a statement cannot have both {name} and {negated}")
    if name in item:
        return name
    if negated in item:
        return negated
    raise where.error(name, f"the statement has neither {name} nor {negated}")


def _strings(value: Any, field: str, where: _Where) -> list[str]:
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, list) and value:
        values = value
    else:
        raise where.error(field, "must be a string or a non-empty list of strings")
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v:
            raise where.error(f"{field}[{i}]", "must be a non-empty string")
    return values


def _actions(value: Any, field: str, where: _Where) -> list[str]:
    actions = _strings(value, field, where)
    for i, action in enumerate(actions):
        prefix, colon, name = action.partition(":")
        if action != "*" and (not colon or not prefix or not name):
            raise where.error(
                f"{field}[{i}]" if not isinstance(value, str) else field,
                f'action {action!r} must be "*" or "service:action"'
                ' (e.g. "ec2:SendDiagnosticInterrupt")',
            )
    return actions


def _resource(text: str, field: str, where: _Where, variables: bool) -> GlobMatcher:
    if text != "*" and not text.startswith("arn:"):
        raise where.error(field, f'resource {text!r} must be an ARN ("arn:...") or "*"')
    try:
        parts = parse(text, variables=variables)
    except ValueError as exc:
        raise where.error(field, str(exc)) from exc
    colons = 0
    for part in parts:
        if isinstance(part, str):
            colons += part.count(":")
        elif isinstance(part, Variable) and colons < 5:
            # "You can use a policy variable in the Resource element, but only in the resource
            # portion of the ARN. This portion of the ARN appears after the fifth colon."
            raise where.error(
                field,
                f"policy variable {part.text} is before the fifth colon of {text!r}: variables"
                " are allowed only in the resource part of an ARN",
            )
    return glob(text, "arn", variables)


def _conditions(block: Any, where: _Where, variables: bool) -> tuple[Condition, ...]:
    if block is None:
        return ()
    if not isinstance(block, Mapping):
        raise where.error("Condition", "Condition must be an object of operators")
    out: list[Condition] = []
    for operator, keys in block.items():
        field = f"Condition.{operator}"
        qualifier, base, if_exists = _split_operator(operator, where, field)
        spec = OPERATORS[base]
        if not isinstance(keys, Mapping):
            raise where.error(field, "must be an object mapping condition keys to values")
        for key, raw in keys.items():
            if not isinstance(key, str) or ":" not in key.strip(":"):
                raise where.error(
                    field, f'condition key {key!r} must be "service:name" (e.g. "aws:SourceIp")'
                )
            values = _condition_values(raw, where, field, key)
            test: ValueTest | None = None
            if spec.build is None:
                for v in values:
                    if v.lower() not in ("true", "false"):
                        raise where.error(field, f'Null takes "true" or "false", not {v!r}')
                values = tuple(v.lower() for v in values)
            else:
                try:
                    test = build_test(base, values, variables)
                except ValueError as exc:
                    raise where.error(field, f'{exc} (key "{key}")') from exc
            out.append(
                Condition(
                    operator=operator,
                    key=key.lower(),
                    values=values,
                    qualifier=qualifier,
                    if_exists=if_exists,
                    negated=spec.negated,
                    test=test,
                    key_name=key,
                )
            )
    return tuple(out)


def _split_operator(
    operator: str, where: _Where, field: str
) -> tuple[Literal["ForAnyValue", "ForAllValues"] | None, str, bool]:
    qualifier: Literal["ForAnyValue", "ForAllValues"] | None = None
    base = operator
    if ":" in operator:
        prefix, _, base = operator.partition(":")
        if prefix == "ForAnyValue":
            qualifier = "ForAnyValue"
        elif prefix == "ForAllValues":
            qualifier = "ForAllValues"
        else:
            raise where.error(
                field, f'unknown set qualifier "{prefix}:" (use ForAnyValue: or ForAllValues:)'
            )
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    if base not in OPERATORS:
        hint = next((name for name in OPERATORS if name.lower() == base.lower()), None)
        message = f'unknown condition operator "{operator}"'
        if hint:
            message += f' (operators are case-sensitive: "{hint}")'
        raise where.error(field, message)
    if base == "Null" and (if_exists or qualifier):
        raise where.error(field, "Null takes neither IfExists nor a set qualifier")
    return qualifier, base, if_exists


def _condition_values(raw: Any, where: _Where, field: str, key: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise where.error(field, f'value must list at least one value (key "{key}")')
    values: list[str] = []
    for item in items:
        if isinstance(item, bool):
            values.append("true" if item else "false")
        elif isinstance(item, str):
            values.append(item)
        elif isinstance(item, (int, float)):
            values.append(json.dumps(item))
        else:
            raise where.error(field, f'value must be a string or list of strings (key "{key}")')
    return tuple(values)
