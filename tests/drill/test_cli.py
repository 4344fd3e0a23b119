"""`kdiag drill` refuses bad input with one typed line and the right exit code, before
anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdiag.cli.main import run

IID = "i-0123456789abcdef0"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("KDIAG_DB", raising=False)
    monkeypatch.delenv("KDIAG_ENDPOINT", raising=False)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([IID, "--timeout", "-1"], 2, "--timeout must be a positive number"),
        ([IID, "--timeout", "nan"], 2, "--timeout must be a positive number"),
        (["i-zz"], 2, "InvalidInstanceID.Malformed"),
        (["i-" + "0" * 5000], 2, "InvalidInstanceID.Malformed"),
        ([IID, "extra"], 2, "only 'history' takes two"),
        (["history", "i-zz"], 2, "InvalidInstanceID.Malformed"),
        ([IID, "--dump-dir", "/nonexistent/crash"], 2, "is not a directory"),
        ([IID], 4, "InvalidInstanceID.NotFound"),
        (["history", "--limit", "0"], 2, "--limit"),
    ],
)
def test_bad_input(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["drill", *args]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_empty_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["drill", "history", "--json"]) == 0
    assert capsys.readouterr().out == '{\n  "Drills": []\n}\n'
