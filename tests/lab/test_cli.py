"""`kdiag lab` commands that need no guest (the e2e tests drive the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdiag.cli import main as cli_main
from kdiag.lab.profiles import PROFILES


def test_profiles_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.run(["lab", "profiles", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(PROFILES)


def test_list_empty_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.run(["lab", "list", "--root", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_list_of_a_missing_lab_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.run(["lab", "list", "--root", str(tmp_path / "typo")]) == 2
    assert "no such lab directory (ConfigError)" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_status_of_unknown_guest_is_a_backend_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.run(["lab", "status", "nope", "--root", str(tmp_path)]) == 4
    assert "(TargetNotFound)" in capsys.readouterr().err


def test_up_rejects_unknown_profile_before_booting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main.run(["lab", "up", "--root", str(tmp_path), "--profile", "nope"])
    assert code == 2
    assert "unknown lab profile" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["up", "build"])
def test_unknown_arch_is_refused_before_anything_runs(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main.run(["lab", command, "--root", str(tmp_path), "--arch", "riscv64"])
    assert code == 2
    assert "unknown lab architecture 'riscv64' (known: x86_64, arm64)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
