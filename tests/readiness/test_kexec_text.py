"""kexec-text-symbol: arm64 ``kexec -p`` without ``_text`` in /proc/kallsyms (lab.md §16)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag.errors import ConfigError
from kdiag.readiness import facts
from kdiag.readiness.checks import run_checks
from tests.readiness.test_collect import SHELLS, run_collector

MakeTree = Callable[[str], Path]

STATES = {
    "debian12-arm64-text": "present",
    "debian12-arm64-notext": "missing",
    "debian12-arm64-hidden": "unknown",
}


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize(("tree", "state"), sorted(STATES.items()))
def test_fact_in_both_readers(make_tree: MakeTree, tree: str, state: str, shell: str) -> None:
    root = make_tree(tree)
    assert facts.read_root(root).kallsyms_text == state
    assert run_collector(shell, root)["kallsyms_text"] == state


def test_fact_is_null_without_kallsyms(make_tree: MakeTree) -> None:
    root = make_tree("debian12-arm64-notext")
    (root / "proc/kallsyms").unlink()
    assert facts.read_root(root).kallsyms_text is None
    assert run_collector("busybox", root)["kallsyms_text"] is None


def test_text_listed_with_zero_address_is_unknown(make_tree: MakeTree) -> None:
    root = make_tree("debian12-arm64-hidden")
    kallsyms = root / "proc/kallsyms"
    kallsyms.write_text("0000000000000000 T _text\n" + kallsyms.read_text())
    assert facts.read_root(root).kallsyms_text == "unknown"
    assert run_collector("dash", root)["kallsyms_text"] == "unknown"


def test_armed_trap_fails_and_only_it(make_tree: MakeTree) -> None:
    report = run_checks(facts.read_root(make_tree("debian12-arm64-notext")), "nmi")
    assert {c.id for c in report.checks if c.status == "fail"} == {"kexec-text-symbol"}
    check = report.get("kexec-text-symbol")
    assert "no _text" in check.evidence
    assert "kexec_crash_loaded = 1" in check.evidence
    assert "mount --bind" in check.fix
    assert "_stext - 0x10000" in check.fix
    assert "kdump-config reload" in check.fix


def test_workaround_passes(make_tree: MakeTree) -> None:
    report = run_checks(facts.read_root(make_tree("debian12-arm64-text")), "nmi")
    assert not report.failed
    assert report.get("kexec-text-symbol").status == "pass"


def test_hidden_addresses_are_unknown_not_missing(make_tree: MakeTree) -> None:
    report = run_checks(facts.read_root(make_tree("debian12-arm64-hidden")), "nmi")
    check = report.get("kexec-text-symbol")
    assert check.status == "warn"
    assert check.evidence.startswith("unknown:")
    assert "root" in check.fix
    assert not report.failed


def test_missing_but_not_loaded_warns(make_tree: MakeTree) -> None:
    root = make_tree("debian12-arm64-notext")
    (root / "sys/kernel/kexec_crash_loaded").write_text("0\n")
    check = run_checks(facts.read_root(root), "all").get("kexec-text-symbol")
    assert check.status == "warn"
    assert "next kexec -p" in check.evidence


@pytest.mark.parametrize("arch", ["x86_64", "ppc64le", "s390x"])
def test_other_architectures_are_na(make_tree: MakeTree, arch: str) -> None:
    root = make_tree("debian12-arm64-notext")
    (root / "proc/sys/kernel/arch").write_text(arch + "\n")
    check = run_checks(facts.read_root(root), "all").get("kexec-text-symbol")
    assert check.status == "n/a"
    assert arch in check.evidence


def test_offline_image_is_na(make_tree: MakeTree) -> None:
    root = make_tree("debian12-arm64-notext")
    shutil.rmtree(root / "proc")
    shutil.rmtree(root / "sys")
    check = run_checks(facts.read_root(root), "all").get("kexec-text-symbol")
    assert check.status == "n/a"
    assert "offline" in check.evidence


def test_older_facts_document_loads_and_says_unknown(make_tree: MakeTree) -> None:
    data = facts.read_root(make_tree("debian12-arm64-notext")).to_json()
    del data["kallsyms_text"]
    old = facts.from_json(data)
    assert old.kallsyms_text is None
    check = run_checks(old, "all").get("kexec-text-symbol")
    assert check.status == "warn"
    assert check.evidence.startswith("unknown:")


def test_bad_kallsyms_value_is_refused(make_tree: MakeTree) -> None:
    data = facts.read_root(make_tree("debian12-arm64-text")).to_json()
    data["kallsyms_text"] = "yes"
    with pytest.raises(ConfigError, match="kallsyms_text"):
        facts.from_json(data)
