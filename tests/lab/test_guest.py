"""Guests without the Debian build: request checks, the listing's kdump state, and a real
QEMU (no kernel, just firmware) started through the supervisor, so the start-up wait,
Ctrl-C clean-up, the qemu.qmp event watcher and NMIs through the qmp backend run for real."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu.qmp import QMPClient

from kdiag.cli import lab as cli_lab
from kdiag.cli import main as cli_main
from kdiag.errors import BackendTimeout, ConfigError, IncorrectState
from kdiag.lab import Guest, Lab
from kdiag.lab import guest as guest_module
from kdiag.lab.corpus import CORPUS_FORMATS
from kdiag.lab.guest import GuestSpec
from kdiag.lab.profiles import TRIGGERS
from tests.conftest import require_tool


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus": 0}, "1 to 255 vCPUs, not 0"),
        ({"cpus": -2}, "not -2"),
        ({"cpus": 256}, "not 256"),
        ({"cpus": True}, "not True"),
        ({"memory": 128}, "at least 256M"),
        ({"memory": "0"}, "at least 256M"),
        ({"memory": "64T"}, "bad memory size '64T'"),
        ({"memory": "100000G"}, "more than this host has"),
        ({"name": "Web_1"}, "bad guest name 'Web_1'"),
        ({"name": "-x"}, "bad guest name"),
        ({"name": "x" * 33}, "bad guest name"),
        ({"profile": "nope"}, "unknown lab profile 'nope'"),
        ({"arch": "riscv64"}, "unknown lab architecture 'riscv64'"),
        ({"arch": "arm64", "cpus": 9}, "on arm64 has 1 to 8 vCPUs, not 9"),
    ],
)
def test_up_checks_the_request_before_building(tmp_path, kwargs, message):
    request = {"name": "t1", "profile": "default", "memory": "512M", "cpus": 2, **kwargs}
    with pytest.raises(ConfigError, match=message):
        GuestSpec.check(**request)
    with pytest.raises(ConfigError, match=message):
        Lab(tmp_path / "lab").up(**request)
    assert not (tmp_path / "lab").exists()  # nothing created, nothing downloaded


def test_spec_accepts_what_qemu_takes():
    spec = GuestSpec.check("t-1", "dump-l31", "1G", 1)
    assert (spec.memory_mib, spec.cpus, spec.profile.name) == (1024, 1, "dump-l31")
    assert GuestSpec.check("t", "default", 300, 255).memory_mib == 300
    arm = GuestSpec.check("a", "default", "1G", 8, arch="aarch64")
    assert (arm.arch.name, arm.arch.console, arm.arch.command_tty) == ("arm64", "ttyAMA0", "hvc0")


def test_lab_reads_without_creating_and_refuses_paths_as_names(tmp_path):
    lab = Lab(tmp_path / "absent" / "lab")
    assert lab.list() == []
    assert not (tmp_path / "absent").exists()
    with pytest.raises(ConfigError, match=r"bad guest name '\.\./x'"):
        lab.get("../x")


def _stopped_guest(root: Path, kdump_loaded: bool) -> Guest:
    directory = root / "old"
    directory.mkdir(parents=True)
    config = {"name": "old", "profile": "default", "accel": "tcg", "memory_mib": 512, "cpus": 2}
    (directory / "guest.json").write_text(json.dumps(config))
    status = {"phase": "ready", "kdump_loaded": kdump_loaded, "boots": 1, "dumps": 0}
    (directory / "status.json").write_text(json.dumps(status))
    (directory / "state.json").write_text(json.dumps({"qemu_pid": 0, "supervisor_pid": 0}))
    return Guest(directory)


def test_a_stopped_guest_shows_no_kdump_state(tmp_path, capsys):
    guest = _stopped_guest(tmp_path, kdump_loaded=True)
    data = guest.to_json()
    assert (data["phase"], data["kdump_loaded"]) == ("stopped", None)
    assert cli_main.run(["lab", "list", "--root", str(tmp_path), "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(g["phase"], g["kdump_loaded"]) for g in listed] == [("stopped", None)]
    assert cli_main.run(["lab", "list", "--root", str(tmp_path), "--output", "text"]) == 0
    assert "loaded" not in capsys.readouterr().out
    with pytest.raises(IncorrectState, match="lab guest old is not running"):
        guest.inject_nmi()


def test_help_lists_every_trigger_and_format(capsys):
    assert cli_main.run(["lab", "trigger", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(kind in text for kind in TRIGGERS)
    assert cli_main.run(["lab", "corpus", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(fmt in text for fmt in CORPUS_FORMATS)


@pytest.mark.parametrize("command", ["nmi", "trigger"])
def test_timeout_must_be_positive(tmp_path, capsys, command):
    args = ["lab", command, "g", *(["sysrq-c"] if command == "trigger" else [])]
    assert cli_main.run([*args, "--timeout", "0", "--root", str(tmp_path)]) == 2
    assert "--timeout must be a positive number" in capsys.readouterr().err


# --- a real QEMU under the real supervisor ---------------------------------------------------


@pytest.fixture
def short_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="kdl-", dir="/tmp"))  # unix socket paths stay short
    yield root
    for guest in Lab(root).list():
        guest.down()
    shutil.rmtree(root, ignore_errors=True)


def _firmware_guest(root: Path, name: str = "fw") -> Path:
    """A guest directory whose QEMU runs only SeaBIOS: it starts in well under a second."""
    qemu = require_tool("qemu-system-x86_64")
    directory = root / name
    directory.mkdir(mode=0o700)
    config = {
        "name": name,
        "profile": "default",
        "accel": "tcg",
        "memory_mib": 32,
        "cpus": 1,
        "qemu_args": [
            qemu,
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-m",
            "32",
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            f"file:{directory / 'console.log'}",
            "-qmp",
            f"unix:{directory / 'qmp.sock'},server=on,wait=off",
            "-chardev",
            f"socket,id=ev0,path={directory / 'events.sock'},server=on,wait=off",
            "-mon",
            "chardev=ev0,mode=control",
        ],
    }
    (directory / "guest.json").write_text(json.dumps(config))
    return directory


def _qmp(socket: Path, command: str) -> object:
    async def run() -> object:
        client = QMPClient("test")
        await client.connect(str(socket))
        try:
            return await client.execute(command)
        finally:
            await client.disconnect()

    return asyncio.run(run())


def _wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _events(guest: Guest) -> list[dict[str, object]]:
    """The events the supervisor has logged so far (a line it is still writing is left out)."""
    path = guest.directory / "events.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [json.loads(line) for line in lines]


def _event_names(guest: Guest) -> list[dict[str, object]]:
    """Each logged event as just its name and data."""
    return [{"event": e["event"], "data": e["data"]} for e in _events(guest)]


def test_start_nmi_through_the_qmp_backend_and_events(short_root):
    guest = guest_module._start(_firmware_guest(short_root))
    try:
        assert guest.running
        # The qmp backend's running-state check, which the lab used to skip.  Checked before
        # any NMI: an NMI that lands in SeaBIOS's POST can triple-fault it (a guest reset,
        # about 1 NMI in 5 here), and a reset QEMU handles while stopped leaves it in
        # 'prelaunch', not 'paused'.
        _qmp(guest.qmp_socket, "stop")
        with pytest.raises(IncorrectState, match="'paused', not running; NMI not sent"):
            guest.inject_nmi()
        _qmp(guest.qmp_socket, "cont")
        result = guest.inject_nmi()
        assert result.backend == "qmp"
        assert "inject-nmi" in result.detail
        # The supervisor follows the second monitor through qemu.qmp: wait for this reset
        # (guest false), not for one the NMI may have caused in the firmware (guest true).
        _qmp(guest.qmp_socket, "system_reset")
        host_reset = {"guest": False, "reason": "host-qmp-system-reset"}
        _wait_for(lambda: {"event": "RESET", "data": host_reset} in _event_names(guest))
        # The supervisor logs an event before it saves the phase: wait for that too.
        _wait_for(lambda: guest.status()["phase"] == "rebooting")
        assert {"STOP", "RESUME", "RESET"} <= {e["event"] for e in _events(guest)}
    finally:
        guest.down()
    assert not guest.running
    assert not guest.supervisor_running


def test_a_reset_while_stopped_leaves_prelaunch_and_no_nmi_is_sent(short_root):
    """What made the test above flaky, on purpose: QEMU handles a reset that comes while the
    guest is stopped by going to 'prelaunch'; the lab says so and sends no NMI."""
    guest = guest_module._start(_firmware_guest(short_root))
    try:
        _qmp(guest.qmp_socket, "stop")
        _qmp(guest.qmp_socket, "system_reset")
        _wait_for(lambda: _qmp(guest.qmp_socket, "query-status")["status"] == "prelaunch")
        with pytest.raises(IncorrectState, match="'prelaunch', not running; NMI not sent"):
            guest.inject_nmi()
        _qmp(guest.qmp_socket, "cont")
        _wait_for(lambda: _qmp(guest.qmp_socket, "query-status")["status"] == "running")
        assert guest.inject_nmi().backend == "qmp"
    finally:
        guest.down()


def test_interrupted_start_stops_the_guest(short_root, monkeypatch):
    directory = _firmware_guest(short_root)

    def interrupted(guest: Guest, timeout: float) -> None:
        _wait_for(lambda: guest.running)
        raise KeyboardInterrupt

    monkeypatch.setattr(guest_module, "_wait_until_running", interrupted)
    with pytest.raises(KeyboardInterrupt):
        guest_module._start(directory)
    guest = Guest(directory)
    assert not guest.running
    assert not guest.supervisor_running


def test_qemu_that_exits_at_once_is_reported(short_root):
    directory = _firmware_guest(short_root)
    config = json.loads((directory / "guest.json").read_text())
    config["qemu_args"].append("-no-such-option")
    (directory / "guest.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match=r"QEMU exited at once: .*no-such-option"):
        guest_module._start(directory)
    assert not Guest(directory).supervisor_running


def test_cli_ctrl_c_while_waiting_stops_the_guest(short_root, monkeypatch, capsys):
    guest = guest_module._start(_firmware_guest(short_root))

    def interrupted(timeout: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(guest, "wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli_lab._wait_ready_or_stop(guest, 300)
    assert not guest.running
    assert "interrupted before it was ready; stopped" in capsys.readouterr().err


def test_cli_timeout_says_the_guest_keeps_running(short_root, monkeypatch):
    guest = guest_module._start(_firmware_guest(short_root))
    try:
        with pytest.raises(BackendTimeout, match=r"keeps running \(kdiag lab down fw stops it\)"):
            cli_lab._wait_ready_or_stop(guest, 0.5)  # SeaBIOS never prints LAB-READY
        assert guest.running
    finally:
        guest.down()


def test_a_guest_that_never_started_is_stopped_and_has_no_console(tmp_path, capsys):
    directory = tmp_path / "never"
    directory.mkdir()
    config = {"name": "never", "profile": "default", "accel": "tcg", "memory_mib": 512, "cpus": 2}
    (directory / "guest.json").write_text(json.dumps(config))
    assert Guest(directory).phase == "starting"  # Lab.up may still be starting it
    old = time.time() - 120
    os.utime(directory / "guest.json", (old, old))
    assert Guest(directory).phase == "stopped"
    args = ["lab", "console", "never", "--no-follow", "--root", str(tmp_path)]
    assert cli_main.run(args) == 0
    out = capsys.readouterr()
    assert (out.out, "no console output" in out.err) == ("", True)
