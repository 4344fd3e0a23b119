"""``kdiag doctor`` end to end through the CLI frame: exit codes, JSON, --facts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.readiness.checks import CHECK_IDS
from tests.readiness.trees import rhel9_unprepared

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


def offline_image(root: Path) -> Path:
    """A Rocky 9 image as a mounted root holds it: configuration only, no /proc, no /sys; kdump
    installed and enabled (as its package does), no crashkernel= and no panic sysctls."""
    rhel9_unprepared(root)
    shutil.rmtree(root / "proc")
    shutil.rmtree(root / "sys")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "kdump.service").symlink_to("/usr/lib/systemd/system/kdump.service")
    return root


RUNTIME_ONLY = ("kdump-supported", "capture-kernel-loaded", "dump-target-space", "platform")


def test_offline_image_judges_what_the_image_holds_and_configure_makes_it_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = offline_image(tmp_path / "image")
    code, data = doctor_json(capsys, "--root", str(root))
    assert code == 1
    checks = {c["id"]: c for c in data["checks"]}  # type: ignore[attr-defined]
    for check_id in RUNTIME_ONLY:
        assert checks[check_id]["status"] == "n/a", checks[check_id]
        assert "offline image" in checks[check_id]["evidence"]
    assert {k for k, c in checks.items() if c["status"] == "fail"} == {
        "crashkernel-reserved",
        "unknown-nmi-panic",
        "panic-reboot",
    }
    for check_id in ("crashkernel-reserved", "unknown-nmi-panic", "panic-reboot"):
        assert checks[check_id]["fix"].startswith("kdiag configure --root DIR"), check_id

    assert run(["configure", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "sysctl --system" not in out  # nothing runs in an image
    code, data = doctor_json(capsys, "--root", str(root))
    statuses = {c["id"]: c["status"] for c in data["checks"]}  # type: ignore[attr-defined]
    assert code == 0, data
    assert statuses["crashkernel-reserved"] == "pass"
    assert statuses["crashkernel-size"] == "pass"
    assert statuses["unknown-nmi-panic"] == statuses["panic-reboot"] == "pass"


def test_offline_image_with_kdump_disabled_names_systemctl_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = offline_image(tmp_path / "image")
    shutil.rmtree(root / "etc/systemd/system/multi-user.target.wants")
    code, data = doctor_json(capsys, "--root", str(root))
    service = next(c for c in data["checks"] if c["id"] == "kdump-service")  # type: ignore[attr-defined]
    assert code == 1
    assert service["status"] == "fail"
    assert service["fix"] == "systemctl --root DIR enable kdump"
    assert run(["configure", "--root", str(root)]) == 0
    assert f"systemctl --root {root} enable kdump" in capsys.readouterr().out


def test_empty_or_missing_root_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["doctor", "--root", str(tmp_path / "nope")]) == 2
    assert (
        capsys.readouterr().err == f"error: root {tmp_path / 'nope'} does not exist (ConfigError)\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["doctor", "--root", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: root {empty} holds no Linux system")
    assert err.count("\n") == 1
    assert run(["configure", "--root", str(empty), "--dry-run"]) == 2
    assert "holds no Linux system" in capsys.readouterr().err


def test_text_report_layout_through_a_pipe(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("azure-centos6")
    assert run(["doctor", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"kdump readiness of {root} (--for nmi)"
    heads = [line for line in lines if line and not line.startswith(" ")][1:-1]
    assert [h.split()[1] for h in heads] == list(CHECK_IDS)  # one line per check, in order
    assert "fail  panic-reboot" in heads
    at = lines.index("fail  panic-reboot")
    assert lines[at + 1].startswith("      kernel.panic = 0 (running); 0 in /etc/sysctl.conf:")
    assert lines[at + 2] == "      fix: kdiag configure --panic-timeout 10 (sets kernel.panic=10)"
    assert not any(ch in out for ch in "│┃─━┏┌")  # no boxes
    assert "\x1b[" not in out  # no colour through a pipe
    assert lines[-1] == "2 fail, 2 warn, 9 pass, 3 n/a"  # kexec-text-symbol: x86_64


def test_text_report_wraps_only_at_spaces() -> None:
    from kdiag.cli.doctor import format_report
    from kdiag.readiness.report import Check

    path = "/very/long/path/" + "x" * 60 + "/vmcore"
    check = Check("crashkernel-reserved", "fail", f"nothing at {path}; more words follow", "")
    text = format_report("t", [check], width=40)
    assert f"      nothing at\n        {path};\n        more words follow\n" in text
    assert "crashkernel-reserved" in text.splitlines()[2]


def test_output_option(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(make_tree("rhel9-ready"))
    assert run(["doctor", "--root", root, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["purpose"] == "nmi"
    assert run(["doctor", "--root", root, "--output", "yaml"]) == 2
    assert "--output must be one of text, json" in capsys.readouterr().err


def test_list_checks_and_the_docs_table_come_from_the_registry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kdiag.readiness.checks import REGISTRY
    from kdiag.readiness.windows import WINDOWS

    assert run(["doctor", "--list-checks"]) == 0
    heads = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[0] != " "]
    assert heads == list(CHECK_IDS)
    docs = (REPO / "docs/readiness.md").read_text()
    assert REGISTRY.markdown() in docs
    assert WINDOWS.markdown() in docs
