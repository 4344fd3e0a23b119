"""Capture options compared on Debian 12's own capture path (kdump-tools), timed.

    .venv/bin/python bench/debian_lab.py --memory 512,2048 --runs 3 \\
        --options "-c -d 31" --options "-l -d 31" [--json results.json]

For each guest memory and each ``MAKEDUMP_ARGS`` (``--options``, repeatable; default
Debian's ``-c -d 31`` and ``-l -d 31``), one Debian guest is booted on a copy of the image
with those options written into its ``/etc/default/kdump-tools``, and crashed ``--runs``
times by an NMI (kdiag's qmp backend, what ``kdiag send`` does). One guest at a time; the
option order alternates between memories (ABBA), so a drift of the host's load does not
favour one option set. Per NMI:

- save: makedumpfile in the capture kernel, from kdump-tools' "running makedumpfile" to its
  "saved vmcore", by the capture kernel's own console timestamps;
- NMI -> saved: host clock, from the NMI to kdump-tools' "saved vmcore" line on the console;
- NMI -> ready again: host clock, from the NMI to the next boot's readiness marker;
- dump bytes: the file kdump-tools wrote (copied out of the stopped guest's disk), triaged.

Prints one line per step, then a table (min / median / max) and the ratio of each option
set's medians to the first one's, with the load average seen at the NMIs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kdiag.lab import Lab
from kdiag.lab.build import lab_cache
from kdiag.lab.distro import (
    DebianBuild,
    build_debian,
    debian_up,
    extract_crash,
    from_record,
    vmcore_of,
)
from kdiag.lab.guest import Guest
from kdiag.vmcore import dump as vmcore
from kdiag.vmcore.triage import triage

BOOT = 1800.0
DEFAULT_OPTIONS = ("-c -d 31", "-l -d 31")

_STAMP = re.compile(r"^\[\s*([0-9.]+)\] kdump-tools\[\d+\]: (.*)")
_SAVED = re.compile(r"kdump-tools\[\d+\]: .*(saved vmcore in|failed to save vmcore in) (\S+)")


@dataclass(frozen=True)
class Cycle:
    """One NMI on one guest: what it cost and what it left."""

    memory: int
    options: str
    run: int
    load_at_nmi: float
    save_s: float | None = None
    nmi_to_saved_s: float | None = None
    nmi_to_ready_s: float | None = None
    stamp: str | None = None
    dump_bytes: int | None = None
    klass: str | None = None
    error: str | None = None


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


def _poll(what: str, guest: Guest, timeout: float, done: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = guest.status()
        if done(status):
            return
        if status.get("phase") == "stopped" or not guest.supervisor_running:
            raise RuntimeError(f"{guest.name} stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{guest.name}: no {what} within {timeout:.0f} s")
        time.sleep(0.2)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def nmi_cycle(guest: Guest, memory: int, options: str, run: int) -> Cycle:
    """One NMI: wait for kdump-tools' save and for the next boot's readiness."""
    before = guest.status()
    offset = guest.console_path.stat().st_size
    load = _load()
    t0 = time.monotonic()
    guest.inject_nmi()
    try:
        line = guest.wait_console(_SAVED.pattern, BOOT, start=offset)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the bench goes on
        return Cycle(memory, options, run, load, error=f"no save: {exc}")
    saved = time.monotonic() - t0
    m = _SAVED.search(line)
    assert m is not None
    if m.group(1).startswith("failed"):
        return Cycle(memory, options, run, load, nmi_to_saved_s=round(saved, 1), error=line)
    print(f"  {memory}M [{options}] run {run}: NMI -> saved {saved:.1f} s", flush=True)
    ready_count = int(before.get("ready_count", 0))
    _poll(
        "readiness after the dump",
        guest,
        BOOT,
        lambda s: s.get("phase") == "ready" and int(s.get("ready_count", 0)) > ready_count,
    )
    ready = time.monotonic() - t0
    segment = guest.console_path.read_bytes()[offset:].decode(errors="replace")
    fallback = "makedumpfile failed" in segment
    print(f"  {memory}M [{options}] run {run}: NMI -> ready again {ready:.1f} s", flush=True)
    return Cycle(
        memory,
        options,
        run,
        load,
        save_s=save_seconds(segment),
        nmi_to_saved_s=round(saved, 1),
        nmi_to_ready_s=round(ready, 1),
        stamp=Path(m.group(2).rstrip(".")).name,
        error="makedumpfile failed, kdump-tools fell back to cp" if fallback else None,
    )


def with_dumps(guest: Guest, cycles: list[Cycle]) -> list[Cycle]:
    """Fill in each cycle's dump size and triage from the stopped guest's /var/crash."""
    by_stamp: dict[str, Path] = {}
    for directory in extract_crash(guest):
        by_stamp[directory.name.rsplit("-", 1)[-1]] = directory
    out = []
    for cycle in cycles:
        crash = by_stamp.get(cycle.stamp or "")
        path = vmcore_of(crash) if crash is not None else None
        if path is None:
            out.append(cycle)
            continue
        with vmcore.open(path) as d:
            t = triage(d)
        print(
            f"  {cycle.memory}M [{cycle.options}] run {cycle.run}: {path.name} "
            f"{path.stat().st_size:,} bytes, {t.format}, class {t.panic.klass}",
            flush=True,
        )
        fields = asdict(cycle) | {"dump_bytes": path.stat().st_size, "klass": t.panic.klass}
        out.append(Cycle(**fields))
    return out


def reserved(guest: Guest) -> str:
    """What the first kernel reserved for the capture kernel (the last ``crashkernel=``
    on the command line wins: kdiag's snippet comes after kdump-tools')."""
    text = guest.console_path.read_text(errors="replace")
    m = re.search(
        r"Reserving (\d+MB) of memory at .* for crashkernel \(System RAM: (\d+MB)\)", text
    )
    return f"crashkernel {m.group(1)} of {m.group(2)}" if m else "no crashkernel reservation seen"


class Together:
    """Guests crashed at the same moment (``--paired``): each waits here before its NMI."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties)

    def wait(self) -> bool:
        try:
            self.barrier.wait(BOOT)
        except threading.BrokenBarrierError:
            return False
        return True

    def leave(self) -> None:
        self.barrier.abort()


def one_guest(
    lab: Lab,
    build: DebianBuild,
    *,
    variant: str,
    memory: int,
    options: str,
    runs: int,
    tag: str,
    together: Together | None = None,
) -> list[Cycle]:
    t = time.monotonic()
    makedump = None if options == "default" else options
    guest = debian_up(lab, f"db-{tag}", variant, memory=memory, cpus=1, makedump_args=makedump,
                      build=build)  # fmt: skip
    cycles: list[Cycle] = []
    try:
        guest.wait_ready(BOOT)
        print(
            f"{memory}M [{options}]: up -> ready {time.monotonic() - t:.1f} s "
            f"({reserved(guest)}, load {_load()})",
            flush=True,
        )
        for run in range(1, runs + 1):
            if together is not None and not together.wait():
                break
            cycle = nmi_cycle(guest, memory, options, run)
            cycles.append(cycle)
            if cycle.error is not None and cycle.nmi_to_ready_s is None:
                print(f"  {memory}M [{options}] run {run}: {cycle.error}", flush=True)
                break
    finally:
        if together is not None:
            together.leave()
        guest.down()
    return with_dumps(guest, cycles)


def side_by_side(lab: Lab, build: DebianBuild, *, variant: str, memory: int,
                 options: Sequence[str], runs: int) -> list[Cycle]:  # fmt: skip
    """One guest per option set at once, the NMIs sent to all of them at the same moment:
    both sets see the same host load, whatever it does meanwhile."""
    together = Together(len(options))
    results: dict[str, list[Cycle]] = {}

    def work(j: int, opt: str) -> None:
        try:
            results[opt] = one_guest(lab, build, variant=variant, memory=memory, options=opt,
                                     runs=runs, tag=f"{memory}-{j}", together=together)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the other guests go on
            together.leave()
            print(f"{memory}M [{opt}]: {type(exc).__name__}: {exc}", flush=True)

    threads = [threading.Thread(target=work, args=(j, o)) for j, o in enumerate(options)]
    for thread in threads:
        thread.start()
        time.sleep(2)
    for thread in threads:
        thread.join()
    return [c for opt in options for c in results.get(opt, [])]


def _spread(values: Sequence[float | int | None], fmt: Callable[[float], str]) -> str:
    got = [float(v) for v in values if v is not None]
    if not got:
        return "-"
    return f"{fmt(min(got))} / {fmt(statistics.median(got))} / {fmt(max(got))}"


def _median(values: Sequence[float | int | None]) -> float | None:
    got = [float(v) for v in values if v is not None]
    return statistics.median(got) if got else None


_METRICS = (
    ("save", "save_s"),
    ("NMI → saved", "nmi_to_saved_s"),
    ("NMI → ready again", "nmi_to_ready_s"),
    ("dump bytes", "dump_bytes"),
)


def table(cycles: list[Cycle], options: Sequence[str]) -> str:
    """The results as markdown: min / median / max per (memory, options), then ratios."""
    secs = lambda v: f"{v:.1f}"  # noqa: E731
    mb = lambda v: f"{v / 1e6:.1f}"  # noqa: E731
    lines = [
        "| guest RAM | `MAKEDUMP_ARGS` | runs | save (s) | NMI → saved (s) "
        "| NMI → ready again (s) | dump (MB) | load at NMI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    memories = sorted({c.memory for c in cycles})
    for memory in memories:
        for opt in options:
            got = [c for c in cycles if c.memory == memory and c.options == opt]
            good = [c for c in got if c.error is None]
            loads = [c.load_at_nmi for c in got]
            lines.append(
                f"| {memory} MiB | `{opt}` | {len(good)}/{len(got)} "
                f"| {_spread([c.save_s for c in good], secs)} "
                f"| {_spread([c.nmi_to_saved_s for c in good], secs)} "
                f"| {_spread([c.nmi_to_ready_s for c in good], secs)} "
                f"| {_spread([c.dump_bytes for c in good], mb)} "
                f"| {min(loads, default=0):.1f}–{max(loads, default=0):.1f} |"
            )
    if len(options) > 1:
        lines += ["", "Ratio of medians to the first option set's (`" + options[0] + "`):", ""]
        head = " | ".join(f"`{o}`" for o in options[1:])
        lines += [f"| guest RAM | measure | {head} |", "|---|---|" + "---|" * (len(options) - 1)]
        for memory in memories:
            for label, key in _METRICS:
                base = _median([getattr(c, key) for c in cycles
                                if c.memory == memory and c.options == options[0]
                                and c.error is None])  # fmt: skip
                cells = []
                for opt in options[1:]:
                    med = _median([getattr(c, key) for c in cycles
                                   if c.memory == memory and c.options == opt
                                   and c.error is None])  # fmt: skip
                    cells.append(f"{med / base:.2f}" if med is not None and base else "-")
                lines.append(f"| {memory} MiB | {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def cached_build() -> DebianBuild:
    """The newest Debian build already in the cache, whatever its inputs hash."""
    records = sorted((lab_cache() / "debian").glob("*/build.json"), key=lambda p: p.stat().st_mtime)
    if not records:
        raise SystemExit("no cached Debian build (run without --cached first)")
    data = json.loads(records[-1].read_text())
    return from_record(records[-1].parent, data, cached=True, seconds=0.0)


def run_all(args: argparse.Namespace, build: DebianBuild, options: Sequence[str]) -> list[Cycle]:
    """Every (memory, options) guest, one after another or (``--paired``) side by side."""
    memories = [int(m) for m in args.memory.split(",")]
    root = Path(tempfile.mkdtemp(prefix="kdb-", dir="/tmp"))
    cycles: list[Cycle] = []
    try:
        lab = Lab(root)
        for i, memory in enumerate(memories):
            order = options if i % 2 == 0 else tuple(reversed(options))
            if args.paired:
                cycles += side_by_side(lab, build, variant=args.variant, memory=memory,
                                       options=order, runs=args.runs)  # fmt: skip
            else:
                for j, opt in enumerate(order):
                    cycles += one_guest(
                        lab, build, variant=args.variant, memory=memory, options=opt,
                        runs=args.runs, tag=f"{memory}-{j}",
                    )  # fmt: skip
                    if args.json is not None:
                        args.json.write_text(json.dumps([asdict(c) for c in cycles], indent=1))
            if args.json is not None:
                args.json.write_text(json.dumps([asdict(c) for c in cycles], indent=1))
    finally:
        for guest in Lab(root).list():
            guest.down()
            (guest.directory / "disk.img").unlink(missing_ok=True)
        if args.keep:
            print(f"consoles and dumps kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", default="512", help="MiB, comma-separated: 512,2048")
    parser.add_argument("--variant", default="configured")
    parser.add_argument("--runs", type=int, default=1, help="NMIs per guest")
    parser.add_argument(
        "--options",
        action="append",
        help="MAKEDUMP_ARGS, repeatable ('default': the image's own); "
        f"default: {' and '.join(DEFAULT_OPTIONS)}",
    )
    parser.add_argument("--cached", action="store_true",
                        help="boot the newest cached build as it is (never rebuild)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every cycle here as well")
    parser.add_argument("--paired", action="store_true",
                        help="per memory, boot one guest per option set at once and crash "
                        "them together (same host load for each set)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the consoles and dumps")
    parser.add_argument("--table-from", type=Path, help="only print the table of a --json file")
    args = parser.parse_args()
    options = tuple(args.options or DEFAULT_OPTIONS)
    if args.table_from is not None:
        print(table([Cycle(**c) for c in json.loads(args.table_from.read_text())], options))
        return
    # stopped with kill (nohup ignores SIGINT): still bring the guests down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t = time.monotonic()
    if args.cached:
        build = cached_build()
    else:
        build = build_debian(lambda m: print(f"  build: {m}", flush=True))
    print(
        f"build: {time.monotonic() - t:.1f} s (cached={build.cached}) {build.kernel_release} "
        f"{build.directory}; {args.variant} cmdline: {build.cmdlines[args.variant]}",
        flush=True,
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    cycles = run_all(args, build, options)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for c in cycles:
        if c.error is not None:
            print(f"{c.memory}M [{c.options}] run {c.run}: {c.error}")
    print()
    print(table(cycles, options))


if __name__ == "__main__":
    main()
