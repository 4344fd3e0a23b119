"""Policy strings: wildcards, policy variables and their escapes, compiled once.

A policy string is parsed into a tuple of parts: literal text, the ``*`` and ``?`` wildcards,
and (in ``2012-10-17`` policies only) policy variables ``${key}`` / ``${key, 'default'}``.
The escapes ``${*}``, ``${?}`` and ``${$}`` become the literal characters ``*``, ``?``, ``$``.

Three kinds of matcher are built from the parts:

* :class:`TextTemplate` (``StringEquals`` and friends): wildcards are literal characters;
  ``resolve(ctx)`` gives the final string, or ``None`` when a variable cannot be resolved.
* :class:`GlobMatcher` in ``"text"`` mode (``StringLike``, actions): ``*`` is any run of
  characters, ``?`` exactly one.
* :class:`GlobMatcher` in ``"arn"`` mode (the ``Resource`` element): the same, but inside
  the first five colon-separated ARN segments a wildcard stays inside its segment, except a
  ``*`` that ends a segment, which may run across colons (IAM User Guide, "Using wildcards in
  resource ARNs").
* :class:`GlobMatcher` in ``"arn-condition"`` mode (``ArnEquals``/``ArnLike`` and their
  negations): "each of the six colon-delimited components of the ARN is checked separately".

Regular expressions are built from :func:`re.escape`'d literal text, never by string
replacement, so ``.``, ``[`` or ``+`` in a pattern are plain characters.  Text substituted for a
variable is literal too: a tag value containing ``*`` is not a wildcard.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = (
    "QMARK",
    "STAR",
    "Context",
    "ContextValue",
    "GlobMatcher",
    "GlobMode",
    "Part",
    "TextTemplate",
    "Variable",
    "glob",
    "parse",
)

ContextValue: TypeAlias = "str | tuple[str, ...]"
Context: TypeAlias = "Mapping[str, ContextValue]"
"""A request context with lower-cased keys, as :func:`kdiag.policy.evaluate` prepares it."""


class _Wildcard:
    __slots__ = ("char",)

    def __init__(self, char: str) -> None:
        self.char = char

    def __repr__(self) -> str:
        return self.char


STAR = _Wildcard("*")
QMARK = _Wildcard("?")


@dataclass(frozen=True, slots=True)
class Variable:
    """``${name}`` or ``${name, 'default'}``; ``name`` is lower-cased (keys ignore case)."""

    name: str
    default: str | None
    text: str

    def resolve(self, ctx: Context) -> str | None:
        value = ctx.get(self.name)
        if isinstance(value, str):
            return value
        # Missing, or multivalued: a multivalued key cannot be used as a variable.
        return self.default


Part: TypeAlias = "str | _Wildcard | Variable"

_ESCAPES = {"${*}": "*", "${?}": "?", "${$}": "$"}
_NAME = re.compile(r"[^\s${}',]+")


_SPECIAL = re.compile(r"[*?]")
_SPECIAL_OR_VARIABLE = re.compile(r"[*?]|\$\{")


def parse(text: str, *, variables: bool) -> tuple[Part, ...]:
    """Split ``text`` into literal runs, wildcards and (when ``variables``) policy variables.

    Raises :class:`ValueError` with a short description for a malformed ``${...}``.
    """
    special = _SPECIAL_OR_VARIABLE if variables else _SPECIAL
    parts: list[Part] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        match = special.search(text, i)
        if match is None:
            literal.append(text[i:])
            break
        start = match.start()
        if start > i:
            literal.append(text[i:start])
        piece = match.group()
        if piece == "${":
            escape = _ESCAPES.get(text[start : start + 4])
            if escape is not None:
                literal.append(escape)
                i = start + 4
                continue
            variable, i = _parse_variable(text, start)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(variable)
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(STAR if piece == "*" else QMARK)
        i = start + 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _parse_variable(text: str, start: int) -> tuple[Variable, int]:
    """Parse ``${name}`` or ``${name, 'default'}`` at ``start``; return it and the next index."""
    i = start + 2
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    match = _NAME.match(text, i)
    if match is None:
        raise ValueError(f"malformed policy variable at {text[start : start + 20]!r}")
    name = match.group()
    i = match.end()
    while i < n and text[i] == " ":
        i += 1
    default: str | None = None
    if i < n and text[i] == ",":
        i += 1
        while i < n and text[i] == " ":
            i += 1
        if i >= n or text[i] != "'":
            raise ValueError(
                f"policy variable ${{{name}, ...}}: the default value must be in single quotes"
            )
        i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                raise ValueError(f"policy variable ${{{name}, ...}}: unterminated default value")
            if text[i] == "'":
                if text.startswith("''", i):
                    chars.append("'")
                    i += 2
                    continue
                i += 1
                break
            chars.append(text[i])
            i += 1
        default = "".join(chars)
        while i < n and text[i] == " ":
            i += 1
    if i >= n or text[i] != "}":
        raise ValueError(f"unterminated policy variable at {text[start : start + 20]!r}")
    i += 1
    return Variable(name.lower(), default, text[start:i]), i


def _has_variables(parts: tuple[Part, ...]) -> bool:
    return any(isinstance(p, Variable) for p in parts)


def _substitute(parts: tuple[Part, ...], ctx: Context) -> tuple[str | _Wildcard, ...] | None:
    out: list[str | _Wildcard] = []
    for part in parts:
        if isinstance(part, Variable):
            value = part.resolve(ctx)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(part)
    return tuple(out)


class TextTemplate:
    """A value compared literally (wildcard characters are plain text)."""

    __slots__ = ("_parts", "literal", "text")

    def __init__(self, parts: tuple[Part, ...], text: str) -> None:
        self.text = text
        self._parts = parts
        self.literal: str | None = (
            None if _has_variables(parts) else "".join(_as_text(p) for p in parts)
        )

    def resolve(self, ctx: Context) -> str | None:
        """The string after variable substitution, or ``None`` when a variable has no value."""
        if self.literal is not None:
            return self.literal
        resolved = _substitute(self._parts, ctx)
        if resolved is None:
            return None
        return "".join(p if isinstance(p, str) else p.char for p in resolved)


def _as_text(part: Part) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Variable):  # pragma: no cover - callers check _has_variables first
        return part.text
    return part.char


GlobMode = Literal["text", "arn", "arn-condition"]
"""``text``: plain glob; ``arn``: the Resource element; ``arn-condition``: the Arn* operators."""


class GlobMatcher:
    """A wildcard pattern, compiled once when it has no variables.

    ``arn-condition`` follows the Arn* operators' rule that "each of the six colon-delimited
    components of the ARN is checked separately": a wildcard never runs across a colon in the
    first five components, and a pattern with fewer than six components matches nothing
    (except a lone ``*``, which matches any value).
    """

    __slots__ = ("_any", "_exact", "_match", "_mode", "_never", "_parts", "text")

    def __init__(self, parts: tuple[Part, ...], text: str, mode: GlobMode) -> None:
        self.text = text
        self._mode: GlobMode = mode
        self._parts = parts
        self._match: Callable[[str], bool] | None = None
        self._exact: str | None = None
        self._any = parts == (STAR,)
        self._never = False
        if not _has_variables(parts):
            if mode == "arn-condition" and not _six_components(parts):
                self._never = True
            elif not any(isinstance(p, _Wildcard) for p in parts):
                self._exact = "".join(p for p in parts if isinstance(p, str))
            else:
                self._match = _compile(parts, mode)

    def matches(self, value: str, ctx: Context) -> bool:
        if self._any:
            return True
        if self._never:
            return False
        if self._exact is not None:
            return value == self._exact
        if self._match is not None:
            return self._match(value)
        resolved = _substitute(self._parts, ctx)
        if resolved is None:
            return False
        if self._mode == "arn-condition" and not _six_components(resolved):
            return False
        return _compile(resolved, self._mode)(value)


def _six_components(parts: tuple[str | _Wildcard, ...] | tuple[Part, ...]) -> bool:
    return sum(p.count(":") for p in parts if isinstance(p, str)) >= 5


# Tokens of a compiled glob: a literal run, one character (``?``) or a run of any length
# (``*``), the last two either "any character" or "any character but a colon".
_LITERAL, _ONE, _ONE_NO_COLON, _RUN, _RUN_NO_COLON = range(5)
_Unit: TypeAlias = "tuple[int, str]"
_REGEX = {_ONE: ".", _ONE_NO_COLON: "[^:]", _RUN: ".*", _RUN_NO_COLON: "[^:]*"}
_FEW_RUNS = 2
"""Up to this many ``*`` a pattern is one plain regular expression.  More make a backtracking
regex super-linear in the value's length (``*a*a*a*a*b`` against sixty ``a``: seconds; eight
of them: minutes), so such patterns are matched in linear time instead (see
:func:`_compile`)."""


def _tokens(parts: tuple[str | _Wildcard, ...] | tuple[Part, ...], mode: GlobMode) -> list[_Unit]:
    tokens: list[_Unit] = []
    # ARN segment index: 0 "arn", 1 partition, 2 service, 3 region, 4 account, 5 resource.
    segment = 0
    for index, part in enumerate(parts):
        if isinstance(part, str):
            tokens.append((_LITERAL, part))
            if mode != "text" and segment < 5:
                segment = min(5, segment + part.count(":"))
            continue
        if isinstance(part, Variable):  # pragma: no cover - substituted before we get here
            raise TypeError("unsubstituted variable")
        if mode == "text" or segment >= 5:
            kind = _RUN if part is STAR else _ONE
        elif part is QMARK:
            kind = _ONE_NO_COLON
        elif mode == "arn-condition":
            kind = _RUN_NO_COLON
        else:
            # Resource element: "If the * wildcard is the last character of a resource ARN
            # segment, it can expand to match beyond the colon boundaries."
            following = parts[index + 1] if index + 1 < len(parts) else None
            ends_segment = following is None or (
                isinstance(following, str) and following.startswith(":")
            )
            kind = _RUN if ends_segment else _RUN_NO_COLON
        if kind in (_RUN, _RUN_NO_COLON) and tokens and tokens[-1][0] in (_RUN, _RUN_NO_COLON):
            # "**" is "*"; a run that may cross colons absorbs one that may not.
            tokens[-1] = (min(kind, tokens[-1][0]), "")
            continue
        tokens.append((kind, ""))
    return tokens


def _piece(token: _Unit) -> str:
    kind, text = token
    return re.escape(text) if kind == _LITERAL else _REGEX[kind]


@functools.lru_cache(maxsize=4096)
def _compile(
    parts: tuple[str | _Wildcard, ...] | tuple[Part, ...], mode: GlobMode
) -> Callable[[str], bool]:
    """A full-match test for a pattern without variables.

    * Up to :data:`_FEW_RUNS` runs: one regular expression (the common case; C speed).
    * More runs, all of which may cross colons: each fixed-width piece between two runs is
      taken at its leftmost place after the previous one, in an atomic group, so the regex
      never backtracks into it.  That is exact: the pieces are fixed-width and the gaps
      take any text, so the leftmost place leaves the most room for the rest.
    * More runs, some of which stop at a colon: a position-set (Thompson) simulation,
      O(len(value) * len(pattern)).
    """
    tokens = _tokens(parts, mode)
    runs = [i for i, (kind, _) in enumerate(tokens) if kind in (_RUN, _RUN_NO_COLON)]
    if len(runs) <= _FEW_RUNS:
        regex = re.compile("".join(_piece(t) for t in tokens), re.DOTALL)
        return lambda value: regex.fullmatch(value) is not None
    if all(tokens[i][0] == _RUN for i in runs):
        pieces = ["".join(_piece(t) for t in tokens[: runs[0]])]
        for start, end in itertools.pairwise(runs):
            pieces.append(f"(?>.*?{''.join(_piece(t) for t in tokens[start + 1 : end])})")
        pieces.append(".*" + "".join(_piece(t) for t in tokens[runs[-1] + 1 :]))
        regex = re.compile("".join(pieces), re.DOTALL)
        return lambda value: regex.fullmatch(value) is not None
    return functools.partial(_simulate, tuple(_steps(tokens)))


def _steps(tokens: list[_Unit]) -> list[tuple[int, str]]:
    """One step per pattern character: literal characters apart."""
    steps: list[tuple[int, str]] = []
    for kind, text in tokens:
        if kind == _LITERAL:
            steps.extend((_LITERAL, c) for c in text)
        else:
            steps.append((kind, ""))
    return steps


def _simulate(steps: tuple[tuple[int, str], ...], value: str) -> bool:
    end = len(steps)

    def closure(states: set[int]) -> set[int]:
        todo = list(states)
        while todo:  # a run may match nothing: being before it is being after it too
            i = todo.pop()
            if i < end and steps[i][0] in (_RUN, _RUN_NO_COLON) and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    current = closure({0})
    for char in value:
        following: set[int] = set()
        for i in current:
            if i == end:
                continue
            kind, text = steps[i]
            if kind == _LITERAL:
                if char == text:
                    following.add(i + 1)
            elif kind in (_ONE, _RUN) or char != ":":
                following.add(i if kind in (_RUN, _RUN_NO_COLON) else i + 1)
        if not following:
            return False
        current = closure(following)
    return end in current


@functools.lru_cache(maxsize=4096)
def glob(text: str, mode: GlobMode, variables: bool) -> GlobMatcher:
    """A shared, compiled matcher for ``text`` (matchers are immutable, so policies share them).

    Raises :class:`ValueError` for a malformed policy variable.
    """
    return GlobMatcher(parse(text, variables=variables), text, mode)
