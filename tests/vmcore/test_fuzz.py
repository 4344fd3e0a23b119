"""Corrupt dumps derived from the real fixtures: only DumpFormatError, quickly, in bounded memory.

Each fixture is opened and triaged once while the test records every byte range the reader
reads. A case is then a *sparse* copy of the dump (same size, holes elsewhere) holding those
ranges, with one mutation applied: a truncation, bit flips in one structure (headers, page
descriptors, bitmaps, ELF program headers, notes, compressed pages, flattened record headers,
and in ELF dumps the page-table descriptors the address translation walked, such as arm64's
``swapper_pg_dir``), or a hypothesis-chosen set of byte edits. Because the untouched copy
triages exactly like the original, every mutation lands on bytes the reader actually consumes.

Every case must finish with a result or a :class:`~kdiag.errors.DumpFormatError` subclass,
within a hang guard of a few seconds (SIGALRM), and with a bounded Python heap (tracemalloc
peak, sampled). The default run makes 5,106 cases (``test_corpus_has_at_least_5000_cases``
adds up what each test asserts it ran), including split sets and edits of the arm64
VMCOREINFO numbers: about 40 s of CPU, 51 s wall on the 2-core machine at load 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import kdiag.vmcore
from kdiag.errors import DumpFormatError
from kdiag.vmcore import source
from kdiag.vmcore.formats.elf import ElfPages
from kdiag.vmcore.triage import Triage, triage
from tests.vmcore.conftest import FIXTURE_NAMES
from tests.vmcore.makedumpfile_sets import made as makedumpfile_made

pytestmark = pytest.mark.fuzz

HANG_GUARD_S = 20  # a case taking this long is a hang, not slowness (a case takes ~50 ms)
HEAP_LIMIT = 64 << 20  # Python heap peak per case; a clean triage peaks under 2 MiB
TRACE_EVERY = 7  # tracemalloc slows a case ~3x: trace every 7th case (and all hypothesis ones)
FLIPS_PER_REGION = 56
TRUNCATIONS = 48
HYPOTHESIS_CASES = 1500
SPLIT_FLIPS = 400
SPLIT_CUTS = 12
SPLIT_COMBOS = ([0, 1], [1, 2], [0, 0, 1, 2], [2, 1, 0, 2], [0])
#: The VMCOREINFO numbers the arm64 translation is built from, edited in the arm64 dumps.
ARM64_KEYS = (
    b"NUMBER(VA_BITS)=",
    b"NUMBER(TCR_EL1_T1SZ)=",
    b"NUMBER(kimage_voffset)=",
    b"NUMBER(PHYS_OFFSET)=",
    b"KERNELOFFSET=",
)
ARM64_EDITS_PER_KEY = 48


@dataclass
class Image:
    """The bytes a clean triage reads, by offset, and what they are."""

    name: str
    size: int
    chunks: dict[int, bytes]
    kinds: dict[str, list[tuple[int, int]]]  # structure -> [(offset, length)]
    clean: str  # fingerprint() of the unmutated dump's triage

    def offsets(self) -> list[tuple[int, int]]:
        return sorted((off, len(data)) for off, data in self.chunks.items())


def _record_reads(path: Path) -> dict[int, bytes]:
    seen: list[tuple[int, int]] = []
    original = source.FileSource._pread

    def spy(self: source.FileSource, offset: int, size: int) -> bytes:
        data = original(self, offset, size)
        seen.append((offset, len(data)))
        return data

    source.FileSource._pread = spy  # type: ignore[method-assign]
    try:
        with kdiag.vmcore.open(path) as dump:
            triage(dump)
    finally:
        source.FileSource._pread = original  # type: ignore[method-assign]
    # merge overlapping ranges, then read them
    merged: list[list[int]] = []
    for off, size in sorted(seen):
        if merged and off <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], off + size)
        else:
            merged.append([off, off + size])
    chunks = {}
    with path.open("rb") as f:
        for start, end in merged:
            f.seek(start)
            chunks[start] = f.read(end - start)
    return chunks


def _kinds(path: Path, chunks: dict[int, bytes]) -> dict[str, list[tuple[int, int]]]:
    """Label the structures of a dump (from its own headers) that the reader touched."""
    with path.open("rb") as f:
        head = f.read(4096)
    spans: dict[str, tuple[int, int]] = {}
    if head[:8] == b"KDUMP   ":
        bs, sub, bitmap_blocks = struct.unpack_from("<iiI", head, 428)
        first = (1 + sub) * bs
        desc = (1 + sub + bitmap_blocks) * bs
        spans = {
            "header": (0, 464),
            "sub-header+notes": (bs, first),
            "bitmap-1": (first, first + bitmap_blocks // 2 * bs),
            "bitmap-2": (first + bitmap_blocks // 2 * bs, desc),
            "page-descriptors": (desc, desc + 24 * (1 << 20)),
            "page-data": (desc + 24, 1 << 62),
        }
    elif head[:4] == b"\x7fELF":
        (phoff,) = struct.unpack_from("<Q", head, 32)
        (phnum,) = struct.unpack_from("<H", head, 56)
        # the first program header is the PT_NOTE: p_offset at +8, p_filesz at +32
        (note_off,) = struct.unpack_from("<Q", head, phoff + 8)
        (note_size,) = struct.unpack_from("<Q", head, phoff + 32)
        spans = {
            "elf-header": (0, 64),
            "program-headers": (phoff, phoff + 56 * phnum),
            "notes": (note_off, note_off + note_size),
            "memory": (note_off + note_size, 1 << 62),
        }
    elif head[:12] == b"makedumpfile":
        spans = {"flat-header": (0, 4096), "records": (4096, 1 << 62)}
    kinds: dict[str, list[tuple[int, int]]] = {}
    for off, data in chunks.items():
        for name, (lo, hi) in spans.items():
            a, b = max(off, lo), min(off + len(data), hi)
            if a < b:
                kinds.setdefault(name, []).append((a, b - a))
    if "page-descriptors" in kinds:  # descriptors are whatever lies before the data area
        kinds["page-descriptors"] = [(o, min(n, 24 * 64)) for o, n in kinds["page-descriptors"]]
    return kinds


def _page_table_entries(path: Path) -> list[tuple[int, int]]:
    """File ranges of the page-table descriptors a clean triage walks.

    Only ELF dumps store memory as is, so only there does a flipped file byte reach the walk
    as a flipped descriptor bit (in a compressed page it reaches the decompressor first).
    """
    walked: list[int] = []
    with kdiag.vmcore.open(path) as dump:
        store = dump.layout.store
        if not isinstance(store, ElfPages):
            return []
        read_u64 = dump.phys.read_u64  # what the page walks read descriptors with

        def spy(paddr: int, *, fill: bool = False) -> int:
            walked.append(paddr)
            return read_u64(paddr, fill=fill)

        dump.phys.read_u64 = spy  # type: ignore[method-assign]
        triage(dump)
    spans = []
    for paddr in sorted(set(walked)):
        at = store.file_offset(paddr)  # the segment the reader reads it from
        if at is not None:
            spans.append((at, 8))
    return spans


_IMAGES: dict[str, Image] = {}


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """Where cases are written: tmpfs when there is one (cases are sparse, so small)."""
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        where = Path(tempfile.mkdtemp(prefix="kdiag-fuzz-", dir=shm))
        yield where
        shutil.rmtree(where, ignore_errors=True)
    else:
        yield tmp_path


def image(fixture_dump: Callable[[str], Path], name: str) -> Image:
    if name not in _IMAGES:
        path = fixture_dump(name)
        chunks = _record_reads(path)
        with kdiag.vmcore.open(path) as dump:
            clean = fingerprint(triage(dump))
        kinds = _kinds(path, chunks)
        if tables := _page_table_entries(path):
            kinds["page-tables"] = tables
        _IMAGES[name] = Image(name, path.stat().st_size, chunks, kinds, clean)
    return _IMAGES[name]


def _write(img: Image, target: Path, edits: dict[int, int], size: int | None = None) -> None:
    """The sparse copy: ``size`` bytes (default the original), read ranges, then ``edits``."""
    size = img.size if size is None else size
    # A fresh file each time: truncating and rewriting one in place makes ext4
    # (auto_da_alloc) flush it to disk synchronously, seconds per case on a busy disk.
    target.unlink(missing_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        for off, data in img.chunks.items():
            if off < size:
                os.pwrite(fd, data[: size - off], off)
        for off, value in edits.items():
            if off < size:
                os.pwrite(fd, bytes([value]), off)
    finally:
        os.close(fd)


class Hang(Exception):
    pass


@contextmanager
def _guard(seconds: int) -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"case did not finish within {seconds}s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_counter = {"n": 0}


def fingerprint(t: Triage) -> str:
    """What a triage found, minus where the file is and how much of it was read."""
    doc = t.to_json() | {"path": "", "bytes_read": 0}
    text = json.dumps(doc, sort_keys=True, default=str) + kdiag.vmcore.format_dmesg(t.log)
    return hashlib.sha256(text.encode()).hexdigest()


def run_case(
    path: Path | list[Path], *, trace: bool | None = None, clean: str | None = None
) -> str:
    """Open and triage ``path`` (a list: a split set's files); return "ok", "changed",
    "log-error" or the error class name.

    "changed" is a triage that differs from ``clean`` (the unmutated dump's fingerprint);
    without ``clean`` every finished triage is "ok". Anything but a DumpFormatError subclass
    propagates and fails the test."""
    _counter["n"] += 1
    if trace is None:
        trace = _counter["n"] % TRACE_EVERY == 0
    if trace:
        tracemalloc.start()
    try:
        with _guard(HANG_GUARD_S):
            try:
                with kdiag.vmcore.open(path) as dump:
                    t = triage(dump)
                    t.to_json()
                    for cpu in dump.cpus[:2]:
                        if cpu.sp:
                            with suppress(DumpFormatError):
                                dump.read_virt(cpu.sp, 64)
                    kdiag.vmcore.format_dmesg(t.log)
                    # triage() keeps going past an unreadable log; count that as detected
                    if t.log_error:
                        return "log-error"
                    return "changed" if clean is not None and fingerprint(t) != clean else "ok"
            except DumpFormatError as exc:
                return type(exc).__name__
    finally:
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < HEAP_LIMIT, f"{path}: heap peak {peak >> 20} MiB"


def _flip_cases(img: Image, rng: random.Random) -> Iterator[tuple[str, dict[int, int]]]:
    for kind, ranges in sorted(img.kinds.items()):
        total = sum(n for _, n in ranges)
        for i in range(FLIPS_PER_REGION):
            k = rng.randrange(total)
            for off, n in ranges:
                if k < n:
                    at = off + k
                    break
                k -= n
            chunk_off = max(o for o in img.chunks if o <= at)
            old = img.chunks[chunk_off][at - chunk_off]
            edits = {at: old ^ (1 << rng.randrange(8))}
            if i % 4 == 3:  # a burst: a whole field overwritten with 0xff or 0x00
                fill = 0xFF if i % 8 == 3 else 0x00
                edits = {at + j: fill for j in range(8)}
            yield kind, edits


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_bit_flips_in_every_structure(
    fixture_dump: Callable[[str], Path], scratch: Path, name: str
) -> None:
    img = image(fixture_dump, name)
    rng = random.Random(f"flips-{name}")
    target = scratch / "case"
    outcomes: dict[str, int] = {}
    for kind, edits in _flip_cases(img, rng):
        _write(img, target, edits)
        result = run_case(target, clean=img.clean)
        outcomes[f"{kind}:{result}"] = outcomes.get(f"{kind}:{result}", 0) + 1
    assert len(img.kinds) >= 2
    assert sum(outcomes.values()) == len(img.kinds) * FLIPS_PER_REGION
    # Every structure's mutations reach the reader: in each, some flip is detected (a typed
    # error, an unreadable log) or changes what the triage reports.
    unaffected = {
        k for k in img.kinds if all(key == f"{k}:ok" for key in outcomes if key.startswith(f"{k}:"))
    }
    assert not unaffected, outcomes
    # and a good share of them are detected and typed, not silently absorbed
    errors = sum(n for key, n in outcomes.items() if not key.endswith((":ok", ":changed")))
    assert errors >= FLIPS_PER_REGION // 4, outcomes


def _truncation_points(img: Image) -> list[int]:
    rng = random.Random(f"cut-{img.name}")
    points = {0, 1, 3, 4, 7, 8, 15, 16, 63, 64, 463, 464, 4095, 4096, 4097, img.size - 1}
    for off, n in img.offsets():  # inside and at the edges of every structure read
        points.update({off, off + 1, off + n // 2, off + n - 1})
    cuts = sorted(p for p in points if 0 <= p < img.size)
    return sorted([*rng.sample(cuts, min(TRUNCATIONS, len(cuts))), 0, 64, 4096])


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_truncations(fixture_dump: Callable[[str], Path], scratch: Path, name: str) -> None:
    img = image(fixture_dump, name)
    chosen = _truncation_points(img)
    target = scratch / "case"
    results = []
    for cut in chosen:
        _write(img, target, {}, size=cut)
        results.append(run_case(target))
    assert results[0] == "NotACrashDump"  # an empty file
    _write(img, target, {})
    assert run_case(target, trace=True, clean=img.clean) == "ok"  # the sparse copy: a good dump


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_sparse_copy_triages_like_the_original(
    fixture_dump: Callable[[str], Path], scratch: Path, name: str
) -> None:
    img = image(fixture_dump, name)
    target = scratch / "copy"
    _write(img, target, {})
    with kdiag.vmcore.open(fixture_dump(name)) as a, kdiag.vmcore.open(target) as b:
        assert triage(a).to_json() | {"path": ""} == triage(b).to_json() | {"path": ""}


_FUZZ_NAMES = [n for n in FIXTURE_NAMES if not n.startswith("<")]


@seed(20261122)
@settings(
    max_examples=HYPOTHESIS_CASES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from(_FUZZ_NAMES or ["none"]),
    picks=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_hypothesis_mutations(
    fixture_dump: Callable[[str], Path],
    scratch: Path,
    which: str,
    picks: list[tuple[float, int]],
    cut: float | None,
) -> None:
    img = image(fixture_dump, which)
    offsets = img.offsets()
    total = sum(n for _, n in offsets)
    edits: dict[int, int] = {}
    for frac, value in picks:
        k = int(frac * total)
        for off, n in offsets:
            if k < n:
                edits[off + k] = value
                break
            k -= n
    size = None if cut is None else int(cut * img.size)
    target = scratch / "hcase"
    _write(img, target, edits, size=size)
    run_case(target, trace=_counter["n"] % 3 == 0)


def test_split_set_mutations(fixture_dump: Callable[[str], Path], tmp_path: Path) -> None:
    """Flips in every header structure of one member of a real ``--split`` set, members cut
    short, dropped, repeated or swapped: a triage or a DumpFormatError, never anything else."""
    opts = ["--split", "--splitblock-size", "64", "-c", "-d", "31"]
    stored = makedumpfile_made(fixture_dump, "split3-c-d31", opts, ["s1", "s2", "s3"])
    members = []
    for path in stored:
        members.append(tmp_path / path.name)
        members[-1].write_bytes(path.read_bytes())
    assert run_case(members) == "ok"
    with kdiag.vmcore.open(members) as dump:
        clean = fingerprint(triage(dump))
    rng = random.Random(20261206)
    results: dict[str, int] = {}
    for _ in range(SPLIT_FLIPS):
        target = rng.choice(members)
        with kdiag.vmcore.open(target) as dump:
            store = dump.layout.store
            desc_start = store.desc_start  # type: ignore[attr-defined]
        regions = [
            (0, 464),
            (4096, 4096 + 112),
            (8192, desc_start),
            (desc_start, desc_start + 4800),
        ]
        lo, hi = rng.choice(regions)
        original = target.read_bytes()
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(lo, hi)
            data[at] ^= 1 << rng.randrange(8)
        target.write_bytes(data)
        try:
            outcome = run_case(members, clean=clean)
        finally:
            target.write_bytes(original)
        results[outcome] = results.get(outcome, 0) + 1
    for cut in range(SPLIT_CUTS):
        target = members[cut % 3]
        original = target.read_bytes()
        target.write_bytes(original[: rng.randrange(len(original))])
        try:
            outcome = run_case(members, clean=clean)
        finally:
            target.write_bytes(original)
        results[outcome] = results.get(outcome, 0) + 1
    for combo in SPLIT_COMBOS:
        outcome = run_case([members[i] for i in combo], clean=clean)
        results[outcome] = results.get(outcome, 0) + 1
    assert results.get("ok", 0) > 10, results
    assert len(results) > 2, results  # flips were detected, not only ignored
    assert sum(results.values()) == SPLIT_FLIPS + SPLIT_CUTS + len(SPLIT_COMBOS)


def _arm64_edits(img: Image, key: bytes, rng: random.Random) -> dict[int, int]:
    """An edit of the value after ``key`` in the VMCOREINFO note: digits changed, bits
    flipped, the value cut short by a newline, or a sign or junk put in."""
    for off, data in img.chunks.items():
        at = data.find(key)
        if at >= 0:
            start = off + at + len(key)
            end = start + data[at + len(key) :].index(b"\n")
            break
    else:
        raise AssertionError(f"{img.name}: {key!r} is not in what a triage reads")
    edits: dict[int, int] = {}
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(start, end + 1)  # the newline too: two lines become one
        old = img.chunks[max(o for o in img.chunks if o <= at)][
            at - max(o for o in img.chunks if o <= at)
        ]
        edits[at] = rng.choice([old ^ (1 << rng.randrange(8)), *b"0123456789abcdefx-\n "])
    return edits


ARM64_NAMES = [n for n in _FUZZ_NAMES if n.startswith("arm64-")]


@pytest.mark.parametrize("name", ARM64_NAMES)
def test_arm64_vmcoreinfo_mutations(
    fixture_dump: Callable[[str], Path], scratch: Path, name: str
) -> None:
    """The arm64 translation's inputs (VA_BITS, TCR_EL1_T1SZ, kimage_voffset, PHYS_OFFSET,
    KERNELOFFSET) edited in a real arm64 dump's VMCOREINFO: a triage or a typed error."""
    img = image(fixture_dump, name)
    rng = random.Random(f"arm64-{name}")
    target = scratch / "case"
    results: dict[str, int] = {}
    for key in ARM64_KEYS:
        for _ in range(ARM64_EDITS_PER_KEY):
            _write(img, target, _arm64_edits(img, key, rng))
            outcome = run_case(target, clean=img.clean)
            results[outcome] = results.get(outcome, 0) + 1
    assert sum(results.values()) == len(ARM64_KEYS) * ARM64_EDITS_PER_KEY
    assert results.get("ok", 0) < sum(results.values()) // 2, results  # edits reach the walk


def test_corpus_has_at_least_5000_cases(fixture_dump: Callable[[str], Path]) -> None:
    """The cases the tests above run (each asserts its own count), added up."""
    per_fixture = 0
    for name in _FUZZ_NAMES:
        img = image(fixture_dump, name)
        per_fixture += len(img.kinds) * FLIPS_PER_REGION + len(_truncation_points(img)) + 1
    split = SPLIT_FLIPS + SPLIT_CUTS + len(SPLIT_COMBOS) + 1
    arm64 = len(ARM64_NAMES) * len(ARM64_KEYS) * ARM64_EDITS_PER_KEY
    total = per_fixture + HYPOTHESIS_CASES + split + arm64
    print(f"fuzz corpus: {total} cases")
    assert len(ARM64_NAMES) == 2
    assert total >= 5000, total
