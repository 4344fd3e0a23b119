"""``kdiag fleet doctor`` with real ansible-core (ansible-runner, the script module) over the
readiness test trees, each a host on Ansible's local connection judging its tree through the
``kdiag_collect_root`` host variable, plus a host that cannot be reached.

Oracle: the Python facts reader (``facts.read_root``), an implementation independent of the
shell collector that Ansible carries to each host, judged by the same checks."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.fleet.ansible import TaskResult, check_inventory, list_hosts
from kdiag.fleet.doctor import evaluate
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks
from kdiag.store import Store
from kdiag.store.fleet import fleet_hosts, list_fleet_runs
from tests.conftest import require_tool
from tests.readiness.trees import rhel9_ready, rhel9_unprepared, suse15

TREES = {"rhel-ready": rhel9_ready, "rhel-unprepared": rhel9_unprepared, "suse": suse15}


def _ok(stdout: str) -> TaskResult:
    return TaskResult("h1", "kdiag collect", "ok", False, 0, stdout, "", "")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Trees and an inventory: three local hosts and one whose SSH port is closed."""
    require_tool("ssh")
    base = tmp_path_factory.mktemp("fleet")
    lines = ["[trees]"]
    out: dict[str, Path] = {}
    for name, build in TREES.items():
        root = build(base / name)
        out[name] = root
        lines.append(f"{name} ansible_connection=local kdiag_collect_root={root}")
    lines += ["[gone]", "dead ansible_host=127.0.0.1 ansible_port=1 ansible_user=nobody"]
    inv = base / "inventory.ini"
    inv.write_text("\n".join(lines) + "\n")
    out["inventory"] = inv
    return out


def expected_failing(root: Path, purpose: str = "nmi") -> list[str]:
    report = run_checks(facts.read_root(root), purpose)
    return [c.id for c in report.checks if c.status == "fail"]


def test_fleet_doctor_finds_each_hosts_failures(
    fleet: dict[str, Path], state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["fleet", "doctor", "-i", str(fleet["inventory"]), "--forks", "4", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {*TREES, "dead"}
    for name in TREES:
        assert hosts[name]["failing"] == expected_failing(fleet[name]), name
        assert hosts[name]["status"] == ("fail" if hosts[name]["failing"] else "pass")
    assert expected_failing(fleet["rhel-ready"]) == []  # the oracle itself can tell them apart
    assert "unknown-nmi-panic" in hosts["rhel-unprepared"]["failing"]
    assert hosts["dead"]["status"] == "unreachable"
    assert "port 1" in hosts["dead"]["message"]
    # grouped by finding: each check lists exactly the hosts the oracle fails on it
    expected: dict[str, list[str]] = {"unreachable": ["dead"]}
    for name in sorted(TREES):
        for check in expected_failing(fleet[name]):
            expected.setdefault(check, []).append(name)
    assert report["findings"] == expected
    assert code == 1
    # progress while hosts answered: one line each, on stderr
    assert captured.err.count("/4 ") == 4
    # stored, with facts, in the default account
    with Store.open() as store:
        [stored] = list_fleet_runs(store)
        assert stored.id == report["run_id"]
        assert (stored.hosts, stored.failed) == (
            4,
            sum(h["status"] != "pass" for h in hosts.values()),
        )
        rows = {h.host: h for h in fleet_hosts(store, report["run_id"])}
    assert rows["dead"].facts is None
    facts_doc = rows["rhel-ready"].facts
    assert facts_doc is not None
    assert facts_doc["schema"] == 1


def test_limit_and_text_layout(
    fleet: dict[str, Path], state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["fleet", "doctor", "-i", str(fleet["inventory"]), "--limit", "rhel-ready"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("kdump readiness of 1 hosts (--for nmi): 1 pass [run ")
    code = run(["fleet", "doctor", "-i", str(fleet["inventory"]), "-l", "trees", "--for", "all"])
    out = capsys.readouterr().out
    assert code == 1
    for check in expected_failing(fleet["rhel-unprepared"], "all"):
        assert f"\n{check}  (" in out
    assert "dead" not in out


def test_inventory_listing_and_bad_inventories(fleet: dict[str, Path]) -> None:
    hosts = list_hosts(str(fleet["inventory"]))
    assert list(hosts) == sorted([*TREES, "dead"])
    assert hosts["dead"]["ansible_port"] == 1
    assert list(list_hosts("a.example,b.example,")) == ["a.example", "b.example"]
    assert check_inventory("x,y") == "x,y"
    for bad, code in (("/nonexistent/inv", 2), ("", 2)):
        assert run(["fleet", "doctor", "-i", bad]) == code
    assert run(["fleet", "doctor", "-i", str(fleet["inventory"]), "--limit", "nomatch*"]) == 2
    assert run(["fleet", "doctor", "-i", str(fleet["inventory"]), "--for", "x"]) == 2
    assert run(["fleet", "doctor", "-i", str(fleet["inventory"]), "--forks", "0"]) == 2


def test_evaluate_turns_every_bad_answer_into_a_finding() -> None:
    unreachable = TaskResult("h1", "t", "unreachable", False, None, "", "", "timed out")
    assert evaluate("h1", unreachable, "nmi").findings == ("unreachable",)
    failed = TaskResult("h1", "t", "failed", False, 127, "", "sh: not found\n", "")
    verdict = evaluate("h1", failed, "nmi")
    assert verdict.status == "error"
    assert verdict.message == "collector failed (rc 127): sh: not found"
    for junk in ("", "no json here", "{not json}", "[1, 2]", '{"schema": 99}', "{" * 100_000):
        verdict = evaluate("h1", _ok(junk), "nmi")
        assert verdict.status == "error", junk[:20]
        assert verdict.findings == ("collector-failed",)
    assert evaluate("h1", None, "nmi").status == "error"


def test_a_host_that_hangs_is_a_timed_out_finding(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host whose connection never completes (its ssh client hangs, as on a host stuck
    in the kernel) ends at --timeout as its own finding, named as such, and the run ends."""
    hang = tmp_path / "ssh-that-hangs"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")  # bounded: ends by itself if orphaned
    hang.chmod(0o755)
    inv = tmp_path / "inv.ini"
    inv.write_text(f"hung ansible_host=127.0.0.1 ansible_ssh_executable={hang}\n")
    code = run(["fleet", "doctor", "-i", str(inv), "--timeout", "3", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    [host] = report["hosts"]
    assert host["status"] == "error", host
    assert report["findings"] == {"timed-out": ["hung"]}
    assert host["message"].startswith("no answer within 3 s"), host
    assert run(["fleet", "doctor", "-i", str(inv), "--timeout", "0"]) == 2


def test_evaluate_names_a_task_timeout() -> None:
    for msg in (
        "Task failed: Timed out after 120",
        "The ansible.builtin.script action "
        "failed to execute in the expected time frame (120) and was terminated",
    ):
        verdict = evaluate(
            "h1", TaskResult("h1", "t", "failed", False, None, "", "", msg), "nmi", timeout=120
        )
        assert (verdict.status, verdict.findings) == ("error", ("timed-out",))
        assert verdict.message is not None
        assert verdict.message.startswith("no answer within 120 s")


def test_banner_around_the_document_is_ignored(fleet: dict[str, Path]) -> None:
    collector = Path(facts.__file__).with_name("collect.sh")
    text = subprocess.run(
        ["sh", str(collector), str(fleet["rhel-ready"])],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    verdict = evaluate("h1", _ok("Welcome to host h1\r\n" + text + "\r\n"), "nmi")
    assert verdict.status == "pass", verdict.message
    assert verdict.answered_at <= dt.datetime.now(dt.UTC)
