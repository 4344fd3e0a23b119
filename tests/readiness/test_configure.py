"""``kdiag configure`` on hand-made trees: diff, apply, idempotency, backups, safety."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.errors import ConfigError
from kdiag.readiness import configure as cfg
from kdiag.readiness import crashkernel, facts
from kdiag.readiness.checks import CONFIG_CHECK_IDS, run_checks


def snapshot(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def statuses(root: Path) -> dict[str, str]:
    return {c.id: c.status for c in run_checks(facts.read_root(root)).checks}


@pytest.mark.parametrize("name", ["rhel9-unprepared", "suse15", "azure-centos6"])
def test_configure_then_config_checks_do_not_fail_and_second_run_is_a_no_op(
    name: str, make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(name)
    assert run(["configure", "--root", str(root)]) == 0
    first = capsys.readouterr().out
    assert "+++ b/etc/" in first
    got = statuses(root)
    for check_id in CONFIG_CHECK_IDS:
        if check_id == "kdump-service":
            continue  # enabling a service is a command configure prints, not a file
        assert got[check_id] != "fail", (check_id, got)
    before = snapshot(root)
    assert run(["configure", "--root", str(root)]) == 0
    second = capsys.readouterr().out
    assert "nothing to change" in second
    assert "---" not in second
    assert snapshot(root) == before


def test_dry_run_shows_the_diff_and_changes_nothing(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("azure-centos6")
    before = snapshot(root)
    assert run(["configure", "--root", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert snapshot(root) == before
    assert out.startswith("--- a/etc/sysctl.conf\n+++ b/etc/sysctl.conf\n")
    assert "-kernel.panic = 0\n+kernel.panic = 10\n" in out
    assert "+blacklist hv_vmbus hv_storvsc hv_utils hv_netvsc hid_hyperv\n" in out
    assert "wrote" not in out


def test_azure_centos6_configure_fixes_both_findings(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("azure-centos6")
    before = statuses(root)
    assert before["panic-reboot"] == "fail"
    assert before["hyperv-capture-drivers"] == "fail"
    plan = cfg.plan(root)
    assert {c.path for c in plan.changes} == {"/etc/sysctl.conf", "/etc/kdump.conf"}
    assert not plan.needs_reboot  # crashkernel=auto is kept
    assert "service kdump restart" in plan.commands
    cfg.apply(plan)
    after = statuses(root)
    assert after["hyperv-capture-drivers"] == "pass"
    assert after["panic-reboot"] == "warn"  # persisted; `sysctl -p` applies it
    assert not run_checks(facts.read_root(root)).failed
    # comments and unrelated settings survive; backups hold the originals
    sysctl = (root / "etc/sysctl.conf").read_text()
    assert "# Controls IP packet forwarding\nnet.ipv4.ip_forward = 0\n" in sysctl
    assert "kernel.panic = 10\n" in sysctl
    assert "kernel.panic = 0" not in sysctl
    backup = (root / ("etc/sysctl.conf" + cfg.BACKUP_SUFFIX)).read_text()
    assert "kernel.panic = 0\n" in backup
    kdump = (root / "etc/kdump.conf").read_text()
    assert kdump.startswith("# Configures where to put the kdump /proc/vmcore files\n")
    assert "\nextra_modules ata_piix sr_mod sd_mod\noptions ata_piix prefer_ms_hyperv=0\n" in kdump


def test_crashkernel_option_and_reboot_note(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("suse15")
    assert run(["configure", "--root", str(root), "--crashkernel", "320M"]) == 0
    out = capsys.readouterr().out
    assert "reboot needed for: /etc/default/grub" in out
    grub = (root / "etc/default/grub").read_text()
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="splash=silent quiet crashkernel=320M"\n' in grub
    assert "# If you change this file" in grub
    assert run(["configure", "--root", str(root), "--crashkernel", "lots"]) == 2


def test_rhel_grub_gets_the_recommendation(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    plan = cfg.plan(root)
    grub = next(c for c in plan.changes if c.path == "/etc/default/grub")
    assert grub.reboot
    assert 'net.ifnames=0 crashkernel=512M-2G:192M,2G-64G:256M,64G-:512M"\n' in grub.new
    assert any(c.startswith("grubby --update-kernel=ALL") for c in plan.commands)
    assert "systemctl enable --now kdump" in plan.commands


def test_mode_is_kept(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("azure-centos6")
    conf = root / "etc/kdump.conf"
    conf.chmod(0o600)
    cfg.apply(cfg.plan(root))
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def test_symlinks_never_escape_the_root(make_tree: Callable[[str], Path], tmp_path: Path) -> None:
    root = make_tree("azure-centos6")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "sysctl.conf"
    victim.write_text("kernel.panic = 0\n")
    sysctl = root / "etc/sysctl.conf"
    sysctl.unlink()
    # a relative link that climbs out, and an absolute one naming a host path
    os.symlink("../../../../../../../../" + str(victim).lstrip("/"), sysctl)
    assert cfg.resolve_in_root(str(root), "/etc/sysctl.conf") == str(
        root.resolve() / str(victim).lstrip("/")
    )
    (root / "etc/kdump.conf").unlink()
    os.symlink(str(victim), root / "etc/kdump.conf")
    cfg.apply(cfg.plan(root))
    assert victim.read_text() == "kernel.panic = 0\n"
    inside = root / str(victim).lstrip("/")
    assert "kernel.panic = 10" in inside.read_text()


def test_symlink_loop_is_an_error(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("azure-centos6")
    (root / "etc/kdump.conf").unlink()
    os.symlink("/etc/kdump.conf", root / "etc/kdump.conf")
    with pytest.raises(ConfigError, match="symlinks"):
        cfg.plan(root)


def test_stale_plan_is_refused(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("azure-centos6")
    plan = cfg.plan(root)
    (root / "etc/sysctl.conf").write_text("kernel.panic = 3\n")
    with pytest.raises(ConfigError, match="changed since"):
        cfg.apply(plan)


def test_unknown_family(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    with pytest.raises(ConfigError, match="family"):
        cfg.plan(tmp_path)


def run_script(script: str, root: Path, stubs_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Run a user-data script under dash on ``root`` (KDIAG_ROOT) with every command in
    ``names`` stubbed by a script that logs its arguments; the logged calls."""
    stubs_dir.mkdir()
    log = stubs_dir / "calls.log"
    for name in names:
        stub = stubs_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        stub.chmod(0o755)
    proc = subprocess.run(
        ["dash", "-s"],
        input=script.encode(),
        env={"PATH": f"{stubs_dir}:/usr/bin:/bin", "KDIAG_ROOT": str(root)},
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return log.read_text().splitlines()


def test_user_data_script_for_this_root(
    make_tree: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("rhel9-unprepared")
    before = snapshot(root)
    assert run(["configure", "--root", str(root), "--user-data"]) == 0
    script = capsys.readouterr().out
    assert snapshot(root) == before
    assert script.startswith("#!/bin/sh\n")
    assert "# rocky (rhel family) on x86_64." in script
    assert "RAM 7.8G is in the range 2G-64G" in script  # the range rule, explained
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    calls = run_script(script, copy, tmp_path / "stubs", ("dnf", "sysctl", "grubby", "systemctl"))
    assert calls[0] == "dnf install -y kexec-tools makedumpfile crash"
    assert "sysctl --system" in calls
    table = crashkernel.RECOMMENDED["x86_64"]
    assert f"grubby --update-kernel=ALL --args=crashkernel={table}" in calls
    assert "systemctl enable kdump" in calls
    written = (copy / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()
    assert "kernel.unknown_nmi_panic = 1\n" in written
    assert written.endswith("kernel.sysrq = 24\n")  # the running 16, plus 8
    assert run_checks(facts.read_root(copy)).get("unknown-nmi-panic").status == "warn"  # to apply


def test_user_data_for_another_target(
    make_tree: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("rhel9-unprepared")  # the target options win over the root's facts
    argv = ["configure", "--root", str(root), "--user-data", "--distro", "ubuntu"]
    assert run([*argv, "--arch", "aarch64", "--ram", "2G"]) == 0
    script = capsys.readouterr().out
    lines = script.splitlines()
    assert "# ubuntu (debian family) on aarch64.  Installs the packages, writes" in lines
    assert (
        "# RAM 2G is in the range 1G-4G of crashkernel=1G-4G:256M,4G-64G:320M,64G-:576M: 256M."
        in lines
    )
    install = next(i for i, line in enumerate(lines) if "apt-get install" in line)
    assert lines.index("apt-get update") < install
    assert "DEBIAN_FRONTEND=noninteractive" in lines[install]
    assert "Dpkg::Options::=--force-confold" in lines[install]
    assert "kdump-tools.cfg <<" not in script  # kdump-tools' conffile is never written
    target = tmp_path / "target"
    target.mkdir()
    names = ("apt-get", "debconf-set-selections", "update-grub", "sysctl", "systemctl")
    calls = run_script(script, target, tmp_path / "stubs", names)
    assert calls[:2] == ["debconf-set-selections ", "apt-get update"]
    assert calls[2].startswith("apt-get install -y -o Dpkg::Options::=--force-confdef")
    assert "update-grub " in calls
    snippet = (target / "etc/default/grub.d/zz-kdiag-crashkernel.cfg").read_text()
    assert snippet.endswith(
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT '
        'crashkernel=1G-4G:256M,4G-64G:320M,64G-:576M"\n'
    )
    # no running value in the target tree: Debian's kernel default 438, plus 8
    sysctl = (target / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()
    assert sysctl.endswith("kernel.sysrq = 446\n")


def test_user_data_option_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["configure", "--distro", "ubuntu"]) == 2
    assert "--user-data target" in capsys.readouterr().err
    base = ["configure", "--user-data", "--arch", "x86_64"]
    assert run([*base, "--distro", "beos"]) == 2
    assert "not a known distribution" in capsys.readouterr().err
    assert run([*base, "--distro", "debian", "--ram", "lots"]) == 2
    assert "error: --ram: not a size: 'lots'" in capsys.readouterr().err
    assert run(["configure", "--user-data", "--arch", "sparc", "--distro", "debian"]) == 2
    assert "--arch 'sparc': kdiag knows aarch64, ppc64le, s390x, x86_64" in capsys.readouterr().err


def test_install_prints_the_command_without_install(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree("azure-centos6")
    (root / "sbin/makedumpfile").unlink()
    assert run(["configure", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"chroot {root} yum install -y makedumpfile crash" in out


def test_panic_timeout_option(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    cfg.apply(cfg.plan(root, panic_timeout=30))
    assert "kernel.panic = 30\n" in (root / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()
    assert not cfg.plan(root, panic_timeout=30).changes
    with pytest.raises(ConfigError):
        cfg.plan(root, panic_timeout=0)


def test_for_hang_adds_the_lockup_panics(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    assert run_checks(facts.read_root(root), "hang").get("hang-panics").status == "fail"
    assert run(["configure", "--root", str(root), "--for", "hang"]) == 0
    text = (root / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()
    assert "kernel.softlockup_panic = 1\n" in text
    assert "kernel.hung_task_panic = 1\n" in text
    # persisted, not applied: the running values still say 0
    assert run_checks(facts.read_root(root), "hang").get("hang-panics").status == "fail"
    for key in ("softlockup_panic", "hung_task_panic", "hardlockup_panic"):
        (root / "proc/sys/kernel" / key).write_text("1\n")
    assert run_checks(facts.read_root(root), "hang").get("hang-panics").status == "pass"


def test_install_runs_the_package_manager_in_a_chroot(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import require_tool

    root = make_tree("rhel9-unprepared")
    (root / "usr/sbin/makedumpfile").unlink()
    # a static busybox is the chroot's /bin/sh; the "dnf" in the tree logs its arguments
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy(require_tool("busybox"), root / "bin/busybox")
    os.symlink("busybox", root / "bin/sh")
    (root / "usr/bin/dnf").write_text('#!/bin/sh\necho "$@" > /dnf.log\n')
    assert run(["configure", "--root", str(root), "--install"]) == 0
    out = capsys.readouterr().out
    assert f"installing: chroot {root} dnf install -y makedumpfile crash" in out
    assert (root / "dnf.log").read_text() == "install -y makedumpfile crash\n"
    (root / "usr/bin/dnf").write_text("#!/bin/sh\nexit 3\n")
    assert run(["configure", "--root", str(root), "--install"]) == 1
    assert "package installation failed (exit 3)" in capsys.readouterr().err


def test_hyperv_fallback_on_a_current_rhel_keeps_the_continued_line(
    make_tree: Callable[[str], Path],
) -> None:
    from tests.readiness.trees import RHEL_SYSCONFIG

    root = make_tree("azure-centos6")
    (root / "proc/sys/kernel/osrelease").write_text("5.14.0-427.el9.x86_64\n")
    (root / "etc/sysconfig/kdump").write_text(RHEL_SYSCONFIG)
    assert statuses(root)["hyperv-capture-drivers"] == "pass"  # current kernel: not asked for
    assert not any(c.path == "/etc/sysconfig/kdump" for c in cfg.plan(root).changes)
    cfg.apply(cfg.plan(root, hyperv_fallback=True))
    text = (root / "etc/sysconfig/kdump").read_text()
    assert (
        'KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices cgroup_disable=memory '
        "mce=off numa=off udev.children-max=2 panic=10 acpi_no_memhotplug "
        "transparent_hugepage=never "
        "rd.driver.blacklist=hv_vmbus,hv_storvsc,hv_utils,hv_netvsc,hid_hyperv "
        'ata_piix.prefer_ms_hyperv=0"\n'
    ) in text
    assert (
        'numa=off udev.children-max=2 panic=10 acpi_no_memhotplug transparent_hugepage=never"\n'
        not in text
    )
    assert "# This variable lets us append arguments" in text
    assert 'KEXEC_ARGS="-s"' in text
    check = run_checks(facts.read_root(root)).get("hyperv-capture-drivers")
    assert check.status == "pass"
    assert "modern fix present" in check.evidence
    assert not cfg.plan(root, hyperv_fallback=True).changes  # idempotent
    # Generation 2 (UEFI): refused with a note, nothing written
    (root / "etc/sysconfig/kdump").write_text(RHEL_SYSCONFIG)
    (root / "sys/firmware/efi").mkdir(parents=True)
    plan = cfg.plan(root, hyperv_fallback=True)
    assert not any(c.path == "/etc/sysconfig/kdump" for c in plan.changes)
    assert any("Generation 2" in n for n in plan.notes)
    # not Hyper-V at all: an error
    with pytest.raises(ConfigError, match="not a Hyper-V"):
        cfg.plan(make_tree("rhel9-ready"), hyperv_fallback=True)


def test_debian_gets_lzo_level_31_and_keeps_an_existing_choice(
    make_tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # -l -d 31 is what the capture-options tables recommend in place of an unfiltered,
    # uncompressed dump: kdiag's own capture (bench/lab.py) and, for Debian, kdump-tools' own
    # capture path (bench/debian_lab.py --paired; docs/lab.md): LZO saved as fast as zlib or up
    # to 3.6x faster, for a third or more bytes. A filtered and compressed choice already
    # there (-c -d 31, also kdump-tools' default when MAKEDUMP_ARGS is unset) stays.
    root = make_tree("tricky")
    conf = root / "etc/default/kdump-tools"
    conf.write_text('USE_KDUMP=1\n# keep me\nMAKEDUMP_ARGS="-d 1"\n')
    assert run(["configure", "--root", str(root)]) == 0
    assert "MAKEDUMP_ARGS" in capsys.readouterr().out
    text = conf.read_text()
    assert "# keep me\n" in text
    assert "-l -d 31" in text
    conf.write_text('USE_KDUMP=1\nMAKEDUMP_ARGS="-c -d 31"\n')
    assert run(["configure", "--root", str(root)]) == 0
    assert conf.read_text() == 'USE_KDUMP=1\nMAKEDUMP_ARGS="-c -d 31"\n'
    # kdump-tools' shipped file: MAKEDUMP_ARGS commented out, its built-in -c -d 31 applies
    shipped = 'USE_KDUMP=1\n#MAKEDUMP_ARGS="-c -d 31"\n'
    conf.write_text(shipped)
    assert run(["configure", "--root", str(root)]) == 0
    assert conf.read_text() == shipped
    # compressed but not filtered: the whole recommendation, LZO included
    conf.write_text('USE_KDUMP=1\nMAKEDUMP_ARGS="-c"\n')
    assert run(["configure", "--root", str(root)]) == 0
    assert conf.read_text() == 'USE_KDUMP=1\nMAKEDUMP_ARGS="-l -d 31"\n'


def sysctl_file(root: Path) -> str:
    return (root / "etc/sysctl.d/99-kdiag-kdump.conf").read_text()


def test_sysrq_is_never_narrowed(make_tree: Callable[[str], Path]) -> None:
    # the distribution's own file (systemd's 50-default.conf: 16) gets the SysRq-c bit
    root = make_tree("rhel9-unprepared")
    cfg.apply(cfg.plan(root))
    assert "kernel.sysrq = 24\n" in sysctl_file(root)
    assert not cfg.plan(root).changes  # and stays so (our own file is not the base)
    # no file and no running value: the kernel's build default, from /boot/config-*
    root = make_tree("rhel9-unprepared")
    (root / "usr/lib/sysctl.d/50-default.conf").unlink()
    (root / "proc/sys/kernel/sysrq").unlink()
    (root / "boot").mkdir()
    release = (root / "proc/sys/kernel/osrelease").read_text().strip()
    (root / f"boot/config-{release}").write_text("CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE=0x01b6\n")
    cfg.apply(cfg.plan(root))
    assert "kernel.sysrq = 446\n" in sysctl_file(root)  # 438 | 8: sync, remount, reboot kept
    # without a kernel config on a Debian tree: Debian's kernel default 438
    root = make_tree("tricky")
    for name in ('20-we"ird\\name $x.conf',):
        (root / "etc/sysctl.d" / name).unlink()
    cfg.apply(cfg.plan(root))
    assert "kernel.sysrq = 446\n" in sysctl_file(root)
    # a value that already allows SysRq-c is left alone: no kernel.sysrq line at all
    root = make_tree("rhel9-ready")
    cfg.apply(cfg.plan(root))
    assert "kernel.sysrq" not in sysctl_file(root)
    assert run_checks(facts.read_root(root)).get("sysrq").status == "pass"


def test_small_machine_gets_a_reservation(make_tree: Callable[[str], Path]) -> None:
    root = make_tree("rhel9-unprepared")
    (root / "proc/meminfo").write_text("MemTotal:        1890000 kB\nSwapTotal: 0 kB\n")
    plan = cfg.plan(root)
    grub = next(c for c in plan.changes if c.path == "/etc/default/grub")
    assert f"crashkernel={crashkernel.RECOMMENDED['x86_64']}" in grub.new
    assert any("is in the range 512M-2G" in r and r.endswith(": 192M)") for r in grub.reasons)


FAKE_APT_GET = """#!/bin/sh
# a stand-in for apt-get in the chroot: logs its call and its environment; "installs" kdump-tools
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND apt-get $*" >> /apt.log
[ "$1" = update ] && exit 0
mkdir -p /etc/default /usr/sbin /usr/bin /lib/systemd/system
printf 'USE_KDUMP=0\\n' > /etc/default/kdump-tools
for tool in /usr/sbin/kdump-config /usr/sbin/kexec /usr/sbin/makedumpfile /usr/bin/crash; do
    printf '#!/bin/sh\\n' > "$tool"; chmod 755 "$tool"
done
printf '[Unit]\\n' > /lib/systemd/system/kdump-tools.service
"""


def debian_without_kdump(root: Path) -> Path:
    """A Debian tree with a busybox shell and an apt-get that "installs" kdump-tools."""
    from tests.conftest import require_tool

    for d in ("bin", "usr/bin", "etc/sysctl.d", "proc/sys/kernel"):
        (root / d).mkdir(parents=True)
    shutil.copy(require_tool("busybox"), root / "bin/busybox")
    os.symlink("busybox", root / "bin/sh")
    os.symlink("/bin/busybox", root / "usr/bin/env")
    (root / "usr/bin/apt-get").write_text(FAKE_APT_GET)
    (root / "usr/bin/apt-get").chmod(0o755)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    (root / "proc/meminfo").write_text("MemTotal: 1900000 kB\n")
    (root / "proc/sys/kernel/sysrq").write_text("438\n")
    return root


def test_install_dry_run_says_what_it_would_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = debian_without_kdump(tmp_path / "deb")
    before = snapshot(root)
    assert run(["configure", "--root", str(root), "--install", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert snapshot(root) == before
    assert not (root / "apt.log").exists()
    assert f"would install: chroot {root} apt-get update && chroot {root} env " in captured.err
    assert "apt-get install -y -o Dpkg::Options::=--force-confdef" in captured.err
    assert "kdump-tools kexec-tools makedumpfile crash" in captured.err
    assert "+++ b/etc/sysctl.d/99-kdiag-kdump.conf" in captured.out  # the diff alone on stdout
    assert "would install" not in captured.out


def test_install_comes_first_and_debian_conffiles_are_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = debian_without_kdump(tmp_path / "deb")
    assert run(["configure", "--root", str(root), "--install"]) == 0
    out = capsys.readouterr().out
    calls = (root / "apt.log").read_text().splitlines()
    assert calls[0].endswith(" apt-get update")
    assert calls[1].startswith("DEBIAN_FRONTEND=noninteractive apt-get install -y -o ")
    assert "Dpkg::Options::=--force-confold" in calls[1]
    # planned after the install: the package's /etc/default/kdump-tools is configured
    assert out.index("installing: ") < out.index("wrote /etc/default/kdump-tools")
    assert 'USE_KDUMP="1"' in (root / "etc/default/kdump-tools").read_text()
    assert not (root / "etc/default/grub.d/kdump-tools.cfg").exists()  # kdump-tools' conffile
    snippet = (root / "etc/default/grub.d/zz-kdiag-crashkernel.cfg").read_text()
    assert f'crashkernel={crashkernel.RECOMMENDED["x86_64"]}"\n' in snippet
    assert "kernel.sysrq = 446\n" in sysctl_file(root)  # 438 kept, 8 added
