"""End to end on synthetic guests: kdiag.vmcore.open() + triage() on dumps written by
tests/vmcore/vmcorewriter.py (page tables, printk buffers and utsname in guest memory, in
every container the reader supports)."""

from __future__ import annotations

from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.errors import DumpFormatError
from kdiag.vmcore.triage import triage
from tests.vmcore.vmcorewriter import PAGE, Guest, Record

SYSRQ_TAIL = [
    "sysrq: Trigger a crash",
    "Kernel panic - not syncing: sysrq triggered crash",
    "CPU: 0 PID: 153 Comm: sh Kdump: loaded Not tainted 6.1.0-synth-amd64 #1",
    "Call Trace:",
    " <TASK>",
    " dump_stack_lvl+0x44/0x5c",
    " panic+0x118/0x2f4",
    " sysrq_handle_crash+0x16/0x20",
    " __handle_sysrq.cold+0x44/0x11c",
    " write_sysrq_trigger+0x24/0x40",
    " </TASK>",
]


def records(n: int = 200) -> list[Record]:
    out = []
    for i in range(n):
        caller = (0x8000_0000 | (i % 2)) if i % 3 == 0 else 100 + i
        text = f"boot message {i:03d} " + "abcdefghij"[: i % 11] * (i % 5)
        if i % 17 == 5:
            text += " \x01\x7f ünïcode"  # escaped by the dmesg formatter
        out.append(Record(text, ts_nsec=1_000_000 * i + 123, caller_id=caller, cont=i % 7 == 3))
    base = 1_000_000 * n
    out += [Record(t, ts_nsec=base + 1000 * k, level=0) for k, t in enumerate(SYSRQ_TAIL)]
    return out


GUESTS = {
    "lockless-4l-1g-2m": {"log": "lockless"},
    "lockless-5l-1g-2m": {"log": "lockless", "five_level": True},
    "lockless-4l-2m-4k": {"log": "lockless", "direct_leaf": "2m", "kernel_leaf": "4k"},
    "lockless-5l-4k-4k": {"log": "lockless", "five_level": True, "direct_leaf": "4k",
                          "kernel_leaf": "4k"},
    "lockless-data-wraps": {"log": "lockless", "count_bits": 8, "size_bits": 12},
    "legacy-4l-1g": {"log": "legacy"},
    "legacy-5l-2m-nocaller": {"log": "legacy", "five_level": True, "direct_leaf": "2m",
                              "legacy_caller": False},
    "legacy-big-buffer": {"log": "legacy", "legacy_len": 1 << 16},
}  # fmt: skip


def _guest(name: str) -> Guest:
    return Guest(records(), **GUESTS[name])  # type: ignore[arg-type]


def _check_log(dump: kdiag.vmcore.Dump, guest: Guest) -> None:
    got = dump.kernel_log()
    want = guest.expected
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.ts_nsec for r in got] == [r.ts_nsec for r in want]
    assert [r.level for r in got] == [r.level for r in want]
    assert [r.cont for r in got] == [r.cont for r in want]  # LOG_CONT continuation records
    if guest.log == "lockless" or guest.legacy_caller:
        assert [r.caller_id for r in got] == [r.caller_id or 0 for r in want]
    else:  # no OFFSET(printk_log.caller_id): no caller ids
        assert {r.caller_id for r in got} == {None}
    # and the text form is makedumpfile's: "[%5lu.%06lu] text", one record per line
    text = kdiag.vmcore.format_dmesg(got).splitlines()
    assert (
        text[-1]
        == f"[{want[-1].ts_nsec // 10**9:5d}.{want[-1].ts_nsec % 10**9 // 1000:06d}]  </TASK>"
    )


def _check_triage(path: Path, guest: Guest, *, qemu: bool = False) -> None:
    with kdiag.vmcore.open(path) as dump:
        _check_log(dump, guest)
        t = triage(dump)
        assert t.release == guest.release
        assert t.nodename == guest.nodename
        assert t.version == guest.version
        assert t.panic.klass == "sysrq"
        assert (t.panic.cpu, t.panic.pid, t.panic.comm) == (0, 153, "sh")
        assert t.panic.frames == ("sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger")
        assert t.crash_time is not None
        assert int(t.crash_time.timestamp()) == guest.crashtime
        # QEMU-made files (no release in the header) carry host thread ids: reported as -1
        pids = {cpu: -1 for cpu in range(len(guest.cpus))} if qemu else dict(enumerate(guest.cpus))
        assert dict(t.cpu_pids) == pids
        assert t.build_id == "ab" * 20
        # the direct map and the kernel image translate to what the guest holds
        assert dump.read_virt(guest.dva(guest.pgd), 64) == guest.read(guest.pgd, 64)
        uts = dump.read_symbol("init_uts_ns", 6)
        assert uts == b"Linux\0"


@pytest.mark.parametrize("name", sorted(GUESTS))
@pytest.mark.parametrize("container", ["kdump", "elf", "flattened-kdump", "flattened-elf"])
def test_guest_in_every_container(tmp_path: Path, name: str, container: str) -> None:
    guest = _guest(name)
    if container == "kdump":
        data = guest.kdump()
    elif container == "elf":
        data = guest.elf()
    elif container == "flattened-kdump":
        data = guest.flattened(guest.kdump())
    else:
        data = guest.flattened(guest.elf())
    path = tmp_path / "vmcore"
    path.write_bytes(data)
    _check_triage(path, guest)
    with kdiag.vmcore.open(path) as dump:
        want = {"kdump": "kdump", "elf": "elf"}.get(container, "flattened")
        if container == "flattened-elf":
            assert dump.format in ("flattened", "elf")
        else:
            assert dump.format == want


def test_wraps_really_happened() -> None:
    lockless = _guest("lockless-4l-1g-2m")
    assert len(lockless.expected) == 32  # the descriptor ring (2^5) limits what survives
    assert lockless.expected[-1].text == SYSRQ_TAIL[-1]
    wraps = _guest("lockless-data-wraps")
    assert 32 < len(wraps.expected) < len(records())  # now the 4 KiB data ring limits it
    legacy = _guest("legacy-4l-1g")
    assert 0 < len(legacy.expected) < len(records())


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("codec", ["zlib", "lzo", "snappy", "zstd", "none"])
def test_every_header_version_and_codec(tmp_path: Path, version: int, codec: str) -> None:
    guest = _guest("lockless-4l-1g-2m")
    path = tmp_path / "vmcore"
    path.write_bytes(guest.kdump(version=version, codec=codec))
    with kdiag.vmcore.open(path) as dump:
        assert dump.header_version == version
        assert dump.compression == codec
        assert dump.utsname is not None
        assert dump.utsname.nodename == guest.nodename  # from the header
        if version >= 3:  # VMCOREINFO in the file: the whole triage works
            _check_log(dump, guest)
            assert triage(dump).panic.klass == "sysrq"
        else:  # no VMCOREINFO before version 3: the log cannot be found, and says so
            t = triage(dump)
            assert t.log_records == 0
            assert t.log_error


def test_qemu_style_header_takes_utsname_from_memory(tmp_path: Path) -> None:
    guest = _guest("lockless-5l-1g-2m")
    path = tmp_path / "vmcore"
    path.write_bytes(guest.kdump(header_utsname=False, dump_level=1))
    _check_triage(path, guest, qemu=True)


def test_incomplete_dump(tmp_path: Path) -> None:
    guest = _guest("lockless-4l-1g-2m")
    path = tmp_path / "vmcore"
    path.write_bytes(guest.kdump(incomplete=True))
    with kdiag.vmcore.open(path) as dump:
        assert dump.complete is False
        t = triage(dump)
        assert t.complete is False
        assert t.panic.klass == "sysrq"


def test_excluded_zero_pages_are_typed_not_silent(tmp_path: Path) -> None:
    guest = _guest("legacy-4l-1g")
    path = tmp_path / "vmcore"
    path.write_bytes(guest.kdump())
    empty = next(pfn for pfn in range(guest.ram_pages) if pfn not in guest.pages)
    with kdiag.vmcore.open(path) as dump:
        with pytest.raises(DumpFormatError):
            dump.read_phys(empty * PAGE, 16)
        _check_log(dump, guest)  # the log reader still works around excluded zero pages
