"""The public surface of ``kdiag`` and ``kdiag.errors`` cannot drift silently, and each error
class carries its own code and status."""

import inspect
import re

import pytest

import kdiag
import kdiag.errors

ERRORS = [getattr(kdiag.errors, name) for name in kdiag.errors.__all__]


def _public_names(module: object) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    )


def test_all_lists_every_public_name_sorted():
    assert kdiag.__all__ == sorted(kdiag.__all__)
    assert sorted(set(kdiag.__all__) - {"__version__"}) == _public_names(kdiag)


def test_errors_all_matches_module():
    assert sorted(kdiag.errors.__all__) == _public_names(kdiag.errors)


def test_every_error_is_reexported():
    for name in kdiag.errors.__all__:
        assert getattr(kdiag, name) is getattr(kdiag.errors, name)


def test_the_tree_is_exactly_the_classes_of_errors_all():
    """``KdiagError.tree()`` (what the service and the CLI derive their maps from) holds
    every public error class and nothing else."""
    assert set(kdiag.KdiagError.tree()) == set(ERRORS)
    assert len(kdiag.KdiagError.tree()) == len(ERRORS)
    assert kdiag.errors.BackendError.tree()[0] is kdiag.errors.BackendError
    assert kdiag.errors.InvalidInstanceIDNotFound in kdiag.errors.BackendError.tree()


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_each_class_sets_its_own_code_and_status(cls):
    assert "code" in vars(cls), f"{cls.__name__} inherits its code"
    assert cls.code
    assert cls.exit_code in {1, 2, 3, 4, 5}
    if cls.http_status is not None:
        assert "http_status" in vars(cls), f"{cls.__name__} inherits its HTTP status"
        assert 400 <= cls.http_status <= 599


def test_codes_are_unique():
    codes = [cls.code for cls in ERRORS]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)


def test_error_tree_is_drawn_in_docstring_with_each_status():
    """Every class appears in the drawing, with its HTTP status when it has one."""
    doc = kdiag.errors.__doc__ or ""
    drawn = {}
    for line in doc.splitlines():
        m = re.match(r"\s*[│ ]*(?:├── |└── )?([A-Z]\w+)(.*)", line)
        if m and m[1] in kdiag.errors.__all__:
            drawn[m[1]] = re.findall(r"\b[1-5]\d\d\b", m[2])
    for cls in ERRORS:
        assert cls.__name__ in drawn, f"{cls.__name__} missing from the tree in the docstring"
        expected = [] if cls.http_status is None else [str(cls.http_status)]
        assert drawn[cls.__name__] == expected, cls.__name__


def test_public_message_replaces_what_may_name_internals():
    unavailable = kdiag.BackendUnavailable("connect /run/vm7.qmp: refused")
    assert str(unavailable) == "connect /run/vm7.qmp: refused"
    assert "/" not in (unavailable.public_message or "")
    assert kdiag.InvalidInstanceIDNotFound("The instance ID 'i-1'").public_message is None


def test_access_denied_carries_the_deciding_reason():
    err = kdiag.AccessDenied("not authorized", reason="implicit deny")
    assert (str(err), err.reason) == ("not authorized", "implicit deny")
    assert isinstance(err, PermissionError)


def test_dump_errors_are_value_errors_and_carry_offsets():
    err = kdiag.TruncatedDump("page descriptor past end of file", offset=0x1000)
    assert isinstance(err, ValueError)
    assert str(err) == "page descriptor past end of file (at file offset 0x1000)"
    assert kdiag.PageNotPresent("excluded", address=0x1000).address == 0x1000
    assert isinstance(kdiag.PageNotPresent("x"), LookupError)
