"""``kdiag fleet configure`` and ``kdiag configure --ansible`` with real ansible-core over the
readiness trees (the local connection; ``kdiag_collect_root`` points each host at its tree).

Oracle: ``kdiag configure``'s own planner and writer run on a second copy of each tree; the
fleet's playbook must leave every file byte for byte as they do, and afterwards the local
planner must find nothing left to change."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kdiag.cli.main import run
from kdiag.fleet.configure import host_plan, host_vars, playbook_for
from kdiag.fleet.doctor import PROBE_PATHS
from kdiag.readiness import configure as cfg
from kdiag.readiness.facts import collector_source
from tests.readiness.trees import rhel9_ready, rhel9_unprepared, suse15

TREES: dict[str, Callable[[Path], Path]] = {
    "rhel-unprepared": rhel9_unprepared,
    "suse": suse15,
}
PLANNED = {**TREES, "rhel-ready": rhel9_ready}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (backups aside) -> its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and "~" not in p.name
        and not p.name.endswith((cfg.BACKUP_SUFFIX, ".kdiag-backup"))
    }


def collect(root: Path) -> dict[str, object]:
    out = subprocess.run(
        ["sh", "-c", collector_source(), "collect.sh", str(root)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data: dict[str, object] = json.loads(out)
    return data


def present(root: Path) -> list[str]:
    return [p for p in PROBE_PATHS if (root / p.lstrip("/")).exists()]


@pytest.mark.parametrize("name", sorted(PLANNED))
def test_plan_from_collected_facts_equals_the_local_plan(name: str, tmp_path: Path) -> None:
    root = PLANNED[name](tmp_path / name)
    local = cfg.plan(str(root))
    remote = host_plan(collect(root), present=present(root))
    assert [(c.path, c.old, c.new, c.reboot) for c in remote.changes] == [
        (c.path, c.old, c.new, c.reboot) for c in local.changes
    ]
    assert remote.commands == local.commands
    # the host vars carry it to the playbook verbatim, never templated
    data = yaml.safe_load(host_vars(remote).replace("!unsafe ", ""))
    assert [f["content"] for f in data["kdiag_files"]] == [c.new for c in local.changes]


def test_hostile_facts_paths_are_refused(tmp_path: Path) -> None:
    doc = collect(rhel9_ready(tmp_path / "t"))
    for bad in ("relative/x", "/etc/../../escape", "/etc//x", "/a\0b"):
        files = dict(doc["files"])  # type: ignore[call-overload]
        files[bad] = "x"
        with pytest.raises(Exception, match="bad file path"):
            host_plan({**doc, "files": files})


#: per fixture variant: each tree host's extra variables, and the mode kdiag must pick
VARIANTS: dict[str, dict[str, tuple[str, str]]] = {
    "modules": {n: (f"ansible_python_interpreter={sys.executable}", "modules") for n in TREES},
    # no usable Python (the interpreter named is not there): detected, raw; and a host with
    # Python that the operator's kdiag_raw=true sends through raw anyway
    "raw": {
        "rhel-unprepared": ("ansible_python_interpreter=/nonexistent/python3", "raw"),
        "suse": (f"ansible_python_interpreter={sys.executable} kdiag_raw=true", "raw"),
    },
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fleet(tmp_path: Path, variant: str) -> dict[str, Path]:
    """The trees as hosts: through Ansible's modules, or through raw shell commands (a host
    without Python, detected; a host that the ``kdiag_raw`` override sends there)."""
    lines = ["[trees]"]
    out: dict[str, Path] = {}
    for name, build in TREES.items():
        out[name] = build(tmp_path / name)
        out[f"{name}-oracle"] = build(tmp_path / f"{name}-oracle")
        lines.append(
            f"{name} ansible_connection=local {VARIANTS[variant][name][0]} "
            f"kdiag_collect_root={out[name]}"
        )
    (tmp_path / "inv.ini").write_text("\n".join(lines) + "\n")
    out["inventory"] = tmp_path / "inv.ini"
    return out


def test_check_diff_then_apply_then_nothing_left(
    fleet: dict[str, Path],
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    variant: str,
) -> None:
    inv = str(fleet["inventory"])
    before = {n: snapshot(fleet[n]) for n in TREES}
    # dry run: the diffs, the reboot list, and not one byte written
    code = run(["fleet", "configure", "-i", inv, "--check", "--diff"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert {n: snapshot(fleet[n]) for n in TREES} == before
    assert "rhel-unprepared: would change /etc/sysctl.d/99-kdiag-kdump.conf" in out
    assert "+kernel.unknown_nmi_panic = 1" in out
    assert "reboot needed (kdiag never reboots) after applying:" in out
    # apply: every tree as kdiag configure leaves it
    code = run(["fleet", "configure", "-i", inv, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    for name in TREES:
        oracle = fleet[f"{name}-oracle"]
        plan = cfg.plan(str(oracle))
        cfg.apply(plan)
        host = next(h for h in report["hosts"] if h["host"] == name)
        assert host["status"] == "changed"
        assert host["mode"] == VARIANTS[variant][name][1], host
        assert host["changed"] == [c.path for c in plan.changes]
        assert host["reboot"] == list(plan.needs_reboot)
        assert snapshot(fleet[name]) == snapshot(oracle), name
        assert cfg.plan(str(fleet[name])).changes == ()
    assert report["reboot_needed"]
    # again: nothing to change, nothing written
    after = {n: snapshot(fleet[n]) for n in TREES}
    code = run(["fleet", "configure", "-i", inv])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("nothing to change") == len(TREES), out
    assert {n: snapshot(fleet[n]) for n in TREES} == after


def test_configure_ansible_prints_a_playbook_ansible_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rhel9_unprepared(tmp_path / "t")
    assert run(["configure", "--ansible", "--root", str(root)]) == 0
    text = capsys.readouterr().out
    plan = cfg.plan(str(root))
    assert text == playbook_for(plan)
    (tmp_path / "pb.yml").write_text(text)
    bin_dir = Path(sys.executable).parent
    check = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "pb.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    [play] = yaml.safe_load(text.replace("!unsafe ", ""))
    assert [f["path"] for f in play["vars"]["kdiag_files"]] == [c.path for c in plan.changes]
    assert [f["content"] for f in play["vars"]["kdiag_files"]] == [c.new for c in plan.changes]
    # run as a team would, on a host without a usable Python: the playbook's own probe
    # sends it through raw (Ansible's modules would fail there), and the tree ends fixed
    oracle = rhel9_unprepared(tmp_path / "oracle")
    cfg.apply(cfg.plan(str(oracle)))
    before = snapshot(root)

    def playbook(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(bin_dir / "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                "ansible_python_interpreter=/nonexistent/python3",
                "-e",
                f"kdiag_collect_root={root}",
                *extra,
                "pb.yml",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        )

    # kdiag_raw=false overrides the probe: the modules are tried, and fail without Python
    forced = playbook("-e", "kdiag_raw=false")
    assert forced.returncode != 0, forced.stdout[-3000:]
    assert "kdiag files unchanged since collected" in forced.stdout
    assert snapshot(root) == before
    applied = playbook()
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-2000:]
    assert "TASK [kdiag files (raw)]" in applied.stdout
    assert snapshot(root) == snapshot(oracle)
    assert cfg.plan(str(root)).changes == ()
