"""ELF vmcores: notes, PT_LOAD lookup, excluded tails, PN_XNUM, QEMU notes, bad headers."""

import ctypes
import struct

import pytest

import kdiag.vmcore
from kdiag.errors import NotACrashDump, PageNotPresent, TruncatedDump, UnsupportedDump
from kdiag.vmcore.notes import X86_64_PRSTATUS_SIZE, iter_notes, parse_prstatus_x86_64
from tests.vmcore.synthdump import PAGE, START_KERNEL_MAP, Segment, build_elf, note, prstatus

VMCOREINFO = b"OSRELEASE=6.1.0-elf\nPAGESIZE=4096\nCRASHTIME=1795327416\n"


def _notes(*, qemu: bool = False) -> bytes:
    out = note("CORE", 1, prstatus(0, {"rip": 0xFFFFFFFF81000010, "rsp": 0xFFFFC90000003F00}))
    out += note("CORE", 1, prstatus(153, {"rip": 0xFFFFFFFF81000020, "rsp": 0x20}))
    if qemu:
        out += note("QEMU", 0, bytes(0x1B8)) * 2
    out += note("VMCOREINFO", 0, VMCOREINFO)
    return out


def _write(tmp_path, data: bytes):
    path = tmp_path / "vmcore.elf"
    path.write_bytes(data)
    return path


def _segments():
    low = bytes(range(256)) * (2 * PAGE // 256)
    high = b"\x42" * (3 * PAGE)
    return [
        Segment(0x1000, low),  # pfns 1-2
        Segment(0x100000, high, memsz=5 * PAGE),  # pfns 256-260, the last two excluded
    ]


@pytest.mark.parametrize("pn_xnum", [False, True])
def test_reads_segments_notes_and_excluded_tails(tmp_path, pn_xnum):
    path = _write(tmp_path, build_elf(_segments(), _notes(), pn_xnum=pn_xnum))
    with kdiag.vmcore.open(path) as dump:
        assert (dump.format, dump.compression, dump.complete) == ("elf", "none", True)
        assert dump.vmcoreinfo.osrelease == "6.1.0-elf"
        assert dump.crash_time is not None
        assert dump.crash_time.year == 2026
        assert [(c.cpu, c.pid) for c in dump.cpus] == [(0, 0), (1, 153)]
        assert dump.cpus[1].ip == 0xFFFFFFFF81000020
        assert dump.nr_cpus == 2
        assert dump.read_phys(0x1000 + 255, 2) == b"\xff\x00"
        assert dump.read_phys(0x100000 + 3 * PAGE - 1, 1) == b"\x42"
        with pytest.raises(PageNotPresent, match="excluded"):
            dump.read_phys(0x100000 + 3 * PAGE, 1)
        with pytest.raises(PageNotPresent, match="not in the dump"):
            dump.read_phys(0x5000, 1)
        assert dump.ram_in_dump_bytes == 2 * PAGE + 5 * PAGE


def test_qemu_notes_make_it_qemu_elf(tmp_path):
    with kdiag.vmcore.open(_write(tmp_path, build_elf(_segments(), _notes(qemu=True)))) as dump:
        assert dump.format == "qemu-elf"
        assert {c.pid for c in dump.cpus} == {-1}  # QEMU's pr_pid is a vCPU number


def test_kexec_kernel_text_segment_gives_phys_base(tmp_path):
    text = Segment(0x2000000, b"\x90" * PAGE, vaddr=START_KERNEL_MAP + 0x1000000)
    ram = Segment(0x2000000, b"\x90" * PAGE, vaddr=0xFFFF888002000000)
    notes = note("VMCOREINFO", 0, b"OSRELEASE=x\nSYMBOL(init_uts_ns)=ffffffff81000100\n")
    with kdiag.vmcore.open(_write(tmp_path, build_elf([ram, text], notes))) as dump:
        assert dump.phys_base == 0x1000000
        assert dump.read_virt(START_KERNEL_MAP + 0x1000000, 2) == b"\x90\x90"
        assert dump.ram_in_dump_bytes == PAGE  # the text alias is not counted twice


def test_incomplete_flag_and_truncation(tmp_path):
    data = build_elf(_segments(), _notes(), e_flags=1)
    with kdiag.vmcore.open(_write(tmp_path, data)) as dump:
        assert not dump.complete
        assert "DUMP_ELF_INCOMPLETE" in (dump.incomplete_reason or "")
    data = build_elf(_segments(), _notes())
    with kdiag.vmcore.open(_write(tmp_path, data[: -PAGE - 7])) as dump:
        assert not dump.complete
        assert dump.read_phys(0x1000, 4) == b"\x00\x01\x02\x03"
        with pytest.raises(PageNotPresent, match="cut short"):
            dump.read_phys(0x100000 + 2 * PAGE, 4)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"elf_class": 1}, UnsupportedDump),
        ({"e_type": 2}, NotACrashDump),
    ],
)
def test_bad_elf_headers(tmp_path, kwargs, error):
    with pytest.raises(error):
        kdiag.vmcore.open(_write(tmp_path, build_elf(_segments(), _notes(), **kwargs)))


def test_program_headers_past_the_end(tmp_path):
    data = bytearray(build_elf(_segments(), _notes()))
    struct.pack_into("<H", data, 56, 5000)  # e_phnum
    with pytest.raises(TruncatedDump):
        kdiag.vmcore.open(_write(tmp_path, bytes(data)))


def test_notes_stop_at_a_zero_header_and_at_a_cut():
    blob = note("CORE", 1, b"abcd") + bytes(12) + note("CORE", 1, b"never")
    assert [n.desc for n in iter_notes(blob)] == [b"abcd"]
    assert [n.name for n in iter_notes(note("VMCOREINFO", 0, b"x" * 10)[:-4])] == []


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Siginfo(ctypes.Structure):
    _fields_ = (("si_signo", ctypes.c_int), ("si_code", ctypes.c_int), ("si_errno", ctypes.c_int))


class _ElfPrstatus(ctypes.Structure):
    """``struct elf_prstatus`` as glibc's <sys/procfs.h> declares it on x86_64."""

    _fields_ = (
        ("pr_info", _Siginfo),
        ("pr_cursig", ctypes.c_short),
        ("pr_sigpend", ctypes.c_ulong),
        ("pr_sighold", ctypes.c_ulong),
        ("pr_pid", ctypes.c_int),
        ("pr_ppid", ctypes.c_int),
        ("pr_pgrp", ctypes.c_int),
        ("pr_sid", ctypes.c_int),
        ("pr_utime", _Timeval),
        ("pr_stime", _Timeval),
        ("pr_cutime", _Timeval),
        ("pr_cstime", _Timeval),
        ("pr_reg", ctypes.c_ulonglong * 27),
        ("pr_fpvalid", ctypes.c_int),
    )


def test_prstatus_offsets_match_the_c_layout():
    assert ctypes.sizeof(_ElfPrstatus) == X86_64_PRSTATUS_SIZE
    assert _ElfPrstatus.pr_pid.offset == 32
    assert _ElfPrstatus.pr_reg.offset == 112
    status = _ElfPrstatus()
    status.pr_pid = 4242
    for i in range(27):
        status.pr_reg[i] = 0x1000 + i
    cpu = parse_prstatus_x86_64(bytes(status), 3)
    assert cpu.pid == 4242
    assert cpu.registers["r15"] == 0x1000
    assert cpu.registers["rip"] == 0x1000 + 16
    assert cpu.registers["rsp"] == 0x1000 + 19
    assert cpu.registers["gs"] == 0x1000 + 26


def test_arm64_notes_give_pids_and_registers(tmp_path):
    desc = bytearray(prstatus(77, {}))
    desc += bytes(max(0, 112 + 34 * 8 + 8 - len(desc)))
    struct.pack_into("<34Q", desc, 112, *range(100, 134))
    notes = note("CORE", 1, bytes(desc)) + note("VMCOREINFO", 0, b"PAGESIZE=4096\n")
    data = build_elf([Segment(0, bytes(PAGE))], notes, machine=183)
    with kdiag.vmcore.open(_write(tmp_path, data)) as dump:
        assert dump.arch == "arm64"
        (cpu,) = dump.cpus
        assert (cpu.pid, cpu.registers["x0"], cpu.ip, cpu.sp) == (77, 100, 132, 131)
        with pytest.raises(UnsupportedDump, match="arm64"):
            dump.read_virt(0xFFFF800008000000, 8)
