"""Benchmark: dumps indexed per second by the dump catalog, against the peer doing the job.

Two sets of files, each measured with a warm page cache and with a cold one:

- ``fixtures``: the real fixture dumps as stored (x86_64 and arm64; kdump zlib/lzo,
  flattened, ELF and QEMU dumps, two of them zstd files that are decompressed on the way);
- ``copies``: a directory of ``--copies`` (default 300) dumps laid out like ``/var/crash``
  (``<host>-<date>/vmcore`` and ``<YYYYMMDDHHMM>/dump.<...>``, some renamed), hard links
  (this file system has no reflinks) to the four x86_64 kdump fixtures, plus
  ``--distinct`` (default 40) real copies so that a cold cache is cold for them too (hard
  links share one page cache: after the first read of each inode the rest are warm).

Per set and cache state, median of ``--runs``:

- ``kdiag scan``: :func:`kdiag.catalog.scan` in process on a new SQLite store (every file
  read, triaged, identified, recorded), and the rescan of the same tree (unchanged files
  are not read again);
- ``kdiag CLI``: the ``kdiag dumps scan DIR`` process, start-up included;
- peer: ``makedumpfile --dump-dmesg FILE OUT`` per file (the log only; no class, no
  signature, no store). makedumpfile cannot read flattened files, QEMU's kdump files, zstd
  files or (the host's x86_64 build) arm64 dumps: on ``fixtures`` the peer runs on the
  files it can read and kdiag is also timed on that same subset for the ratio.
  ``vmcore-dmesg`` (kexec-tools) is timed on the ELF dumps as a second peer.

Cold: ``sync; echo 3 > /proc/sys/vm/drop_caches`` before each timed run (needs root; the
script says so and measures warm only when it cannot). Ratios are kdiag's rate over the
peer's (above 1: kdiag indexes faster). Prints figures, asserts nothing.

Run: ``.venv/bin/python bench/catalog.py [--runs 3] [--copies 300] [--distinct 40]``;
``--rows copies,kdump`` measures only the rows whose label holds one of those words and
``--cache warm`` only one cache state (a loaded machine makes a whole run take long);
``--profile`` also profiles one first scan of the copies and prints the share of its time
spent recording rows in the store and reading dumps (with ``--rows none``: that alone).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kdiag import catalog
from kdiag.store import Store
from kdiag.vmcore.discover import find_dumps

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("KDIAG_FIXTURES", REPO.parent / "shared" / "fixtures" / "vmcores"))
KDIAG = Path(sys.executable).with_name("kdiag")
KDUMP_X86 = ("nmi-zlib", "nmi-lzo", "oops-null-zlib", "sysrq-zlib")
DROP = Path("/proc/sys/vm/drop_caches")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )


def can_drop_caches() -> bool:
    try:
        os.sync()
        DROP.write_text("3\n")
    except OSError:
        return False
    return True


def drop_caches() -> None:
    os.sync()
    DROP.write_text("3\n")


@dataclass
class Timing:
    seconds: float
    files: int

    @property
    def rate(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else float("inf")


def median_timing(
    runs: int, cold: bool, job: Callable[[], int], prepare: Callable[[], None] | None = None
) -> Timing:
    times: list[float] = []
    files = 0
    for _ in range(runs):
        if prepare is not None:
            prepare()
        if cold:
            drop_caches()
        start = time.perf_counter()
        files = job()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), files)


# --- the jobs -----------------------------------------------------------------------------------


class Catalog:
    """A new SQLite store per run (the first scan reads every file)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.store: Store | None = None
        self.n = 0

    def fresh(self) -> None:
        if self.store is not None:
            self.store.close()
        self.n += 1
        db = self.work / f"catalog-{self.n}.db"
        self.store = Store.open(f"sqlite:///{db}", key_file=self.work / "bench.key")

    def scan(self, operands: Sequence[Path]) -> Callable[[], int]:
        def job() -> int:
            assert self.store is not None
            report = catalog.scan(self.store, operands)
            assert report.count("rejected") == 0, report.to_json()
            return len(report.outcomes)

        return job

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def cli_scan(work: Path, operands: Sequence[Path]) -> tuple[Callable[[], None], Callable[[], int]]:
    db = work / "cli.db"

    def prepare() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        env = {**os.environ, "KDIAG_DB": f"sqlite:///{db}", "KDIAG_KEY_FILE": str(work / "k")}
        subprocess.run([KDIAG, "dumps", "list", "-o", "text"], env=env, check=True,
                       capture_output=True)  # fmt: skip  # migrate outside the timing

    def job() -> int:
        env = {**os.environ, "KDIAG_DB": f"sqlite:///{db}", "KDIAG_KEY_FILE": str(work / "k")}
        run = subprocess.run(
            [KDIAG, "dumps", "scan", "--json", *map(str, operands)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        return int(run.stdout.split('"scanned": ', 1)[1].split(",", 1)[0])

    return prepare, job


def peer_each(tool: list[str], files: Sequence[Path], out: Path) -> Callable[[], int]:
    def job() -> int:
        for path in files:
            out.unlink(missing_ok=True)
            run = subprocess.run([*tool, str(path), str(out)], capture_output=True, check=False)
            assert run.returncode == 0, (path, run.stderr[-500:])
        return len(files)

    return job


def vmcore_dmesg_each(tool: str, files: Sequence[Path]) -> Callable[[], int]:
    def job() -> int:
        for path in files:
            run = subprocess.run([tool, str(path)], capture_output=True, check=False)
            assert run.returncode == 0, (path, run.stderr[-500:])
        return len(files)

    return job


# --- the sets -----------------------------------------------------------------------------------


def build_copies(root: Path, copies: int, distinct: int) -> list[Path]:
    """A /var/crash of ``copies`` hard links and ``distinct`` real copies; every third one
    renamed (vmcore.N, dump.N.old)."""
    sources = [FIXTURES / name / "vmcore" for name in KDUMP_X86]
    made: list[Path] = []
    for n in range(copies + distinct):
        source = sources[n % len(sources)]
        if n % 2:
            folder = root / f"10.1.{n // 250}.{n % 250}-2026-11-{1 + n % 28:02d}-06:03:36"
            name = "vmcore" if n % 3 else f"vmcore.{n}"
        else:
            stamp = f"202611{1 + n % 28:02d}{n % 24:02d}{n % 60:02d}"
            folder = root / stamp
            name = f"dump.{stamp}" if n % 3 else f"dump.{stamp}.old"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if n < copies:
            os.link(source, target)
        else:
            shutil.copyfile(source, target)
        made.append(target)
    return made


def decompress(source: Path, target: Path) -> None:
    """A zstd fixture decompressed into ``target`` (the ELF dump vmcore-dmesg reads)."""
    import zstandard

    with source.open("rb") as src, target.open("wb") as dst:
        reader = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(src)
        while chunk := reader.read(1 << 20):
            dst.write(chunk)


def row(label: str, cache: str, kdiag: Timing, peer: Timing | None, peer_name: str) -> str:
    ratio = f"{kdiag.rate / peer.rate:6.3g}x" if peer is not None else "    n/a"
    peer_text = f"{peer.seconds:8.3f} s {peer.rate:8.1f}/s" if peer is not None else " " * 21
    return (
        f"{label:<30} {cache:<5} {kdiag.files:>5} {kdiag.seconds:8.3f} s {kdiag.rate:8.1f}/s"
        f"  {peer_name:<24}{peer_text}  {ratio}"
    )


@dataclass(frozen=True)
class Sets:
    """The files of one run: labels, what kdiag scans, what the peer reads one by one."""

    rows: list[tuple[str, list[Path], list[Path], list[str] | None, str]]
    elf: Path
    copies_root: Path
    copies: int


def build_sets(work: Path, opts: argparse.Namespace, makedumpfile: str | None) -> Sets:
    elf_dir = work / "elf"
    elf_dir.mkdir()
    elf = elf_dir / "vmcore"
    decompress(FIXTURES / "nmi-elf" / "vmcore.zst", elf)
    copies_root = work / "crash"
    copies = build_copies(copies_root, opts.copies, opts.distinct)
    distinct_root = work / "distinct"
    for path in copies[opts.copies :]:
        rel = path.relative_to(copies_root)
        (distinct_root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(path, distinct_root / rel)
    print(
        f"copies: {len(copies)} files under {copies_root} ({opts.copies} hard links, "
        f"{opts.distinct} real copies also alone under {distinct_root})"
    )
    rows: list[tuple[str, list[Path], list[Path], list[str] | None, str]] = [
        ("fixtures, all 9 (kdiag only)", [FIXTURES], find_dumps(FIXTURES), None, "-"),
    ]
    if makedumpfile:
        mdf = [makedumpfile, "--dump-dmesg"]
        name = "makedumpfile --dump-dmesg"
        kdump = [FIXTURES / n / "vmcore" for n in KDUMP_X86]
        distinct = copies[opts.copies :]
        rows += [
            ("fixtures, 4 x86_64 kdump", kdump, kdump, mdf, name),
            (f"copies, {len(copies)}", [copies_root], copies, mdf, name),
            (f"copies, {len(distinct)} distinct files", [distinct_root], distinct, mdf, name),
        ]
    return Sets(rows, elf, copies_root, len(copies))


#: which rows to measure, from a row's label: ``--rows`` (all when not given)
Pick = Callable[[str], bool]


def against_peers(
    cat: Catalog,
    sets: Sets,
    states: list[str],
    runs: int,
    work: Path,
    *,
    vmcore_dmesg: str | None,
    pick: Pick,
) -> None:
    out = work / "dmesg.out"
    for label, operands, files, peer_cmd, peer_name in sets.rows:
        for cache in states if pick(label) else []:
            cold = cache == "cold"
            kd = median_timing(runs, cold, cat.scan(operands), cat.fresh)
            peer = None
            if peer_cmd is not None:
                peer = median_timing(runs, cold, peer_each(peer_cmd, files, out))
            print(row(label, cache, kd, peer, peer_name[:24]))
    if vmcore_dmesg and pick("nmi-elf (ELF, 95 MiB)"):
        for cache in states:
            cold = cache == "cold"
            kd = median_timing(runs, cold, cat.scan([sets.elf]), cat.fresh)
            peer = median_timing(runs, cold, vmcore_dmesg_each(vmcore_dmesg, [sets.elf]))
            print(row("nmi-elf (ELF, 95 MiB)", cache, kd, peer, "vmcore-dmesg"))


def rescans_and_cli(
    cat: Catalog, sets: Sets, states: list[str], runs: int, work: Path, *, pick: Pick
) -> None:
    """The rescan of an unchanged tree (nothing is read) and the whole CLI process."""
    for cache in states if pick(f"rescan, copies, {sets.copies}") else []:
        cold = cache == "cold"
        cat.fresh()
        cat.scan([sets.copies_root])()
        again = median_timing(runs, cold, cat.scan([sets.copies_root]))
        print(row(f"rescan, copies, {sets.copies}", cache, again, None, "-"))
    for cache in states if pick(f"kdiag dumps scan (CLI), {sets.copies}") else []:
        cold = cache == "cold"
        prepare, job = cli_scan(work, [sets.copies_root])
        proc = median_timing(runs, cold, job, prepare)
        print(row(f"kdiag dumps scan (CLI), {sets.copies}", cache, proc, None, "-"))


#: what records a scan's rows, whatever the version of the catalog (per file, or batched)
_WRITES = frozenset({"record_dump", "record_reject", "record_batch"})


def write_share(cat: Catalog, operands: Sequence[Path]) -> str:
    """One first scan under cProfile: how much of it records rows, how much reads dumps."""
    cat.fresh()
    profile = cProfile.Profile()
    files = profile.runcall(cat.scan(operands))
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(names: frozenset[str], where: str) -> float:
        return float(sum(v[3] for k, v in stats.items() if k[2] in names and where in k[0]))

    total = cumulative(frozenset({"scan"}), "kdiag/catalog/scan.py")
    writes = cumulative(_WRITES, "kdiag/store/")
    reads = cumulative(frozenset({"_read"}), "kdiag/catalog/scan.py")
    return (
        f"profile of a first scan of {files} files: {total:.2f} s, recording rows "
        f"{writes:.2f} s ({writes / total:.0%}), reading dumps {reads:.2f} s ({reads / total:.0%})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--distinct", type=int, default=40)
    parser.add_argument(
        "--rows",
        default="",
        help="measure only the rows whose label holds one of these comma-separated words"
        " (e.g. 'copies,kdump'); default: every row",
    )
    parser.add_argument("--cache", choices=("warm", "cold", "both"), default="both")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one first scan of the copies: the share of recording rows",
    )
    opts = parser.parse_args(argv)
    words = [w.strip().lower() for w in opts.rows.split(",") if w.strip()]

    def pick(label: str) -> bool:
        return not words or any(w in label.lower() for w in words)

    makedumpfile = _which("makedumpfile")
    vmcore_dmesg = _which("vmcore-dmesg")
    cold_ok = can_drop_caches()
    states = ["warm", "cold"] if cold_ok else ["warm"]
    if opts.cache != "both":
        states = [s for s in states if s == opts.cache]
    print(f"kdiag catalog bench: runs={opts.runs}, fixtures={FIXTURES}")
    if not cold_ok:
        print("cold cache: cannot write /proc/sys/vm/drop_caches (not root?): warm only")
    print(
        f"peers: makedumpfile={makedumpfile or 'missing'}, vmcore-dmesg={vmcore_dmesg or 'missing'}"
    )
    header = (
        f"{'set':<30} {'cache':<5} {'files':>5} {'kdiag':>10} {'rate':>10}  "
        f"{'peer':<24}{'time':>10} {'rate':>10}  {'ratio':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="kdiag-bench-catalog-") as tmp:
        work = Path(tmp)
        sets = build_sets(work, opts, makedumpfile)
        cat = Catalog(work)
        try:
            print()
            print(header)
            print("-" * len(header))
            against_peers(cat, sets, states, opts.runs, work, vmcore_dmesg=vmcore_dmesg, pick=pick)
            print()
            rescans_and_cli(cat, sets, states, opts.runs, work, pick=pick)
            if opts.profile:
                print()
                print(write_share(cat, [sets.copies_root]))
        finally:
            cat.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
