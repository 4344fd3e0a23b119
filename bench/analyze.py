"""Benchmark: ``kdiag analyze`` against the tools an engineer would otherwise run on a vmcore.

For every fixture dump (x86_64 and arm64), a real ``makedumpfile --split`` set (the three-way
split of ``nmi-elf`` the vmcore tests cache under ``kdiag.paths.cache_dir()/makedumpfile/``,
when it is there), and for the largest dump available (``$KDIAG_BENCH_DUMP``, e.g. a 2 GiB
lab guest dump, else the largest fixture), in one run:

- (a) the ``kdiag analyze --json DUMP`` process, start-up included;
- (b) ``triage()`` in-process, on an already imported library (open + triage + close);
- ``makedumpfile --dump-dmesg`` (C; log only). It cannot read flattened files without
  ``makedumpfile -R`` first, nor QEMU's kdump files, nor (the host's x86_64 build) arm64
  dumps: those rows say so instead of a figure, and the ratio prints n/a. A split set is
  compared with makedumpfile on the same dump written whole (``--dump-dmesg`` reads one file);
- ``vmcore-dmesg`` (kexec-tools), ELF dumps only;
- drgn without debuginfo: open the dump and load the kernel's kallsyms from VMCOREINFO
  (what drgn can do with no types);
- ``crash`` with the matching debug vmlinux (``sys`` + ``log``), only when
  ``$KDIAG_DEBUG_VMLINUX`` names it.

Per tool: median wall time of N runs, median CPU time (user + system: steadier than wall
time on a shared machine), peak RSS (GNU time), bytes read (kdiag: from the dump file, as
the reader counts them; peers: ``rchar`` of ``/proc/<pid>/io``, every read() of the process,
whichever file) and the ratios the issue sets bars for. It prints figures and asserts
nothing.

Run: ``.venv/bin/python bench/analyze.py [--runs 7]``.  Bars (issue 3): in-process triage
within 2x of makedumpfile's whole process; the CLI under 0.25 s and at most 1/20 of crash's
time; at most 4 MiB read from any dump.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("KDIAG_FIXTURES", REPO.parent / "shared" / "fixtures" / "vmcores"))
KDIAG = Path(sys.executable).with_name("kdiag")
MIB = 1 << 20

DRGN_SCRIPT = """
import sys, drgn
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.register_symbol_finder("vmlinux_kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
print(hex(prog.symbol("init_uts_ns").address))
"""


@dataclass
class Result:
    tool: str
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kib: int = 0
    read: int | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )


def measure(
    argv: list[str],
    runs: int,
    tool: str,
    stdout: Path | None = None,
    fresh: Path | None = None,
) -> Result:
    """Run ``argv`` ``runs`` times under GNU time and ``sh``.

    GNU time reports the peak RSS of the command (a process forked from this one would carry
    this interpreter's high-water mark across exec); ``/proc/$$/io`` of the ``sh`` adds up the
    reaped command's reads. ``fresh`` is removed before each run (makedumpfile will not
    overwrite its output file).
    """
    res = Result(tool)
    out = str(stdout) if stdout else "/dev/null"
    script = '"$@" >"$KDIAG_BENCH_OUT" 2>/dev/null; rc=$?; cat /proc/$$/io; exit $rc'
    baseline = _rchar(["true"])
    timefile = Path(tempfile.mktemp(prefix="kdiag-bench-time-"))
    gnu_time = _which("time") or "/usr/bin/time"
    try:
        for _ in range(runs):
            if fresh is not None:
                fresh.unlink(missing_ok=True)
            start = time.perf_counter()
            proc = subprocess.run(
                [gnu_time, "-f", "%M %U %S", "-o", str(timefile), "sh", "-c", script, "sh", *argv],
                stdout=subprocess.PIPE,
                env={**os.environ, "KDIAG_BENCH_OUT": out},
                check=False,
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                res.note = f"exit {proc.returncode}"
                res.times.clear()
                return res
            res.times.append(elapsed)
            rss, user, system = timefile.read_text().split()[-3:]
            res.rss_kib = max(res.rss_kib, int(rss))
            res.cpu.append(float(user) + float(system))
            rchar = _parse_rchar(proc.stdout.decode())
            if rchar is not None:
                res.read = rchar - baseline
    finally:
        timefile.unlink(missing_ok=True)
    return res


def _parse_rchar(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return None


def _rchar(argv: list[str]) -> int:
    run = subprocess.run(
        ["sh", "-c", '"$@" >/dev/null 2>&1; cat /proc/$$/io', "sh", *argv],
        capture_output=True,
        check=False,
    )
    return _parse_rchar(run.stdout.decode()) or 0


def in_process(path: Path, runs: int) -> Result:
    import kdiag.vmcore
    from kdiag.vmcore.triage import triage

    res = Result("triage() in-process")
    for _ in range(runs):
        start = time.perf_counter()
        with kdiag.vmcore.open(path) as dump:
            triage(dump)
            res.read = dump.bytes_read
        res.times.append(time.perf_counter() - start)
    res.cpu = res.times
    tracemalloc.start()
    with kdiag.vmcore.open(path) as dump:
        triage(dump)
    res.rss_kib = tracemalloc.get_traced_memory()[1] // 1024
    tracemalloc.stop()
    res.note = "memory: Python heap peak of one call (tracemalloc)"
    return res


def format_of(path: Path | list[Path]) -> tuple[str, str]:
    """(format, arch) of a dump or split set."""
    import kdiag.vmcore

    with kdiag.vmcore.open(path) as dump:
        return dump.format, dump.arch


HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def split_set() -> tuple[list[Path], Path] | None:
    """The cached ``makedumpfile --split`` set of ``nmi-elf`` and the whole dump it splits."""
    from kdiag.paths import cache_dir

    for folder in sorted((cache_dir() / "makedumpfile").glob("nmi-elf-*")):
        members = [folder / "split3-c-d31" / f"s{i}" for i in (1, 2, 3)]
        whole = folder / "whole-c-d31" / "vmcore"
        if all(m.is_file() for m in members) and whole.is_file():
            return members, whole
    return None


def _makedumpfile_row(
    fmt: str, arch: str, target: Path, *, runs: int, work: Path, safe: str
) -> Result:
    tool = "makedumpfile --dump-dmesg"
    mdf = _which("makedumpfile")
    if mdf is None:
        return Result(tool, note="not installed")
    if fmt in ("flattened", "qemu-kdump"):
        why = "needs `makedumpfile -R` first" if fmt == "flattened" else "cannot read QEMU kdump"
        return Result(tool, note=f"skipped: {why}")
    if arch != HOST_ARCH:
        return Result(tool, note=f"n/a: the host's {HOST_ARCH} build cannot read {arch} dumps")
    log = work / f"{safe}.dmesg"
    res = measure([mdf, "--dump-dmesg", str(target), str(log)], runs, tool, fresh=log)
    log.unlink(missing_ok=True)
    return res


def bench_dump(
    name: str, path: Path | list[Path], runs: int, work: Path, whole: Path | None = None
) -> list[Result]:
    """The rows of one dump; ``path`` a list for a split set, ``whole`` the same dump unsplit
    (what makedumpfile reads instead)."""
    fmt, arch = format_of(path)
    files = path if isinstance(path, list) else [path]
    results: list[Result] = []
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    out = work / f"{safe}.json"
    argv = [str(KDIAG), "analyze", "--json", *map(str, files)]
    cli = measure(argv, runs, "kdiag analyze --json", out)
    if cli.times:
        cli.read = json.loads(out.read_text())["bytes_read"]
        cli.note = "bytes: from the dump (reader's count)"
    results.append(cli)
    results.append(in_process(path, runs))
    mdf_row = _makedumpfile_row(fmt, arch, whole or files[0], runs=runs, work=work, safe=safe)
    if whole is not None and mdf_row.times:
        mdf_row.note = "on the same dump written whole (reads one file)"
    results.append(mdf_row)

    vd = _which("vmcore-dmesg")
    if fmt == "elf" and vd is not None:
        results.append(measure([vd, str(files[0])], runs, "vmcore-dmesg"))
    else:
        why = "ELF only" if vd else "not installed"
        results.append(Result("vmcore-dmesg", note=f"skipped: {why}"))

    try:
        import drgn  # noqa: F401

        if len(files) > 1:
            drgn_res = Result("drgn open + kallsyms", note="skipped: opens one file")
        else:
            drgn_res = measure(
                [sys.executable, "-c", DRGN_SCRIPT, str(path)], runs, "drgn open + kallsyms"
            )
    except ImportError:
        drgn_res = Result("drgn open + kallsyms", note="drgn not installed")
    results.append(drgn_res)

    vmlinux = os.environ.get("KDIAG_DEBUG_VMLINUX")
    crash = _which("crash")
    if vmlinux and crash:
        cmds = work / "crash-cmds"
        cmds.write_text("sys\nlog\nquit\n")
        results.append(
            measure(
                [crash, "-s", vmlinux, *map(str, files), "-i", str(cmds)], runs, "crash sys + log"
            )
        )
    else:
        why = "set $KDIAG_DEBUG_VMLINUX" if crash else "crash not installed"
        results.append(Result("crash sys + log", note=f"skipped: {why}"))
    return results


def report(name: str, size: int, results: list[Result]) -> None:
    print(f"\n== {name}  ({size / MIB:.1f} MiB)")
    print(f"  {'tool':28} {'median':>9} {'CPU':>9} {'peak RSS':>10} {'read':>11}  note")
    for r in results:
        med = f"{r.median * 1000:7.1f}ms" if r.median is not None else "        -"
        cpu = f"{r.cpu_median * 1000:7.1f}ms" if r.cpu_median is not None else "        -"
        rss = f"{r.rss_kib / 1024:7.1f}MiB" if r.rss_kib else "         -"
        read = f"{r.read / 1024:8.1f}KiB" if r.read is not None else "          -"
        print(f"  {r.tool:28} {med:>9} {cpu:>9} {rss:>10} {read:>11}  {r.note}")
    by = {r.tool: r for r in results}
    cli = by["kdiag analyze --json"].median
    tri = by["triage() in-process"].median
    mdf = by["makedumpfile --dump-dmesg"].median
    crash = by["crash sys + log"].median
    ratios = []
    if tri and mdf:
        verdict = "ok" if tri / mdf <= 2 else "OVER"
        ratios.append(f"triage/makedumpfile {tri / mdf:.2f}x (bar <= 2: {verdict})")
    else:
        ratios.append("triage/makedumpfile n/a (no makedumpfile figure)")
    if cli and mdf:
        ratios.append(f"CLI/makedumpfile {cli / mdf:.2f}x")
    if cli and crash:
        ratios.append(f"CLI/crash wall 1/{crash / cli:.0f} (bar <= 1/20)")
        cli_cpu, crash_cpu = by["kdiag analyze --json"].cpu_median, by["crash sys + log"].cpu_median
        if cli_cpu and crash_cpu:
            ratios.append(f"CPU 1/{crash_cpu / cli_cpu:.0f}")
    if cli:
        cli_cpu = by["kdiag analyze --json"].cpu_median or 0.0
        verdict = "ok" if cli < 0.25 else "OVER"
        ratios.append(f"CLI {cli:.3f}s wall, {cli_cpu:.3f}s CPU (bar < 0.25: {verdict})")
    read = by["kdiag analyze --json"].read
    if read is not None:
        verdict = "ok" if read <= 4 * MIB else "OVER"
        ratios.append(
            f"read {read / MIB:.2f} MiB = {read / size:.2%} of the file (bar <= 4 MiB: {verdict})"
        )
    print("  " + "; ".join(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per tool (median)")
    parser.add_argument(
        "--no-fixtures", action="store_true", help="only $KDIAG_BENCH_DUMP, not the fixtures"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kdiag-bench-"))
    try:
        dumps: list[tuple[str, Path]] = []
        split = None if args.no_fixtures else split_set()
        folders = [] if args.no_fixtures else sorted(FIXTURES.iterdir())
        for folder in (p for p in folders if (p / "meta.json").exists()):
            if (folder / "vmcore").exists():
                dumps.append((folder.name, folder / "vmcore"))
            elif (folder / "vmcore.zst").exists():
                target = work / f"{folder.name}.vmcore"
                subprocess.run(
                    [
                        "zstd",
                        "-q",
                        "-d",
                        "--long=31",
                        str(folder / "vmcore.zst"),
                        "-o",
                        str(target),
                    ],
                    check=True,
                )
                dumps.append((folder.name, target))
        big = os.environ.get("KDIAG_BENCH_DUMP")
        if not big and not dumps:
            parser.error("--no-fixtures needs $KDIAG_BENCH_DUMP")
        if big:
            dumps.append((f"KDIAG_BENCH_DUMP={big}", Path(big)))
        else:
            name, path = max(dumps, key=lambda d: d[1].stat().st_size)
            print(f"(no $KDIAG_BENCH_DUMP: the largest dump is the fixture {name})")
        print(f"kdiag analyze benchmark, {args.runs} runs per tool, warm page cache")
        for name, path in dumps:
            report(name, path.stat().st_size, bench_dump(name, path, args.runs, work))
        if split is None:
            print("\n(no cached split set: run .venv/bin/pytest tests/vmcore/test_split.py once)")
        else:
            members, whole = split
            size = sum(m.stat().st_size for m in members)
            rows = bench_dump("nmi-elf --split set (3 members)", members, args.runs, work, whole)
            report("nmi-elf --split set (3 members)", size, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
