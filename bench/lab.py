"""Lab benchmark: boot-to-ready, NMI-to-vmcore-saved and vmcore sizes per makedumpfile option
set, for a 512 MiB and a 2 GiB guest.

One guest per RAM size. Each is sent one QMP NMI; its capture kernel saves /proc/vmcore once
per option set, one after another, and reports each save's duration. "NMI → saved" for an
option set is then the measured NMI → capture-kernel-/init time plus that set's own save time,
i.e. what a guest configured with only that set would take. The first set (-c -d 31) is also
timed end to end on the host (NMI → dump moved into the crash tree).

    .venv/bin/python bench/lab.py [--memory 512M --memory 2G] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from kdiag.lab import Lab

OPTION_SETS = (
    ("-c", "-d", "31"),
    ("-l", "-d", "31"),
    ("-z", "-d", "31"),
    ("-d", "31"),
    ("-c", "-d", "1"),
    ("-F", "-c", "-d", "31"),
    ("-E", "-d", "31"),
)


def run(memory: str, root: Path) -> dict:
    lab = Lab(root)
    name = "bench-" + memory.lower()
    t0 = time.monotonic()
    guest = lab.up(name=name, profile="default", memory=memory, cpus=2, dumps=OPTION_SETS)
    guest.wait_ready(600)
    boot = time.monotonic() - t0
    t1 = time.monotonic()
    wall_nmi = time.time()
    guest.inject_nmi()
    vmcore = guest.wait_dump(1200)
    all_saved = time.monotonic() - t1
    status = guest.status()
    to_capture = status["capture_started"] - wall_nmi
    capture = json.loads((vmcore.parent / "capture.json").read_text())
    t2 = time.monotonic()
    guest.wait_ready(600)
    reboot = time.monotonic() - t2
    guest.down()
    rows = []
    for d in capture["dumps"]:
        rows.append(
            {
                "options": d["makedumpfile"],
                "rc": d["rc"],
                "size": d["size"],
                "save_seconds": d["seconds"],
                "nmi_to_saved": round(to_capture + d["seconds"], 1),
            }
        )
    return {
        "memory": memory,
        "accel": guest.accel,
        "boot_to_ready": round(boot, 1),
        "crash_to_ready_again": round(reboot, 1),
        "nmi_to_capture_init": round(to_capture, 1),
        "nmi_to_all_saved_host": round(all_saved, 1),
        "dumps": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="append", help="guest RAM (repeat)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    memories = args.memory or ["512M", "2G"]
    root = Path(tempfile.mkdtemp(prefix="kdb-", dir="/tmp"))
    try:
        Lab(root).build()
        results = [run(m, root) for m in memories]
    finally:
        for guest in Lab(root).list():
            guest.down()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| guest RAM | accel | boot → ready | NMI → capture /init | crash → ready again |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['memory']} | {r['accel']} | {r['boot_to_ready']} s | "
            f"{r['nmi_to_capture_init']} s | {r['crash_to_ready_again']} s |"
        )
    print()
    print("| guest RAM | makedumpfile options | rc | save time | NMI → saved | vmcore bytes |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for d in r["dumps"]:
            print(
                f"| {r['memory']} | `{d['options']}` | {d['rc']} | {d['save_seconds']} s | "
                f"{d['nmi_to_saved']} s | {d['size']:,} |"
            )
    print()
    for r in results:
        print(
            f"{r['memory']}: host-side NMI → all {len(r['dumps'])} files in the crash tree: "
            f"{r['nmi_to_all_saved_host']} s"
        )


if __name__ == "__main__":
    main()
