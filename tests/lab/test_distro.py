"""The Debian guest's pieces that need no guest: the boot loader's command line from grub's
defaults, and reading kdump-tools' /var/crash out of an ext4 image with debugfs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kdiag.errors import BackendError, ConfigError
from kdiag.lab.distro import IMAGE_VARIANTS, _inputs_hash, extract_crash, grub_cmdline, vmcore_of
from kdiag.lab.guest import Guest
from kdiag.readiness.distro import DEBIAN_GRUB_SNIPPET
from tests.conftest import require_tool


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_grub_cmdline_sources_the_defaults_in_grubs_order(tmp_path: Path) -> None:
    write(
        tmp_path, "etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n'
    )
    write(
        tmp_path,
        "etc/default/grub.d/kdump-tools.cfg",
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M"\n',
    )
    assert grub_cmdline(tmp_path) == "quiet crashkernel=384M-:128M"
    # kdiag configure's snippet sorts after kdump-tools.cfg: its crashkernel= comes last
    write(
        tmp_path,
        DEBIAN_GRUB_SNIPPET.lstrip("/"),
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=512M-2G:192M"\n',
    )
    words = grub_cmdline(tmp_path).split()
    assert words == ["quiet", "crashkernel=384M-:128M", "crashkernel=512M-2G:192M"]


def test_grub_cmdline_without_grub_files_is_empty(tmp_path: Path) -> None:
    assert grub_cmdline(tmp_path) == ""


def test_grub_cmdline_broken_file_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "etc/default/grub", 'GRUB_CMDLINE_LINUX="unterminated\n')
    with pytest.raises(ConfigError):
        grub_cmdline(tmp_path)


def test_inputs_hash_is_stable() -> None:
    assert _inputs_hash() == _inputs_hash()
    assert len(_inputs_hash()) == 16
    assert IMAGE_VARIANTS == ("fresh", "configured")


def stopped_guest(directory: Path, tree: Path) -> Guest:
    require_tool("mkfs.ext4")
    require_tool("debugfs")
    directory.mkdir()
    (directory / "guest.json").write_text(
        json.dumps(
            {"name": "deb", "profile": "debian-fresh", "accel": "tcg", "memory_mib": 512, "cpus": 1}
        )
    )
    image = directory / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image)], check=True)
    return Guest(directory)


def test_extract_crash_copies_kdump_tools_directories(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write(tree, "var/crash/202612062201/dump.202612062201", "KDUMP   " + "x" * 5000)
    write(tree, "var/crash/202612062201/dmesg.202612062201", "[0.0] Linux version\n")
    write(tree, "var/crash/202612062359/dump.202612062359", "KDUMP   second")
    write(tree, "var/crash/kexec_cmd", "not a dump directory")
    write(tree, "var/crash/notastamp/dump.1", "ignored")
    guest = stopped_guest(tmp_path / "g", tree)
    got = extract_crash(guest)
    assert [p.name for p in got] == ["deb-202612062201", "deb-202612062359"]
    first = got[0]
    assert (first / "dump.202612062201").read_text() == "KDUMP   " + "x" * 5000
    assert vmcore_of(first) == first / "dump.202612062201"
    for path in first.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    # a second call adds nothing (the directories are already there)
    assert extract_crash(guest) == []
    assert not list(guest.crash_dir.glob(".*"))


def test_extract_crash_without_var_crash(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write(tree, "etc/hostname", "x\n")
    assert extract_crash(stopped_guest(tmp_path / "g", tree)) == []


def test_extract_crash_refuses_a_running_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    write(tree, "etc/hostname", "x\n")
    guest = stopped_guest(tmp_path / "g", tree)
    monkeypatch.setattr(Guest, "running", property(lambda _self: True))
    with pytest.raises(BackendError, match="stop it"):
        extract_crash(guest)


def test_lab_up_debian_refuses_bad_requests_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kdiag.cli.main import run

    root = str(tmp_path / "lab")
    assert run(["lab", "up", "--debian", "sid", "--name", "d", "--root", root]) == 2
    assert "unknown Debian image 'sid'" in capsys.readouterr().err
    assert run(["lab", "up", "--debian", "fresh", "--arch", "arm64", "--root", root]) == 2
    assert run(["lab", "up", "--debian", "fresh", "--profile", "unprepared", "--root", root]) == 2
    assert run(["lab", "up", "--debian", "fresh", "--name", "Bad_Name", "--root", root]) == 2
    assert not (tmp_path / "lab").exists() or not any((tmp_path / "lab").iterdir())


def test_makedump_args_are_written_into_the_image(tmp_path: Path) -> None:
    from kdiag.lab.distro import _set_makedump_args

    tree = tmp_path / "tree"
    write(
        tree,
        "etc/default/kdump-tools",
        'USE_KDUMP=1\n#MAKEDUMP_ARGS="-c -d 31"\nMAKEDUMP_ARGS="-c"\n',
    )
    guest = stopped_guest(tmp_path / "g", tree)
    disk = guest.directory / "disk.img"
    _set_makedump_args(disk, guest.directory, "-l -d 31")
    got = subprocess.run(
        ["debugfs", "-R", "cat /etc/default/kdump-tools", str(disk)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert got == 'USE_KDUMP=1\n#MAKEDUMP_ARGS="-c -d 31"\nMAKEDUMP_ARGS="-l -d 31"\n'
    assert not (guest.directory / "kdump-tools.default").exists()


def test_debian_up_refuses_shell_in_makedump_args(tmp_path: Path) -> None:
    from kdiag.lab import Lab
    from kdiag.lab.distro import debian_up

    for bad in ('-l"; reboot; "', "-c $(id)", "", "x" * 65):
        with pytest.raises(ConfigError, match="bad makedumpfile options"):
            debian_up(Lab(tmp_path), "d", "fresh", makedump_args=bad)
