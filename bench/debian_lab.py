"""The Debian 12 lab guest end to end, timed: build (or cache), boot, NMI, kdump-tools' capture,
the next boot, the dump read back and triaged.

    .venv/bin/python bench/debian_lab.py [--memory 512] [--variant configured] [--runs 1]

Prints one line per step with its wall time. The NMI goes through kdiag's qmp backend (what
``kdiag send`` does for a qmp instance); the dump is the file kdump-tools wrote in the
guest's /var/crash, copied out of its disk with debugfs once the guest is stopped.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path

from kdiag.lab import Lab
from kdiag.lab.distro import build_debian, debian_up, extract_crash, vmcore_of
from kdiag.vmcore import dump as vmcore
from kdiag.vmcore.triage import triage

BOOT = 1800.0


_STAMP = re.compile(r"^\[\s*([0-9.]+)\] kdump-tools\[\d+\]: (.*)")


def save_seconds(console: str) -> float | None:
    """makedumpfile's save in the capture kernel: from kdump-tools' "running makedumpfile"
    (the dump, not --dump-dmesg) to its "saved vmcore", by the kernel's timestamps."""
    start = None
    for line in console.splitlines():
        m = _STAMP.match(line)
        if m is None:
            continue
        if "running makedumpfile" in m.group(2) and "--dump-dmesg" not in m.group(2):
            start = float(m.group(1))
        elif "saved vmcore" in m.group(2) and start is not None:
            return round(float(m.group(1)) - start, 1)
    return None


def one_run(lab: Lab, variant: str, memory: int, run: int, opts: str | None) -> None:
    t0 = time.monotonic()
    name = f"bench-{variant[:4]}-{run}"
    guest = debian_up(lab, name, variant, memory=memory, cpus=1, makedump_args=opts)
    try:
        guest.wait_ready(BOOT)
        ready = time.monotonic() - t0
        print(f"run {run}: {memory}M {variant}: up -> ready {ready:.1f} s", flush=True)
        t1 = time.monotonic()
        guest.inject_nmi()
        guest.wait_console(r"LAB: capture kernel .*kdump-tools-dump", BOOT)
        capture = time.monotonic() - t1
        print(f"run {run}: NMI -> kdump-tools-dump.service starts {capture:.1f} s", flush=True)
        # the supervisor may not have read that console line yet: wait until it has left
        # "ready", so the wait below is for the next boot's readiness marker
        guest.wait_phase({"crashed", "capturing", "rebooting", "booting"}, 60)
        guest.wait_ready(BOOT)
        back = time.monotonic() - t1
        print(f"run {run}: NMI -> saved, rebooted, ready again {back:.1f} s", flush=True)
    finally:
        guest.down()
    saved = save_seconds(guest.console_path.read_text(errors="replace"))
    print(f"run {run}: MAKEDUMP_ARGS={opts or 'Debian default'}: save {saved} s", flush=True)
    crashes = extract_crash(guest)
    for crash in crashes:
        path = vmcore_of(crash)
        if path is None:
            print(
                f"run {run}: {crash.name}: no dump file ({sorted(p.name for p in crash.iterdir())})"
            )
            continue
        with vmcore.open(path) as d:
            t = triage(d)
        print(
            f"run {run}: {path.name}: {path.stat().st_size:,} bytes, format {t.format}, "
            f"class {t.panic.klass}, release {t.release}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", type=int, default=512)
    parser.add_argument("--variant", default="configured")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--makedump-args", default=None, help="e.g. '-l -d 31' (kdiag's)")
    args = parser.parse_args()
    t = time.monotonic()
    info = build_debian(lambda m: print(f"  build: {m}", flush=True))
    print(f"build: {time.monotonic() - t:.1f} s (cached={info.cached}) {info.kernel_release}")
    root = Path(tempfile.mkdtemp(prefix="kdb-", dir="/tmp"))
    try:
        lab = Lab(root)
        for run in range(1, args.runs + 1):
            one_run(lab, args.variant, args.memory, run, args.makedump_args)
    finally:
        for guest in Lab(root).list():
            guest.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
