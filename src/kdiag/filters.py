"""EC2-style filters over the inventory: ``Name`` plus values, ``*`` and ``?`` wildcards.

A filter matches an instance when any of its values does (OR); an instance passes a list of
filters when every filter matches (AND), as ``DescribeInstances`` does.  The EC2 endpoint
(``Filter.N.Name``/``Filter.N.Value.M``), the ``/v1`` API (``filter=name=v1,v2``) and the
inventory queries all build :class:`Filter` objects and ask :func:`match_filters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdiag.backends.base import InstanceState
from kdiag.errors import InvalidParameterValue
from kdiag.policy._patterns import glob

if TYPE_CHECKING:  # annotations only: the store's inventory queries import this module
    from kdiag.store.records import Instance

__all__ = ("MAX_FILTERS", "MAX_FILTER_VALUES", "SUPPORTED_FILTERS", "Filter", "match_filters")

#: The most filters in one request, and values in one filter (bounds on the work an
#: unprivileged caller can ask for; the EC2 endpoint's 1000 parameters bound it there too).
MAX_FILTERS = 50
MAX_FILTER_VALUES = 200


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter: a name and the values any of which may match.

    :raises InvalidParameterValue: a name not in :data:`SUPPORTED_FILTERS`.
    """

    name: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.values) <= MAX_FILTER_VALUES:
            raise InvalidParameterValue(
                f"filter {self.name[:64]!r} takes 1 to {MAX_FILTER_VALUES} values"
            )
        if not (self.name in _FIELDS or self.name in _OTHERS or self.name.startswith("tag:")):
            raise InvalidParameterValue(
                f"The filter '{self.name}' is invalid (supported: {', '.join(SUPPORTED_FILTERS)})"
            )


#: The filters over one field of an instance, and how to read that field.
_FIELDS: dict[str, Callable[[Instance], str]] = {
    "instance-id": lambda i: i.id,
    "instance-state-name": lambda i: i.state,
    "availability-zone": lambda i: i.availability_zone,
    "architecture": lambda i: i.arch,
    "region": lambda i: i.region,
    "backend": lambda i: i.backend,
}

_OTHERS = ("instance-state-code", "tag-key", "tag-value")
_NO_VARIABLES: dict[str, str] = {}
SUPPORTED_FILTERS = (*_FIELDS, *_OTHERS, "tag:<key>")


def _any_match(values: Iterable[str], candidates: Iterable[str]) -> bool:
    # The policy engine's wildcard matcher (``*`` any run, ``?`` one character): linear in
    # the value for any number of ``*``.  A regular expression built by replacing ``*`` with
    # ``.*`` backtracks: ``*-*-*-...*X`` against a long tag value stalled the server.
    matchers = [glob(v, "text", False) for v in values]
    candidates = list(candidates)
    return any(m.matches(c, _NO_VARIABLES) for m in matchers for c in candidates)


def _candidates(instance: Instance, name: str) -> list[str]:
    """The values of ``instance`` that filter ``name`` looks at."""
    if name.startswith("tag:"):
        key = name[4:]
        return [instance.tags[key]] if key in instance.tags else []
    if name == "tag-key":
        return list(instance.tags)
    if name == "tag-value":
        return list(instance.tags.values())
    return [_FIELDS[name](instance)]


def match_filters(instance: Instance, filters: Sequence[Filter]) -> bool:
    """True when ``instance`` passes every filter (AND), each filter by any value (OR)."""
    for f in filters:
        if f.name == "instance-state-code":  # a number: compared exactly, no wildcards
            ok = str(InstanceState(instance.state).code) in f.values
        else:
            ok = _any_match(f.values, _candidates(instance, f.name))
        if not ok:
            return False
    return True
