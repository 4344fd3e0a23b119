"""principalmapper 1.1.5 as an independent oracle, imported through a Python 3.10+ shim.

principalmapper/util/case_insensitive_dict.py does ``from collections import Mapping,
MutableMapping, OrderedDict``; those ABC aliases left ``collections`` in Python 3.10.  The
fixture puts them back only while principalmapper imports (its modules keep their own
references), then removes them again, so no other test sees a patched ``collections``.
Nothing in site-packages is modified.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib
from types import ModuleType

import pytest

_ALIASES = ("Mapping", "MutableMapping")


def import_principalmapper_simulation() -> ModuleType:
    added = [name for name in _ALIASES if not hasattr(collections, name)]
    for name in added:
        setattr(collections, name, getattr(collections.abc, name))
    try:
        return importlib.import_module("principalmapper.querying.local_policy_simulation")
    finally:
        for name in added:
            delattr(collections, name)


@pytest.fixture(scope="session")
def pmapper() -> ModuleType:
    """``principalmapper.querying.local_policy_simulation``."""
    return import_principalmapper_simulation()
