from __future__ import annotations

import pytest

from kdiag.errors import ConfigError
from kdiag.lab.guest import parse_memory
from kdiag.lab.profiles import PROFILES, TRIGGERS, get_profile


def test_default_profile_arms_nmi_panic_and_kdump() -> None:
    words = get_profile("default").cmdline()
    assert "lab_kdump=1" in words
    assert "lab_dump=-c_-d_31" in words
    sysctl = next(w for w in words if w.startswith("lab_sysctl="))
    assert "kernel.unknown_nmi_panic=1" in sysctl


@pytest.mark.parametrize(
    ("name", "kdump", "capture", "panic"),
    [
        ("unprepared", True, "save", "10"),
        ("no-crashkernel", False, "save", "10"),
        ("panic-hang", False, "save", "0"),
        ("capture-hang", True, "hang", "10"),
    ],
)
def test_failure_profiles(name: str, kdump: bool, capture: str, panic: str) -> None:
    p = get_profile(name)
    assert p.kdump is kdump
    assert p.capture == capture
    assert dict(p.sysctls)["kernel.panic"] == panic
    if name == "unprepared":
        assert dict(p.sysctls)["kernel.unknown_nmi_panic"] == "0"
    assert p.crashkernel is (name != "no-crashkernel")


def test_dump_profiles_cover_the_makedumpfile_option_sets() -> None:
    flags = {opts[0] for p in PROFILES.values() for opts in p.dumps}
    assert {"-c", "-l", "-z", "-F", "-E", "-d"} <= flags
    levels = {opts[-1] for p in PROFILES.values() for opts in p.dumps}
    assert {"1", "31"} <= levels


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="default"):
        get_profile("nope")


def test_triggers() -> None:
    assert set(TRIGGERS) == {
        "sysrq-c",
        "oom",
        "hung-task",
        "null",
        "bug",
        "gpf",
        "warn",
        "softlockup",
        "rcu",
    }


@pytest.mark.parametrize(
    ("text", "mib"), [("512M", 512), ("2G", 2048), ("1024", 1024), ("2GiB", 2048)]
)
def test_parse_memory(text: str, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["lots", "128M", "-1G"])
def test_parse_memory_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_memory(text)


def test_only_text_trap_leaves_the_arm64_kexec_trap_armed() -> None:
    trapped = [p.name for p in PROFILES.values() if "lab_text_fix=0" in p.cmdline()]
    assert trapped == ["text-trap"]
    trap = get_profile("text-trap")
    assert (trap.kdump, trap.crashkernel, trap.expect_kdump_loaded) == (True, True, True)
    assert trap.capture == "save"
