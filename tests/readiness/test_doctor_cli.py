"""``kdiag doctor`` end to end through the CLI frame: exit codes, JSON, --facts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.readiness.checks import CHECK_IDS

REPO = Path(__file__).resolve().parents[2]


def doctor_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = run(["doctor", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_ready_tree_exits_zero(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = doctor_json(capsys, "--root", str(make_tree("rhel9-ready")))
    assert code == 0
    checks = data["checks"]
    assert isinstance(checks, list)
    assert [c["id"] for c in checks] == list(CHECK_IDS)
    assert all(set(c) == {"id", "status", "evidence", "fix"} for c in checks)
    assert data["platform"]["hypervisor"] == "qemu"  # type: ignore[index]


def test_failing_tree_exits_one(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = doctor_json(capsys, "--root", str(make_tree("azure-centos6")))
    assert code == 1
    assert data["platform"]["cloud"] == "azure"  # type: ignore[index]


def test_facts_file_from_the_collector(
    make_tree: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("azure-centos6")
    collector = subprocess.run(
        [str(REPO / ".venv/bin/kdiag"), "doctor", "--print-collector"],
        capture_output=True,
        check=True,
    ).stdout
    out = subprocess.run(
        ["busybox", "sh", "-s", str(root)], input=collector, capture_output=True, check=True
    ).stdout
    facts_file = tmp_path / "facts.json"
    facts_file.write_bytes(out)
    code, from_facts = doctor_json(capsys, "--facts", str(facts_file))
    code2, from_root = doctor_json(capsys, "--root", str(root))
    assert code == code2 == 1
    strip = [
        (c["id"], c["status"])
        for c in from_facts["checks"]  # type: ignore[attr-defined]
    ]
    assert strip == [(c["id"], c["status"]) for c in from_root["checks"]]  # type: ignore[attr-defined]


def test_table_output_and_usage_errors(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("rhel9-unprepared")
    assert run(["doctor", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "unknown-nmi-panic" in out
    assert "fail" in out
    assert run(["doctor", "--root", str(root), "--facts", "x.json"]) == 2
    assert "exclude" in capsys.readouterr().err
    assert run(["doctor", "--root", str(root), "--for", "bogus"]) == 2
