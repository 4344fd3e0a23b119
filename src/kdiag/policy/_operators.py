"""Condition operators: how one request value is compared with a condition's policy values.

Each operator family turns the policy values of one condition key into a *value test*: a
function ``test(request_value, ctx) -> bool`` that is true when the request value matches at
least one policy value (values listed for one key are OR'd).  Negation, the missing-key rule,
``...IfExists`` and the ``ForAnyValue:``/``ForAllValues:`` qualifiers are applied on top of the
test by :class:`kdiag.policy._document.Condition`; ``Null`` is handled there too.

Parsing a policy value that cannot be what the operator compares (a date that is not ISO 8601
or epoch seconds, a number that is not a number, a bad CIDR) raises :class:`ValueError`, which
validation reports as a :class:`~kdiag.errors.PolicyError` pointing at the field.  A *request*
value that does not parse simply matches nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kdiag.policy._patterns import Context, GlobMode, TextTemplate, glob, parse

__all__ = ("OPERATORS", "Operator", "ValueTest", "build_test", "parse_date", "parse_number")

ValueTest = Callable[[str, Context], bool]


@dataclass(frozen=True, slots=True)
class Operator:
    """A base condition operator (no qualifier, no ``IfExists``)."""

    name: str
    negated: bool
    build: Callable[[Sequence[str], bool], ValueTest] | None
    """``build(policy_values, variables_enabled)``; ``None`` for ``Null``."""


# --- string --------------------------------------------------------------------------------


def _string_equals(values: Sequence[str], variables: bool) -> ValueTest:
    templates = [TextTemplate(parse(v, variables=variables), v) for v in values]
    if all(t.literal is not None for t in templates):
        literals = frozenset(t.literal for t in templates if t.literal is not None)
        return lambda value, ctx: value in literals

    def test(value: str, ctx: Context) -> bool:
        return any(t.resolve(ctx) == value for t in templates)

    return test


def _string_equals_ignore_case(values: Sequence[str], variables: bool) -> ValueTest:
    templates = [TextTemplate(parse(v, variables=variables), v) for v in values]
    if all(t.literal is not None for t in templates):
        literals = frozenset(t.literal.lower() for t in templates if t.literal is not None)
        return lambda value, ctx: value.lower() in literals

    def test(value: str, ctx: Context) -> bool:
        folded = value.lower()
        for template in templates:
            resolved = template.resolve(ctx)
            if resolved is not None and resolved.lower() == folded:
                return True
        return False

    return test


def _glob(mode: str) -> Callable[[Sequence[str], bool], ValueTest]:
    def build(values: Sequence[str], variables: bool) -> ValueTest:
        glob_mode: GlobMode = "arn-condition" if mode == "arn" else "text"
        matchers = [glob(v, glob_mode, variables) for v in values]

        def test(value: str, ctx: Context) -> bool:
            return any(m.matches(value, ctx) for m in matchers)

        return test

    return build


# --- numbers and dates -----------------------------------------------------------------------


def parse_number(text: str) -> Decimal:
    """A finite decimal number, as the ``Numeric*`` operators compare them."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return number


_EPOCH = re.compile(r"-?\d+(\.\d+)?")


def parse_date(text: str) -> dt.datetime:
    """ISO 8601 (``2026-01-31T12:00:00Z``, a bare date, an offset) or epoch seconds; UTC default."""
    stripped = text.strip()
    if _EPOCH.fullmatch(stripped):
        try:
            return dt.datetime.fromtimestamp(float(stripped), dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{text!r} is out of range for a date") from None
    try:
        parsed = dt.datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "Equals": lambda a, b: a == b,
    "NotEquals": lambda a, b: a == b,  # negated on top
    "LessThan": lambda a, b: a < b,  # type: ignore[operator]  # numbers or datetimes only
    "LessThanEquals": lambda a, b: a <= b,  # type: ignore[operator]  # numbers or datetimes only
    "GreaterThan": lambda a, b: a > b,  # type: ignore[operator]  # numbers or datetimes only
    "GreaterThanEquals": lambda a, b: a >= b,  # type: ignore[operator]  # numbers or datetimes only
}


def _ordered(
    parser: Callable[[str], object], relation: str
) -> Callable[[Sequence[str], bool], ValueTest]:
    compare = _COMPARE[relation]

    def build(values: Sequence[str], variables: bool) -> ValueTest:
        bounds = [parser(v) for v in values]

        def test(value: str, ctx: Context) -> bool:
            try:
                got = parser(value)
            except ValueError:
                return False
            return any(compare(got, bound) for bound in bounds)

        return test

    return build


# --- bool, binary, ip ------------------------------------------------------------------------


def _bool(values: Sequence[str], variables: bool) -> ValueTest:
    # The condition-operators page lists policy variables as supported for Bool, so a value
    # may be a variable (resolved per request); a literal value must be "true" or "false".
    templates = [TextTemplate(parse(v, variables=variables), v) for v in values]
    for template in templates:
        literal = template.literal
        if literal is not None and literal.lower() not in ("true", "false"):
            raise ValueError(f'Bool takes "true" or "false", not {literal!r}')
    # Past the check, Bool is a case-insensitive equality ("True" == "true").
    return _string_equals_ignore_case(values, variables)


def _binary(values: Sequence[str], variables: bool) -> ValueTest:
    for v in values:
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"BinaryEquals takes base64-encoded values, not {v!r}") from None
    literals = frozenset(values)
    return lambda value, ctx: value in literals


def _ip(values: Sequence[str], variables: bool) -> ValueTest:
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for v in values:
        try:
            networks.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 or IPv6 address or CIDR range") from None

    def test(value: str, ctx: Context) -> bool:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return False
        return any(address in network for network in networks)

    return test


def _table() -> dict[str, Operator]:
    ops: list[Operator] = [
        Operator("StringEquals", False, _string_equals),
        Operator("StringNotEquals", True, _string_equals),
        Operator("StringEqualsIgnoreCase", False, _string_equals_ignore_case),
        Operator("StringNotEqualsIgnoreCase", True, _string_equals_ignore_case),
        Operator("StringLike", False, _glob("text")),
        Operator("StringNotLike", True, _glob("text")),
        Operator("ArnEquals", False, _glob("arn")),
        Operator("ArnLike", False, _glob("arn")),
        Operator("ArnNotEquals", True, _glob("arn")),
        Operator("ArnNotLike", True, _glob("arn")),
        Operator("Bool", False, _bool),
        Operator("BinaryEquals", False, _binary),
        Operator("IpAddress", False, _ip),
        Operator("NotIpAddress", True, _ip),
        Operator("Null", False, None),
    ]
    for family, parser in (("Numeric", parse_number), ("Date", parse_date)):
        for relation in _COMPARE:
            ops.append(
                Operator(family + relation, relation == "NotEquals", _ordered(parser, relation))
            )
    return {op.name: op for op in ops}


OPERATORS: dict[str, Operator] = _table()
"""Every base operator by its canonical (case-sensitive) name."""


@functools.lru_cache(maxsize=4096)
def build_test(operator: str, values: tuple[str, ...], variables: bool) -> ValueTest:
    """The value test of base operator ``operator`` (not ``Null``), shared between policies."""
    build = OPERATORS[operator].build
    if build is None:
        raise ValueError(f"{operator} has no value test")
    return build(values, variables)
