"""The host-side watcher of one lab guest: runs QEMU and follows what the guest does.

Started detached by ``Lab.up`` as ``python -m kdiag.lab.supervisor GUEST_DIR``. It starts
QEMU, listens to QMP events (through qemu.qmp) on a second monitor (the first,
``qmp.sock``, stays free for users such as the QMP backend), follows the serial console,
and keeps ``status.json``:

- phase: booting → ready → crashed → capturing → rebooting → booting ..., or stopped;
- the readiness marker count and ``kdump_loaded``;
- after ``LAB-DUMP-DONE`` it copies the dump out of the guest's dump disk with ``debugfs``
  into ``crash/<name>-<YYYY-MM-DD-HH:MM:SS>/`` (files 0600) and counts it;
- the readiness facts block becomes ``facts.json``.

It exits when QEMU exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, QMPClient

from kdiag.lab.console import ConsoleFollower, decode_facts, parse_fields

__all__ = ("Supervisor", "extract_dump", "main")

_CRASH_EVENTS = {"GUEST_CRASHLOADED", "GUEST_PANICKED"}
#: How long QEMU may take to create its event monitor socket.
_MONITOR_SECONDS = 30.0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _debugfs(disk: Path, request: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["debugfs", "-R", request, str(disk)], capture_output=True, text=True, check=False
    )


def _slug(opts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", opts.replace("_", "")) or "dump"


def extract_dump(disk: Path, crash_root: Path, host: str, when: datetime.datetime) -> Path:
    """Copy the capture kernel's files out of ``disk`` into a new crash directory."""
    stamp = when.strftime("%Y-%m-%d-%H:%M:%S")
    final = crash_root / f"{host}-{stamp}"
    n = 1
    while final.exists():
        n += 1
        final = crash_root / f"{host}-{stamp}.{n}"
    tmp = crash_root / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    old = os.umask(0o077)
    try:
        _debugfs(disk, f"dump /dumps.txt {tmp / 'dumps.txt'}")
        listing = (tmp / "dumps.txt").read_text() if (tmp / "dumps.txt").exists() else ""
        manifest = []
        for line in listing.splitlines():
            fields = parse_fields(line)
            index = line.split()[0]
            name = "vmcore" if index == "1" else f"vmcore.{_slug(fields.get('opts', index))}"
            _debugfs(disk, f"dump /vmcore.{index} {tmp / name}")
            manifest.append(
                {
                    "file": name,
                    "makedumpfile": fields.get("opts", "").replace("_", " "),
                    "rc": int(fields.get("rc", "-1")),
                    "size": int(fields.get("size", "0")),
                    "seconds": round(
                        float(fields.get("end", 0)) - float(fields.get("start", 0)), 2
                    ),
                }
            )
        _debugfs(disk, f"dump /dmesg.txt {tmp / 'dmesg.txt'}")
        (tmp / "dumps.txt").unlink(missing_ok=True)
        _write_json(tmp / "capture.json", {"dumps": manifest, "host": host, "time": stamp})
        for path in tmp.iterdir():
            path.chmod(0o600)
    finally:
        os.umask(old)
    tmp.rename(final)
    return final


def first_dump_saved(crash_dir: Path) -> bool:
    """Whether the capture kernel's first makedumpfile run succeeded and left a ``vmcore``
    (a failed run still leaves ``capture.json`` and ``dmesg.txt`` as evidence)."""
    try:
        dumps = json.loads((crash_dir / "capture.json").read_text())["dumps"]
    except (OSError, ValueError, KeyError):
        return False
    vmcore = crash_dir / "vmcore"
    return bool(dumps) and dumps[0].get("rc") == 0 and vmcore.exists() and vmcore.stat().st_size > 0


class Supervisor:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.config = json.loads((directory / "guest.json").read_text())
        self.lock = threading.Lock()
        self.status: dict[str, Any] = {
            "phase": "starting",
            "boots": 0,
            "ready_count": 0,
            "kdump_loaded": None,
            "crashes": 0,
            "dumps": 0,
            "last_dump": None,
            "capture_failures": 0,
            "last_failed_capture": None,
            "capture_started": None,
            "last_event": None,
            "events": None,
            "updated": time.time(),
        }
        self.qemu: subprocess.Popen[bytes] | None = None
        self.capture_time: datetime.datetime | None = None
        self.facts: list[str] | None = None

    def save(self, **changes: Any) -> None:
        with self.lock:
            self.status.update(changes)
            self.status["updated"] = time.time()
            _write_json(self.dir / "status.json", self.status)

    def log_event(self, event: dict[str, Any], offset: int) -> None:
        record = {"event": event.get("event"), "data": event.get("data"), "console_offset": offset}
        ts = event.get("timestamp") or {}
        record["time"] = ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
        with open(self.dir / "events.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def watch_events(self, follower: ConsoleFollower) -> None:
        """Follow QMP events until QEMU exits (runs in a thread of its own)."""
        try:
            asyncio.run(self._follow_events(follower))
        except Exception as exc:  # noqa: BLE001 - the console watcher goes on without events
            print(f"event monitor: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    async def _follow_events(self, follower: ConsoleFollower) -> None:
        client = QMPClient(f"kdiag-lab-{self.config['name']}")
        await self._connect(client)
        try:
            while self._qemu_running():
                try:
                    event = await asyncio.wait_for(client.events.get(), 1.0)
                except TimeoutError:
                    continue
                self.handle_event(dict(event), follower.offset)
        finally:
            with contextlib.suppress(Exception):  # QEMU may have gone away first
                await client.disconnect()

    async def _connect(self, client: QMPClient) -> None:
        """Connect to ``events.sock``, which QEMU creates a moment after it starts, and say
        so in ``status.json`` (``events``: ``watched``, or ``unavailable`` on failure)."""
        path = self.dir / "events.sock"
        deadline = time.monotonic() + _MONITOR_SECONDS
        while True:
            try:
                if path.exists():  # qemu.qmp logs every failed attempt as an error
                    await client.connect(str(path))
                    break
            except ConnectError:
                pass
            if time.monotonic() > deadline or not self._qemu_running():
                self.save(events="unavailable")
                raise TimeoutError(f"QEMU exited or did not open its event monitor {path}")
            await asyncio.sleep(0.05)
        self.save(events="watched")

    def _qemu_running(self) -> bool:
        return self.qemu is not None and self.qemu.poll() is None

    def handle_event(self, event: dict[str, Any], offset: int) -> None:
        """Log one QMP event; a crash or a reset changes the phase."""
        self.log_event(event, offset)
        name = event.get("event")
        if name in _CRASH_EVENTS:
            with self.lock:
                crashes = self.status["crashes"] + 1
            self.save(phase="crashed", crashes=crashes, last_event=name)
        elif name == "RESET":
            self.save(phase="rebooting", last_event=name)

    def handle_line(self, text: str) -> None:
        """Follow one console line: the facts block, a panic, or one of init.sh's LAB marks."""
        if self.facts is not None:
            self._collect_facts(text)
        elif "LAB: " not in text:
            if "Kernel panic - not syncing" in text and self.status["phase"] == "ready":
                self.save(phase="crashed", crashes=self.status["crashes"] + 1)
        elif "LAB: LAB-FACTS-BEGIN" in text:
            self.facts = []
        elif "LAB: first kernel" in text:
            self.save(phase="booting", boots=self.status["boots"] + 1)
        elif "LAB: LAB-READY" in text:
            fields = parse_fields(text)
            self.save(
                phase="ready",
                ready_count=self.status["ready_count"] + 1,
                kdump_loaded=fields.get("kdump_loaded") == "1",
            )
        else:
            self._capture_mark(text)

    def _collect_facts(self, text: str) -> None:
        """A line inside the facts block; its end mark publishes facts.json atomically."""
        assert self.facts is not None
        if "LAB: LAB-FACTS-END" not in text:
            self.facts.append(text)
            return
        data = decode_facts(self.facts)
        self.facts = None
        if data is not None:
            tmp = self.dir / "facts.json.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.dir / "facts.json")

    def _capture_mark(self, text: str) -> None:
        """The capture kernel's marks: started, hung, failed, or done (extract the dump)."""
        if "LAB: capture kernel" in text:
            self.capture_time = datetime.datetime.now().replace(microsecond=0)
            if self.status["phase"] == "ready":  # no QMP event seen (no pvpanic driver)
                self.status["crashes"] += 1
            self.save(phase="capturing", capture_started=time.time())
        elif "LAB-CAPTURE-HANG" in text:
            self.save(phase="capture-hang")
        elif "LAB: LAB-DUMP-FAILED" in text:
            self.save(phase="dump-failed")
        elif "LAB: LAB-DUMP-DONE" in text:
            when = self.capture_time or datetime.datetime.now().replace(microsecond=0)
            try:
                path = extract_dump(
                    self.dir / "disk.img", self.dir / "crash", self.config["name"], when
                )
            except OSError as exc:
                print(f"extracting the dump failed: {exc}", file=sys.stderr, flush=True)
                self.save(phase="dump-failed")
                return
            if not first_dump_saved(path):
                # e.g. arm64's kexec -p _text trap: the capture kernel ran, makedumpfile failed
                self.save(
                    phase="dump-failed",
                    capture_failures=self.status.get("capture_failures", 0) + 1,
                    last_failed_capture=str(path),
                )
                return
            self.save(phase="rebooting", dumps=self.status["dumps"] + 1, last_dump=str(path))

    def run(self) -> int:
        args = self.config["qemu_args"]
        with open(self.dir / "qemu.log", "ab") as log:
            self.qemu = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _write_json(
            self.dir / "state.json",
            {"qemu_pid": self.qemu.pid, "supervisor_pid": os.getpid(), "started": time.time()},
        )
        self.save(phase="booting")

        def _stop(_sig: int, _frm: object) -> None:
            if self.qemu is not None and self.qemu.poll() is None:
                self.qemu.terminate()

        signal.signal(signal.SIGTERM, _stop)
        follower = ConsoleFollower(self.dir / "console.log")
        threading.Thread(target=self.watch_events, args=(follower,), daemon=True).start()
        while True:
            for _, text in follower.lines():
                self.handle_line(text)
            if self.qemu.poll() is not None:
                for _, text in follower.lines():
                    self.handle_line(text)
                break
            time.sleep(0.05)
        self.save(phase="stopped", qemu_exit=self.qemu.returncode)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--foreground" not in args:
        # detach: the caller waits for this parent only, the child is nobody's zombie
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
    return Supervisor(Path(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
