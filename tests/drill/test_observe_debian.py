"""LabWatch on a Debian lab guest, without QEMU: a guest directory whose console, status and
disk copy the test writes as kdump-tools and debian-ready.sh would. The dump must be the
crash directory that appeared after the send, copied only once the guest is ready again; a
capture that saved nothing must say so, from kdump-tools' own line or from the listing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kdiag.drill.observe import LabWatch
from kdiag.errors import BackendUnavailable
from kdiag.lab.guest import Guest

OLD = (
    "LAB: LAB-DEBIAN-CRASH dir=/var/crash/202612061900/ files=dmesg.202612061900,dump.202612061900,"
)
NEW = (
    "LAB: LAB-DEBIAN-CRASH dir=/var/crash/202612070130/ files=dmesg.202612070130,dump.202612070130,"
)
CAPTURE = (
    "[    0.000000] Command line: root=/dev/vda rw console=ttyS0 reset_devices "
    "systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll nousb elfcorehdr=130508K"
)
NFS_FAILED = (
    "[   31.5] kdump-tools[402]: Unable to mount remote NFS directory 192.0.2.1:/srv/crash. "
    "Cannot save core ... failed!"
)


class FakeDebian:
    """A stopped-looking Debian lab guest whose files the test writes."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir()
        config = {"name": "deb", "profile": "debian-configured", "accel": "tcg"}
        config |= {"memory_mib": 512, "cpus": 1, "kind": "debian"}
        (directory / "guest.json").write_text(json.dumps(config))
        self.status = {"phase": "ready", "boots": 1, "ready_count": 1, "dumps": 0}
        self._save()
        self.say("LAB: first kernel 6.1.0-41-amd64 up", OLD, "LAB: LAB-READY kdump_loaded=1")

    def _save(self) -> None:
        (self.dir / "status.json").write_text(json.dumps(self.status))

    def say(self, *lines: str) -> None:
        with open(self.dir / "console.log", "a") as fh:
            fh.write("".join(line + "\n" for line in lines))

    def back(self, *listing: str) -> None:
        """The next boot: its marks, the crash listing, then ready."""
        self.say("LAB: first kernel 6.1.0-41-amd64 up", *listing, "LAB: LAB-READY kdump_loaded=1")
        self.status.update(boots=2, ready_count=2)
        self._save()

    def guest(self) -> Guest:
        return Guest(self.dir)


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """copy_crash_live stands in: it records the call and makes the directory it would."""
    calls: list[tuple[str, str]] = []

    def fake(guest: Guest, stamp: str) -> Path:
        calls.append((guest.name, stamp))
        out = guest.crash_dir / f"{guest.name}-{stamp}"
        out.mkdir(parents=True)
        (out / f"dump.{stamp}").write_bytes(b"KDUMP   ")
        (out / f"dmesg.{stamp}").write_text("log\n")
        return out

    monkeypatch.setattr("kdiag.lab.distro.copy_crash_live", fake)
    return calls


def _poll_all(watch: LabWatch) -> list[str]:
    return watch.poll() + watch.poll()


def test_the_new_directory_is_copied_once_the_guest_is_ready(
    tmp_path: Path, copies: list[Any]
) -> None:
    vm = FakeDebian(tmp_path / "g")
    watch = LabWatch(vm.guest())
    assert watch.debian
    assert watch.poll() == []
    vm.say("[ 100.1] NMI: Not continuing", CAPTURE)
    notes = watch.poll()
    assert watch.capture_started
    assert watch.panic_seen
    assert any("Command line" in n for n in notes)
    vm.say("LAB: capture kernel 6.1.0-41-amd64 up (kdump-tools-dump)")
    vm.say("[  40.2] kdump-tools[402]: saved vmcore in /var/crash/202612070130")
    watch.poll()
    assert copies == []  # not before the guest is back: the dump is in ext4's journal
    vm.back(OLD, NEW)
    notes = _poll_all(watch)
    assert copies == [("deb", "202612070130")]  # the old directory is not this crash's
    assert watch.new_dump == vm.dir / "crash" / "deb-202612070130" / "dump.202612070130"
    assert watch.capture_failed is None
    assert watch.dump_error is None
    assert watch.rebooted
    assert watch.ready_again
    assert any("copied to" in n for n in notes)


def test_kdump_tools_failure_line_is_the_capture_failure(tmp_path: Path, copies: list[Any]) -> None:
    vm = FakeDebian(tmp_path / "g")
    watch = LabWatch(vm.guest())
    vm.say(CAPTURE, NFS_FAILED)
    watch.poll()
    assert watch.capture_failed is not None
    assert "Cannot save core" in watch.capture_failed
    vm.back(OLD)
    _poll_all(watch)
    assert copies == []
    assert watch.new_dump is None
    assert "Cannot save core" in watch.capture_failed


def test_a_capture_that_left_no_dump_file_is_a_failure(tmp_path: Path, copies: list[Any]) -> None:
    vm = FakeDebian(tmp_path / "g")
    watch = LabWatch(vm.guest())
    vm.say(CAPTURE)
    watch.poll()
    vm.back(OLD, NEW.replace("dump.202612070130", "dump-incomplete"))
    _poll_all(watch)
    assert copies == []
    assert watch.new_dump is None
    assert watch.capture_failed is not None
    assert "saved no dump" in watch.capture_failed
    assert "dump-incomplete" in watch.capture_failed


def test_no_capture_kernel_and_no_new_directory_is_not_a_capture_failure(
    tmp_path: Path, copies: list[Any]
) -> None:
    vm = FakeDebian(tmp_path / "g")
    watch = LabWatch(vm.guest())
    vm.say("Kernel panic - not syncing: NMI: Not continuing")
    vm.back(OLD)
    _poll_all(watch)
    assert watch.panic_seen
    assert not watch.capture_started
    assert watch.capture_failed is None
    assert watch.new_dump is None
    assert copies == []


def test_a_failed_copy_is_reported_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(_guest: Guest, _stamp: str) -> Path:
        raise BackendUnavailable("QMP qmp.sock: monitor busy or gone")

    monkeypatch.setattr("kdiag.lab.distro.copy_crash_live", busy)
    vm = FakeDebian(tmp_path / "g")
    watch = LabWatch(vm.guest())
    vm.say(CAPTURE)
    vm.back(OLD, NEW)
    _poll_all(watch)
    assert watch.new_dump is None
    assert watch.dump_error is not None
    assert "monitor busy" in watch.dump_error
    assert watch.capture_failed is None  # the capture itself saved a dump


def test_a_busybox_guest_is_not_read_as_debian(tmp_path: Path, copies: list[Any]) -> None:
    vm = FakeDebian(tmp_path / "g")
    config = json.loads((vm.dir / "guest.json").read_text())
    config["kind"] = "busybox"
    (vm.dir / "guest.json").write_text(json.dumps(config))
    watch = LabWatch(vm.guest())
    assert not watch.debian
    vm.say(CAPTURE)
    vm.back(OLD, NEW)
    _poll_all(watch)
    assert copies == []
    assert watch.new_dump is None
    assert watch.capture_failed is None
