"""Doctor's findings on hand-made trees of each layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag.errors import ConfigError
from kdiag.readiness import facts
from kdiag.readiness.checks import CHECK_IDS, run_checks


def statuses(root: Path, purpose: str = "nmi") -> dict[str, str]:
    report = run_checks(facts.read_root(root), purpose)
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    return {c.id: c.status for c in report.checks}


def failing(root: Path, purpose: str = "nmi") -> set[str]:
    return {k for k, v in statuses(root, purpose).items() if v == "fail"}


def test_ready_rhel_passes(make_tree: Callable[[str], Path]) -> None:
    report = run_checks(facts.read_root(make_tree("rhel9-ready")))
    assert not report.failed
    got = {c.id: c.status for c in report.checks}
    assert got["unknown-nmi-panic"] == "pass"
    assert got["crashkernel-size"] == "pass"
    assert got["hyperv-capture-drivers"] == "n/a"
    assert report.platform.hypervisor == "qemu"
    assert report.family == "rhel"


def test_unprepared_rhel_fails_the_right_checks(make_tree: Callable[[str], Path]) -> None:
    assert failing(make_tree("rhel9-unprepared")) == {
        "crashkernel-reserved",
        "capture-kernel-loaded",
        "kdump-service",
        "unknown-nmi-panic",
        "panic-reboot",
    }


def test_suse_findings(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("suse15")
    got = statuses(root)
    assert got["core-collector"] == "warn"  # ELF, dump level 1
    assert got["crashkernel-size"] == "warn"  # 189M < 256M for 16G
    assert got["crashkernel-reserved"] == "pass"
    assert got["platform"] == "pass"
    report = run_checks(facts.read_root(root))
    assert report.platform.hypervisor == "vmware"
    assert report.family == "suse"
    assert "RAM/2" in report.get("dump-target-space").evidence


def test_azure_centos6_reproduces_both_findings(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("azure-centos6")
    report = run_checks(facts.read_root(root))
    assert {c.id for c in report.checks if c.status == "fail"} == {
        "panic-reboot",
        "hyperv-capture-drivers",
    }
    assert report.platform.cloud == "azure"
    assert report.platform.hypervisor == "hyperv"
    panic = report.get("panic-reboot")
    assert "/etc/sysctl.conf" in panic.evidence
    hv = report.get("hyperv-capture-drivers")
    assert "KB2858695" in hv.evidence
    assert "blacklist hv_vmbus hv_storvsc" in hv.fix  # the legacy (RHEL 6) form
    assert "az serial-console send nmi" in report.get("platform").evidence


def test_purposes(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-ready")
    assert statuses(root, "hang")["hang-panics"] == "fail"
    assert statuses(root, "hang")["unknown-nmi-panic"] == "n/a"
    assert statuses(root, "oops")["panic-on-oops"] == "pass"
    unprepared = make_tree("rhel9-unprepared")
    assert statuses(unprepared, "oops")["panic-on-oops"] == "fail"
    assert statuses(unprepared, "nmi")["panic-on-oops"] == "warn"
    with pytest.raises(ConfigError):
        run_checks(facts.read_root(root), "everything")


def test_runtime_right_persisted_wrong_is_a_warning(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-ready")
    (root / "etc/sysctl.conf").write_text("kernel.unknown_nmi_panic = 0\n")
    check = run_checks(facts.read_root(root)).get("unknown-nmi-panic")
    assert check.status == "warn"
    assert "reverts" in check.evidence


def test_persisted_but_not_applied_is_a_warning(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    (root / "etc/sysctl.d/50-nmi.conf").write_text("kernel.unknown_nmi_panic=1\n")
    check = run_checks(facts.read_root(root)).get("unknown-nmi-panic")
    assert check.status == "warn"
    assert check.fix.startswith("sysctl --system")


def test_kernel_cmdline_panic_counts(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    (root / "proc/cmdline").write_text("root=/dev/vda panic=30\n")
    (root / "proc/sys/kernel/panic").write_text("30\n")
    assert statuses(root)["panic-reboot"] == "pass"


def test_dump_target_space_fails_when_full(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-ready")
    data = facts.read_root(root).to_json()
    data["dump_target"]["free_kb"] = 100 * 1024  # 100M for 8G RAM
    check = run_checks(facts.from_json(data)).get("dump-target-space")
    assert check.status == "fail"
    data["dump_target"]["remote"] = "nfs"
    assert run_checks(facts.from_json(data)).get("dump-target-space").status == "n/a"


def test_cp_collector_fails(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-ready")
    conf = root / "etc/kdump.conf"
    conf.write_text(conf.read_text() + "core_collector cp --sparse=always\n")
    assert statuses(root)["core-collector"] == "fail"


def test_hyperv_modern_kernel_passes_and_gen2_blacklist_warns(
    make_tree: Callable[[str], Path],
) -> None:
    root = make_tree("azure-centos6")
    (root / "proc/sys/kernel/osrelease").write_text("5.14.0-427.el9.x86_64\n")
    assert statuses(root)["hyperv-capture-drivers"] == "pass"
    sysconfig = root / "etc/sysconfig/kdump"
    sysconfig.write_text(
        'KDUMP_COMMANDLINE_APPEND="nr_cpus=1 rd.driver.blacklist=hv_vmbus,hv_storvsc"\n'
    )
    (root / "sys/firmware/efi").mkdir(parents=True)
    check = run_checks(facts.read_root(root)).get("hyperv-capture-drivers")
    assert check.status == "warn"
    assert "Generation 2" in check.evidence


def test_facts_json_round_trip(any_tree: Path) -> None:
    original = facts.read_root(any_tree)
    again = facts.from_json(original.to_json())
    assert again == original
    assert run_checks(again).to_json() == run_checks(original).to_json()


def test_bad_facts_documents(tmp_path: Path, make_tree: Callable[[str], Path]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 99}')
    with pytest.raises(ConfigError):
        facts.load(bad)
    bad.write_text("not json")
    with pytest.raises(ConfigError):
        facts.load(bad)
    bad.write_text('{"schema": 1}')
    with pytest.raises(ConfigError, match="lacks"):
        facts.load(bad)
    good = facts.read_root(make_tree("tricky")).to_json()
    good["sysctl"] = None
    with pytest.raises(ConfigError, match="sysctl is NoneType"):
        facts.from_json(good)


def test_cmdline_value_overridden_at_runtime_fails(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    (root / "proc/cmdline").write_text("root=/dev/vda panic=10\n")
    check = run_checks(facts.read_root(root)).get("panic-reboot")
    assert check.status == "fail"
    assert "overridden since boot" in check.evidence


def test_deprecated_directives(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-ready")
    assert statuses(root)["deprecated-directives"] == "pass"
    conf = root / "etc/kdump.conf"
    conf.write_text(conf.read_text() + "blacklist hv_vmbus\ndefault shell\n")
    check = run_checks(facts.read_root(root)).get("deprecated-directives")
    assert check.status == "warn"
    assert "rd.driver.blacklist" in check.fix
    assert "failure_action" in check.fix
    # RHEL 6 still needs them
    assert statuses(make_tree("azure-centos6"))["deprecated-directives"] == "n/a"


def test_booted_range_that_misses_this_ram_names_the_range_rule(
    make_tree: Callable[[str], Path],
) -> None:
    # a "2 GiB" cloud VM booted with kdump-utils' table: 2G-64G starts above its RAM
    root = make_tree("rhel9-unprepared")
    (root / "proc/meminfo").write_text("MemTotal:        1890000 kB\nSwapTotal: 0 kB\n")
    (root / "proc/cmdline").write_text("ro crashkernel=2G-64G:256M,64G-:512M\n")
    check = run_checks(facts.read_root(root)).get("crashkernel-reserved")
    assert check.status == "fail"
    assert "is in no range of crashkernel=2G-64G:256M,64G-:512M" in check.evidence
    assert "the first starts at 2G" in check.evidence
    assert "smaller" not in check.fix
    assert check.fix.startswith("kdiag configure --crashkernel 512M-2G:192M,")
    size = run_checks(facts.read_root(make_tree("rhel9-ready"))).get("crashkernel-size")
    assert "is in the range 2G-64G of crashkernel=512M-2G:192M" in size.evidence


def test_registry_ids_and_purposes() -> None:
    from kdiag.readiness.checks import CONFIG_CHECK_IDS, PURPOSES, REGISTRY
    from kdiag.readiness.registry import Registry, Verdict

    assert len(set(CHECK_IDS)) == len(CHECK_IDS)
    assert set(CONFIG_CHECK_IDS) < set(CHECK_IDS)
    assert PURPOSES == ("nmi", "oops", "hang", "all")
    assert {s.id for s in REGISTRY.specs if s.needs == "runtime"} == {
        "kdump-supported",
        "capture-kernel-loaded",
        "kexec-text-symbol",
        "dump-target-space",
        "platform",
    }
    reg: Registry[int] = Registry()
    reg.check("a", needs="config", passes="p", otherwise="o")(lambda n: Verdict("pass", str(n)))
    with pytest.raises(ValueError, match="twice"):
        reg.check("a", needs="config", passes="p", otherwise="o")
    with pytest.raises(ValueError, match="bad needs"):
        reg.check("b", needs="config", passes="p", otherwise="o", for_=("reboot",))
    reg.check("c", needs="runtime", for_=("hang",), passes="p", otherwise="o")(
        lambda n: Verdict("fail", str(n))
    )
    got = [(c.id, c.status) for c in reg.run(7, purpose="nmi", offline="img")]
    assert got == [("a", "pass"), ("c", "n/a")]
    assert [c.status for c in reg.run(7, purpose="hang", offline="img")] == ["pass", "n/a"]
    assert [c.status for c in reg.run(7, purpose="all")] == ["pass", "fail"]


def test_crashkernel_explain_and_shortfalls() -> None:
    from kdiag.readiness import crashkernel as ck

    gib = 1 << 30
    table = ck.RECOMMENDED["x86_64"]
    assert ck.explain(table, 2 * gib - (40 << 20)) == (
        f"RAM 1.9G is in the range 512M-2G of crashkernel={table}: 192M"
    )
    assert ck.explain("2G-64G:256M,64G-:512M", 1 * gib).endswith(
        "(a range A-B means at least A and below B; the first starts at 2G): nothing is reserved"
    )
    assert ck.explain("256M", 8 * gib) == "crashkernel=256M: a fixed size, whatever the RAM"
    assert ck.explain("auto", 8 * gib) == "crashkernel=auto: the RHEL kernel sizes it"
    # kdump-utils' table falls short of the recommendation below 2G, Debian's 128M everywhere
    assert [r for r, _, _ in ck.shortfalls("2G-64G:256M,64G-:512M", table)] == [
        512 << 20,
        1 * gib,
    ]
    assert len(ck.shortfalls("384M-:128M", table)) == len(ck.RAM_POINTS)
    assert ck.shortfalls(table, table) == []
    assert ck.shortfalls("auto", table) == []
