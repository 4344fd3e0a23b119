"""A real Debian 12 tree (debootstrap, kdump-tools from Debian's packages): collect, doctor,
configure, doctor again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.readiness import crashkernel, facts
from kdiag.readiness.checks import CONFIG_CHECK_IDS, run_checks
from kdiag.readiness.distro import DEBIAN_GRUB_SNIPPET
from tests.readiness import debian_tree
from tests.readiness.test_collect import comparable, run_collector
from tests.readiness.trees import write_tree

GIB = 1 << 30
SNIPPET = DEBIAN_GRUB_SNIPPET
TABLE = crashkernel.RECOMMENDED["x86_64"]


def debian_conffiles(root: Path) -> set[str]:
    """Every file dpkg knows as a conffile in the tree."""
    out = set()
    for path in (root / "var/lib/dpkg/info").glob("*.conffiles"):
        out.update(path.read_text().split())
    return out


@pytest.fixture(scope="session")
def debian_tarball() -> Path:
    return debian_tree.tree_tarball()


def boot(root: Path, *, cmdline: str, crash_size: int, loaded: str) -> None:
    """The live-only files of a booted 8 GiB, 2-vCPU KVM guest."""
    write_tree(
        root,
        {
            "proc/cmdline": cmdline + "\n",
            "proc/meminfo": f"MemTotal:       {8 * 1024 * 1024 - crash_size // 1024} kB\n"
            "SwapTotal:      0 kB\n",
            "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu hypervisor\n\n"
            "processor\t: 1\nflags\t\t: fpu hypervisor\n",
            "proc/sys/kernel/osrelease": "6.1.0-21-amd64\n",
            "proc/iomem": "00100000-bffdafff : System RAM\n",
            "proc/modules": "virtio_blk 20480 2 - Live 0x0000000000000000\n",
            "sys/kernel/kexec_crash_loaded": loaded + "\n",
            "sys/kernel/kexec_crash_size": f"{crash_size}\n",
            "sys/class/dmi/id/sys_vendor": "QEMU\n",
            "sys/class/dmi/id/product_name": "Standard PC (i440FX + PIIX, 1996)\n",
        },
    )


def etc_snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "etc").rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_mirror_is_read_from_apt_sources() -> None:
    mirror = debian_tree.debian_mirror()
    assert re.match(r"https?://", mirror)
    assert "security" not in mirror


def test_debian_tree_configure_then_doctor(
    debian_tarball: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bookworm"
    subprocess_extract(debian_tarball, root)
    assert (root / "etc/default/kdump-tools").is_file()
    boot(
        root,
        cmdline="BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro crashkernel=384M-:128M",
        crash_size=128 << 20,
        loaded="1",
    )

    # the shell collector and the Python reader agree on a real Debian tree
    for shell in ("busybox", "dash"):
        assert comparable(run_collector(shell, root)) == comparable(facts.read_root(root).to_json())

    before = run_checks(facts.read_root(root))
    assert before.family == "debian"
    got = {c.id: c.status for c in before.checks}
    assert got["unknown-nmi-panic"] == "fail"
    assert got["panic-reboot"] == "fail"
    assert got["kdump-service"] == "pass"  # kdump-tools' postinst enabled it
    assert got["core-collector"] == "pass"  # MAKEDUMP_ARGS default -c -d 31
    assert got["crashkernel-size"] == "warn"  # Debian's 384M-:128M is below 256M for 8G

    conffile = root / "etc/default/grub.d/kdump-tools.cfg"
    shipped = conffile.read_bytes()
    assert run(["configure", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "+++ b/etc/sysctl.d/99-kdiag-kdump.conf" in out
    assert f"+++ b{SNIPPET}" in out
    assert f"reboot needed for: {SNIPPET}" in out
    # kdump-tools.cfg is a dpkg conffile of kdump-tools: configure never touches it, and its
    # own snippet sorts after it, so its crashkernel= is the last (the one the kernel uses)
    assert "/etc/default/grub.d/kdump-tools.cfg" in debian_conffiles(root)
    assert conffile.read_bytes() == shipped
    snippet = (root / SNIPPET.lstrip("/")).read_text()
    assert snippet.endswith(
        f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel={TABLE}"\n'
    )
    assert sorted(p.name for p in conffile.parent.glob("*.cfg"))[-1] == Path(SNIPPET).name
    # the Debian kernel's SysRq functions (438) are kept, SysRq-c (8) added
    assert "kernel.sysrq = 446\n" in (root / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()
    after = {c.id: c.status for c in run_checks(facts.read_root(root)).checks}
    expected = dict.fromkeys(CONFIG_CHECK_IDS, "pass")
    expected["hyperv-capture-drivers"] = "n/a"  # KVM
    expected["deprecated-directives"] = "n/a"  # no /etc/kdump.conf on Debian
    expected["hang-panics"] = "n/a"  # not needed for --for nmi
    assert {k: after[k] for k in CONFIG_CHECK_IDS} == expected

    snap = etc_snapshot(root)
    assert run(["configure", "--root", str(root)]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert etc_snapshot(root) == snap

    # after the reboot: new reservation, sysctls applied from the file configure wrote
    boot(
        root,
        cmdline=f"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro crashkernel={TABLE}",
        crash_size=256 << 20,
        loaded="1",
    )
    sysctl_d = (root / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()
    for line in sysctl_d.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            path = root / "proc/sys" / key.strip().replace(".", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value.strip() + "\n")
    assert run(["doctor", "--root", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert "fail" not in statuses.values()
    assert statuses["crashkernel-size"] == "pass"
    assert statuses["unknown-nmi-panic"] == "pass"


def test_debian_image_offline_configure_then_doctor_passes(
    debian_tarball: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same tree as an image holds it (no /proc, no /sys): configure --root, then
    doctor --root passes; before, it fails only what configure fixes."""
    root = tmp_path / "image"
    subprocess_extract(debian_tarball, root)
    assert run(["doctor", "--root", str(root), "--json"]) == 1
    before = {c["id"]: c["status"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert {k for k, v in before.items() if v == "fail"} == {"unknown-nmi-panic", "panic-reboot"}
    assert before["crashkernel-reserved"] == "pass"  # kdump-tools.cfg's 384M-:128M
    assert before["crashkernel-size"] == "warn"  # 128M from 2G up, below the recommendation
    assert before["kdump-supported"] == before["capture-kernel-loaded"] == "n/a"
    assert before["sysrq"] == "warn"  # Debian's kernel default 438 has no SysRq-c
    assert run(["configure", "--root", str(root)]) == 0
    capsys.readouterr()
    assert run(["doctor", "--root", str(root), "--json"]) == 0
    after = {c["id"]: c["status"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "fail" not in after.values()
    assert "warn" not in after.values(), after


def subprocess_extract(tarball: Path, dest: Path) -> None:
    import subprocess

    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "-xzf", str(tarball)], check=True)
