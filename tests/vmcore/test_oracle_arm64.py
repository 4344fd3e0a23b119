"""The arm64 dumps read through libkdumpfile (Debian's python3-libkdumpfile, the library drgn
and others build on), an implementation that shares nothing with kdiag: the same physical
pages and the same kernel virtual addresses must give the same bytes, or fail in both.

libkdumpfile is a system module, so it runs under ``/usr/bin/python3`` in a subprocess
(``kdumpfile_reads.py``); ``scripts/apt-packages.txt`` installs it. Virtual reads go through
libkdumpfile's own arm64 page-table walk (``addrxlat``), so they check kdiag's walk,
linear-map and kernel-image translation too.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.errors import DumpFormatError
from kdiag.vmcore.arch.arm64 import Arm64Translator
from kdiag.vmcore.formats.diskdump import KdumpPages
from kdiag.vmcore.formats.elf import ElfPages
from tests.vmcore.conftest import FIXTURE_NAMES, load_meta

SYSTEM_PYTHON = "/usr/bin/python3"
READER = Path(__file__).with_name("kdumpfile_reads.py")
ARM64_FIXTURES = [n for n in FIXTURE_NAMES if n.startswith("arm64-")]

Request = tuple[str, int, int]


def libkdumpfile(
    path: Path, requests: list[Request], *, zero_excluded: bool = False
) -> dict[str, object]:
    flags = ["--zero-excluded"] if zero_excluded else []
    run = subprocess.run(
        [SYSTEM_PYTHON, str(READER), str(path), *flags],
        input=json.dumps(requests).encode(),
        capture_output=True,
        timeout=300,
        check=False,
    )
    if run.returncode:
        pytest.fail(
            "libkdumpfile could not read the dump (is python3-libkdumpfile installed? "
            f"scripts/apt-packages.txt lists it): {run.stderr.decode()[-600:]}"
        )
    answer: dict[str, object] = json.loads(run.stdout)
    return answer


def ours(
    dump: kdiag.vmcore.Dump, space: str, address: int, size: int, *, zero_excluded: bool = False
) -> str:
    try:
        if space in ("phys", "mphys"):
            return dump.read_phys(address, size, zero_excluded=zero_excluded).hex()
        return dump.read_virt(address, size, zero_excluded=zero_excluded).hex()
    except DumpFormatError as exc:
        return "!" + type(exc).__name__


def _present_and_absent(dump: kdiag.vmcore.Dump, count: int) -> tuple[list[int], list[int]]:
    """Physical addresses of ``count`` dumped pages spread over RAM, and of pages not dumped."""
    store = dump.layout.store
    page = dump.page_size
    if isinstance(store, ElfPages):
        seg = store.segments[0]
        present = [seg.paddr + i * (seg.memsz // count // page) * page for i in range(count)]
        end = seg.paddr + seg.memsz
        return present, [0, seg.paddr - 2 * page, end, end + 7 * page]
    assert isinstance(store, KdumpPages)
    pfns = list(store.present_pfns())
    dumped = set(pfns)
    present = [pfns[i * len(pfns) // count] * page for i in range(count)]
    absent = [pfn * page for pfn in range(pfns[0], pfns[-1], 911) if pfn not in dumped][:60]
    return present, absent


@pytest.mark.parametrize("name", ARM64_FIXTURES)
def test_physical_pages_match_libkdumpfile(fixture_dump: Callable[[str], Path], name: str) -> None:
    path = fixture_dump(name)
    with kdiag.vmcore.open(path) as dump:
        present, absent = _present_and_absent(dump, 300)
        requests: list[Request] = [("phys", a, dump.page_size) for a in present]
        requests += [("phys", a + 100, 16) for a in absent]
        # Reads that cross page boundaries.
        requests += [("phys", a + dump.page_size - 24, 64) for a in present[::30]]
        theirs = libkdumpfile(path, requests)
        assert theirs["arch"] == "aarch64"
        assert theirs["release"] == load_meta(name)["expected"]["release"]
        mine = [ours(dump, *r) for r in requests]
        if name == "arm64-qemu-elf":
            # Where libkdumpfile 0.5.1 is wrong: it reads the page right below this dump's
            # only PT_LOAD (paddr 0x40000000) as zeros, though no segment holds it; the pages
            # below that and past the end fail as they should. kdiag says PageNotPresent.
            below = present[0] - dump.page_size
            assert libkdumpfile(path, [("phys", below, 16)])["answers"] == ["00" * 16]
            assert ours(dump, "phys", below, 16) == "!PageNotPresent"
    answers = theirs["answers"]
    assert isinstance(answers, list)
    assert len(absent) >= 3
    for request, a, b in zip(requests, mine, answers, strict=True):
        assert a.startswith("!") == b.startswith("!"), (request, a[:40], b[:40])
        if not a.startswith("!"):
            assert a == b, request
    assert sum(not a.startswith("!") for a in mine) >= 300


def _virtual_requests(dump: kdiag.vmcore.Dump, xl: Arm64Translator) -> list[Request]:
    info = dump.vmcoreinfo
    layout = xl.layout
    assert layout.phys_offset is not None
    assert layout.image_start is not None
    assert layout.image_end is not None
    requests: list[Request] = []
    for key in info.raw:  # every symbol VMCOREINFO names (image and, for mem_section, linear)
        if key.startswith("SYMBOL("):
            requests.append(("virt", info.need_symbol(key[7:-1]), 64))
    for cpu in dump.cpus:  # stacks: init_stack in the image, the panic task's in vmalloc
        assert cpu.sp is not None
        requests.append(("virt", cpu.sp, 512))
    present, _absent = _present_and_absent(dump, 120)
    for paddr in present:  # the linear map, whole pages
        requests.append(("virt", paddr - layout.phys_offset + layout.page_offset, 4096))
    for vaddr in range(layout.image_start, layout.image_end, 4096 * 11):  # the image
        requests.append(("virt", vaddr + 8, 64))
    rng = random.Random(17)
    start = info.number("VMALLOC_START") or layout.image_start - (1 << 32)
    for _ in range(400):  # around the image: modules, vmalloc, and holes in between
        requests.append(("virt", layout.image_start - (1 << 31) + rng.getrandbits(33), 16))
    for _ in range(200):
        requests.append(("virt", start + rng.getrandbits(40), 16))
    return requests


@pytest.mark.parametrize("name", ARM64_FIXTURES)
def test_virtual_reads_match_libkdumpfile(fixture_dump: Callable[[str], Path], name: str) -> None:
    path = fixture_dump(name)
    with kdiag.vmcore.open(path) as dump:
        xl = dump.translator
        assert isinstance(xl, Arm64Translator)
        requests = _virtual_requests(dump, xl)
        theirs = libkdumpfile(path, requests)
        answers = theirs["answers"]
        assert isinstance(answers, list)
        agreed = {"bytes": 0, "unmapped": 0, "excluded": 0}
        for request, b in zip(requests, answers, strict=True):
            _space, vaddr, size = request
            a = ours(dump, *request)
            try:
                xl.walk(vaddr)
                xl.walk(vaddr + size - 1)
                mapped = True
            except DumpFormatError:
                mapped = False
            if mapped:
                assert a == b, request
                agreed["excluded" if a.startswith("!") else "bytes"] += 1
            else:
                # Unmapped in swapper_pg_dir: libkdumpfile fails as the MMU would. kdiag
                # fails too, except inside the kernel image, where it follows the kernel's
                # __pa_symbol() (kimage_voffset) as crash and makedumpfile do: the only such
                # hole is __init, freed and unmapped after boot.
                assert b.startswith("!"), request
                assert a.startswith("!") or xl.in_kernel_image(vaddr), request
                agreed["unmapped"] += 1
    assert agreed["bytes"] > 500
    assert agreed["unmapped"] > 50
