"""The public surface of ``kdiag`` and ``kdiag.errors`` cannot drift silently."""

import inspect

import kdiag
import kdiag.errors


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


def test_error_tree_is_drawn_in_docstring():
    doc = kdiag.errors.__doc__ or ""
    for name in kdiag.errors.__all__:
        assert name in doc, f"{name} missing from the tree in errors.py's docstring"


def test_every_error_has_a_code_and_exit_code():
    for name in kdiag.errors.__all__:
        cls = getattr(kdiag.errors, name)
        assert issubclass(cls, kdiag.KdiagError)
        assert cls.code
        assert cls.exit_code in {1, 2, 3, 4, 5}


def test_dump_errors_are_value_errors_and_carry_offsets():
    err = kdiag.TruncatedDump("page descriptor past end of file", offset=0x1000)
    assert isinstance(err, ValueError)
    assert str(err) == "page descriptor past end of file (at file offset 0x1000)"
    assert kdiag.PageNotPresent("excluded", address=0x1000).address == 0x1000
    assert isinstance(kdiag.PageNotPresent("x"), LookupError)
