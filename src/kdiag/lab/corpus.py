"""``kdiag lab corpus``: a set of real crash dumps, one crash per trigger, each saved in
several makedumpfile formats, with a ``manifest.json`` describing every file.

This is how test fixtures and benchmark inputs are made. Layout::

    OUT_DIR/manifest.json
    OUT_DIR/<trigger>/<format>/vmcore   (0600)
    OUT_DIR/<trigger>/dmesg.txt
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kdiag.errors import ConfigError
from kdiag.lab.guest import Lab
from kdiag.lab.profiles import TRIGGERS

__all__ = ("CORPUS_FORMATS", "CORPUS_TRIGGERS", "make_corpus")

#: format name -> makedumpfile options
CORPUS_FORMATS: dict[str, tuple[str, ...]] = {
    "kdump-zlib": ("-c", "-d", "31"),
    "kdump-lzo": ("-l", "-d", "31"),
    "kdump-none": ("-d", "31"),
    "flattened-zlib": ("-F", "-c", "-d", "31"),
    "elf": ("-E", "-d", "31"),
}
CORPUS_TRIGGERS = ("nmi", *TRIGGERS)

_PANIC_MARKERS = ("Kernel panic - not syncing:", "BUG:", "Oops:", "general protection fault")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_panic_line(log: str) -> str | None:
    for line in log.splitlines():
        text = line.split("] ", 1)[-1]
        if text.startswith(_PANIC_MARKERS) or "Kernel panic - not syncing" in text:
            return text
    return None


def make_corpus(
    out_dir: Path,
    *,
    triggers: Sequence[str] = CORPUS_TRIGGERS,
    formats: Sequence[str] = tuple(CORPUS_FORMATS),
    memory: str = "512M",
    cpus: int = 2,
    lab: Lab | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Crash one guest once per trigger; returns the manifest (also written to disk)."""
    note = progress or (lambda _m: None)
    unknown = [t for t in triggers if t not in CORPUS_TRIGGERS]
    unknown += [f for f in formats if f not in CORPUS_FORMATS]
    if unknown:
        raise ConfigError(f"unknown corpus trigger/format: {', '.join(unknown)}")
    lab = lab or Lab()
    info = lab.build(note)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sets = tuple(CORPUS_FORMATS[f] for f in formats)
    name = f"corpus-{os.getpid()}"
    guest = lab.up(name=name, profile="default", memory=memory, cpus=cpus, dumps=sets)
    entries: list[dict[str, Any]] = []
    try:
        for trigger in triggers:
            guest.wait_ready(timeout)
            note(f"{trigger}: crashing the guest")
            started = time.monotonic()
            if trigger == "nmi":
                guest.inject_nmi()
            else:
                guest.trigger(trigger)
            vmcore = guest.wait_dump(timeout)
            seconds = round(time.monotonic() - started, 1)
            capture = json.loads((vmcore.parent / "capture.json").read_text())
            log = (vmcore.parent / "dmesg.txt").read_text(errors="replace")
            dest = out_dir / trigger
            dest.mkdir(exist_ok=True, mode=0o700)
            shutil.copyfile(vmcore.parent / "dmesg.txt", dest / "dmesg.txt")
            for fmt, saved in zip(formats, capture["dumps"], strict=False):
                src = vmcore.parent / saved["file"]
                target = dest / fmt / "vmcore"
                target.parent.mkdir(exist_ok=True, mode=0o700)
                shutil.copyfile(src, target)
                target.chmod(0o600)
                entries.append(
                    {
                        "path": str(target.relative_to(out_dir)),
                        "trigger": trigger,
                        "format": fmt,
                        "makedumpfile": saved["makedumpfile"],
                        "makedumpfile_rc": saved["rc"],
                        "capture_seconds": saved["seconds"],
                        "size": target.stat().st_size,
                        "sha256": _sha256(target),
                        "panic_line": _first_panic_line(log),
                        "crash_to_saved_seconds": seconds,
                    }
                )
            note(f"{trigger}: saved {len(capture['dumps'])} files in {seconds}s")
    finally:
        guest.down()
    manifest = {
        "kernel_release": info.kernel_release,
        "kernel_package": f"{info.kernel_package} {info.kernel_version}",
        "packages": info.packages,
        "guest": {"memory": memory, "cpus": cpus, "accel": guest.accel},
        "dumps": entries,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
