"""The reader against every real fixture dump and the truth files made by established tools."""

import datetime
from types import SimpleNamespace

import pytest

import kdiag.vmcore
from kdiag.errors import DumpFormatError, PageNotPresent
from kdiag.vmcore.formats.diskdump import KdumpPages
from kdiag.vmcore.formats.elf import ElfPages
from tests.vmcore._fixtures import expected_format, sys_truth
from tests.vmcore.conftest import FIXTURE_NAMES, load_meta

pytestmark = pytest.mark.fixtures

TRIAGE_READ_LIMIT = 4 << 20
#: utsname.machine -> the reader's architecture name.
ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}
#: Registers of each architecture's NT_PRSTATUS (``pr_reg``).
REGISTERS = {"x86_64": 27, "arm64": 34}


def _truth_log(folder) -> bytes:
    mdf = folder / "makedumpfile-dmesg.txt"
    if mdf.is_file():
        return mdf.read_bytes()
    # QEMU kdump files: makedumpfile cannot read them; crash's `log` prints the same
    # "[%5lu.%06lu] text" form (it matches makedumpfile-dmesg.txt byte for byte on every
    # fixture that has both), plus a final newline the batch capture may leave out.
    text = (folder / "crash-log.txt").read_bytes()
    return text if text.endswith(b"\n") else text + b"\n"


@pytest.fixture(params=FIXTURE_NAMES)
def case(request, fixture_dump, vmcore_fixtures):
    name = request.param
    return SimpleNamespace(
        name=name, path=fixture_dump(name), folder=vmcore_fixtures / name, meta=load_meta(name)
    )


def test_opens_with_the_format_and_facts_of_meta(case):
    path, meta = case.path, case.meta
    exp = meta["expected"]
    with kdiag.vmcore.open(path) as dump:
        assert (dump.format, dump.compression) == expected_format(case.name)
        assert dump.complete is exp["complete"]
        assert dump.incomplete_reason is None
        assert dump.arch == ARCH[exp["machine"]]
        assert dump.page_size == 4096
        uts = dump.utsname
        assert uts is not None
        assert (uts.release, uts.version, uts.machine, uts.nodename) == (
            exp["release"],
            exp["version"],
            exp["machine"],
            exp["nodename"],
        )
        assert dump.nr_cpus == exp["cpus"]
        assert 1 <= len(dump.cpus) <= dump.nr_cpus
        if dump.format.startswith("qemu"):
            # QEMU fills pr_pid with its vCPU number, not a guest pid.
            assert {cpu.pid for cpu in dump.cpus} == {-1}
        else:
            assert exp["panic_pid"] in {cpu.pid for cpu in dump.cpus}
        assert all(cpu.sp and cpu.ip for cpu in dump.cpus)
        assert {len(cpu.registers) for cpu in dump.cpus} == {REGISTERS[dump.arch]}
        assert dump.vmcoreinfo.osrelease == exp["release"]
        if dump.format in ("kdump", "flattened"):
            assert dump.dump_level == 31
            assert dump.header_version == 6


def _megabytes(text: str) -> str:
    """crash's MEMORY (``383.5 MB``, ``1 GB``) as MiB with one decimal."""
    number, unit = text.split()
    return f"{float(number) * {'MB': 1, 'GB': 1024}[unit]:.1f} MB"


def test_crash_time_and_memory_agree_with_crash_sys(case):
    path = case.path
    sys_ = sys_truth(case.name)
    with kdiag.vmcore.open(path) as dump:
        assert f"{dump.memory_bytes / 2**20:.1f} MB" == _megabytes(sys_["MEMORY"])
        assert 0 < dump.ram_in_dump_bytes <= dump.memory_bytes + (32 << 20)
        if dump.format.startswith("qemu"):
            # QEMU writes no dump time and the guest's VMCOREINFO has no CRASHTIME
            # (crash_save_vmcoreinfo() runs only on the kexec path); crash reads the
            # kernel clock with debuginfo instead.
            assert dump.crash_time is None
        else:
            when = datetime.datetime.strptime(sys_["DATE"], "%a %b %d %H:%M:%S UTC %Y")
            assert dump.crash_time == when.replace(tzinfo=datetime.UTC)


def test_kernel_log_equals_makedumpfile_byte_for_byte(case):
    path, folder, meta = case.path, case.folder, case.meta
    with kdiag.vmcore.open(path) as dump:
        records = dump.kernel_log()
        text = kdiag.vmcore.format_dmesg(records).encode()
    assert text == _truth_log(folder)
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert all(0 <= r.level <= 7 for r in records)
    assert any(r.text.startswith("Linux version ") for r in records)
    assert sum(r.text.startswith("Kernel panic - not syncing") for r in records) == (
        1 if meta["expected"]["panic_message"] else 0
    )


def test_init_uts_ns_read_through_the_page_tables(case):
    path, meta = case.path, case.meta
    exp = meta["expected"]
    with kdiag.vmcore.open(path) as dump:
        raw = dump.read_symbol("init_uts_ns", 6 * 65)
        assert raw.startswith(b"Linux\0")
        uts = dump.read_init_uts_ns()
        assert uts is not None
        assert (uts.nodename, uts.release) == (exp["nodename"], exp["release"])
        # The same bytes at the physical address the translation gives; on arm64 the
        # kimage_voffset shortcut and a walk of swapper_pg_dir agree on it.
        vaddr = dump.vmcoreinfo.need_symbol("init_uts_ns")
        paddr = dump.translator.translate(vaddr)
        assert dump.read_phys(paddr, 6 * 65) == raw
        if dump.arch == "arm64":
            assert dump.translator.walk(vaddr)[0] == paddr


def _absent_address(dump) -> int:
    store = dump.layout.store
    if isinstance(store, KdumpPages):
        for index in range(store.bitmap1.nblocks):
            ram, dumped = store.bitmap1.block(index), store.bitmap2.block(index)
            for at, (a, b) in enumerate(zip(ram, dumped, strict=True)):
                if a & ~b:
                    bit = (a & ~b & -(a & ~b)).bit_length() - 1
                    return ((index * len(ram) + at) * 8 + bit) * dump.page_size
        return store.max_mapnr * dump.page_size  # nothing excluded (QEMU): past the end
    assert isinstance(store, ElfPages)
    for a, b in zip(store.segments, store.segments[1:], strict=False):
        if a.paddr + a.memsz < b.paddr:
            return a.paddr + a.memsz
    last = store.segments[-1]
    return last.paddr + last.memsz


def test_absent_pages_raise_page_not_present(case):
    path = case.path
    with kdiag.vmcore.open(path) as dump:
        addr = _absent_address(dump)
        with pytest.raises(PageNotPresent) as info:
            dump.read_phys(addr, 16)
        assert info.value.address is not None
        assert info.value.address // dump.page_size == addr // dump.page_size


def test_a_triage_sized_read_stays_small(case):
    path = case.path
    with kdiag.vmcore.open(path) as dump:
        assert dump.utsname is not None
        assert dump.kernel_log()
        assert dump.memory_bytes > 0
        assert dump.crash_time is not None or dump.format.startswith("qemu")
        assert dump.bytes_read < TRIAGE_READ_LIMIT
        assert dump.bytes_read < path.stat().st_size // 4


def _ram_pfns(dump) -> tuple[int, int]:
    """[first, end) pfns of the dumped machine's RAM (from the PT_LOADs or the 1st bitmap)."""
    store = dump.layout.store
    if isinstance(store, ElfPages):
        last = store.segments[-1]
        return store.segments[0].paddr // dump.page_size, (
            last.paddr + last.memsz
        ) // dump.page_size
    assert isinstance(store, KdumpPages)
    for index in range(store.bitmap1.nblocks):
        block = store.bitmap1.block(index)
        for at, byte in enumerate(block):
            if byte:
                pfn = (index * len(block) + at) * 8 + (byte & -byte).bit_length() - 1
                return pfn, store.max_mapnr
    raise AssertionError("no RAM in the first bitmap")


def test_a_copy_cut_short_opens_incomplete_and_serves_what_is_left(case, tmp_path):
    path, meta = case.path, case.meta
    cut = tmp_path / "vmcore.cut"
    keep = path.stat().st_size * 7 // 10
    with path.open("rb") as src, cut.open("wb") as dst:
        remaining = keep
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            dst.write(chunk)
            remaining -= len(chunk)
    with kdiag.vmcore.open(cut) as dump:
        assert dump.complete is False
        assert dump.incomplete_reason
        assert dump.vmcoreinfo.osrelease == meta["expected"]["release"]
        # Low pages come first in every format: the first present page still reads.
        # RAM starts at pfn 0 on a PC, at PHYS_OFFSET (0x40000000) on QEMU's arm64 virt.
        store = dump.layout.store
        first, end = _ram_pfns(dump)
        served = missing = 0
        for pfn in range(first, end, max(97, (end - first) // 1500)):
            try:
                dump.read_phys(pfn * dump.page_size, 8)
                served += 1
            except PageNotPresent:
                missing += 1
            except DumpFormatError as exc:  # pragma: no cover - shown on failure
                pytest.fail(f"unexpected {exc!r}")
        assert served > 0
        assert missing > 0
        assert store is not None


def test_a_dump_without_vmcoreinfo_finds_it_in_memory(fixture_dump, vmcore_fixtures):
    path = fixture_dump("nmi-elf")
    with kdiag.vmcore.open(path, vmcoreinfo="") as dump:
        assert dump.vmcoreinfo.raw == {}
        assert dump.utsname is None
        with pytest.raises(DumpFormatError):
            dump.kernel_log()
        steps = []
        found = dump.scan_vmcoreinfo(progress=lambda step, done, total: steps.append(step))
        assert found is not None
        assert steps
        assert found.osrelease == "6.1.0-56-amd64"
        dump.use_vmcoreinfo(found)
        assert dump.utsname is not None
        assert dump.utsname.nodename == "fixture-nmi"
        text = kdiag.vmcore.format_dmesg(dump.kernel_log()).encode()
    assert text == (vmcore_fixtures / "nmi-elf" / "makedumpfile-dmesg.txt").read_bytes()
