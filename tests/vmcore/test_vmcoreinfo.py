"""VMCOREINFO parsing: every key family and the kernel's formatting quirks."""

import pytest

from kdiag.errors import UnsupportedDump
from kdiag.vmcore.vmcoreinfo import VmcoreInfo, parse_number

TEXT = (
    b"OSRELEASE=6.1.0-56-amd64\n"
    b"BUILD-ID=eb4fbcd037e7253717950bf2b93bd5566f47c56f\n"
    b"PAGESIZE=4096\n"
    b"SYMBOL(init_uts_ns)=ffffffff851fb000\n"
    b"SYMBOL(all_digits)=1000\n"
    b"SIZE(printk_ringbuffer)=88\n"
    b"OFFSET(uts_namespace.name)=0\n"
    b"OFFSET(prb_desc_ring.count_bits)=0\n"
    b"LENGTH(mem_section)=262144\n"
    b"NUMBER(phys_base)=174063616\n"
    b"NUMBER(negative)=-129\n"
    b"NUMBER(VMALLOC_START)=0xffffc90000000000\n"
    b"NUMBER(hexish)=ffff8880\n"
    b"NUMBER(pgtable_l5_enabled)=1\n"
    b"CONFIG_X86_PAE=y\n"
    b"KERNELOFFSET=2600000\n"
    b"NEW_KEY(with.dots)=kept\n"
    b"CRASHTIME=1795327416"  # the last line, written at crash time without a newline
    b"\0\0\0\0"
)


def test_key_families():
    info = VmcoreInfo.parse(TEXT)
    assert info.osrelease == "6.1.0-56-amd64"
    assert info.pagesize == 4096
    assert info.symbol("init_uts_ns") == 0xFFFFFFFF851FB000
    assert info.symbol("all_digits") == 0x1000  # SYMBOL is hex even when all digits
    assert info.symbol("missing") is None
    assert info.size("printk_ringbuffer") == 88
    assert info.offset("uts_namespace", "name") == 0
    assert info.offset("prb_desc_ring", "count_bits") == 0
    assert info.length("mem_section") == 262144
    assert info.number("phys_base") == 174063616
    assert info.phys_base == 174063616
    assert info.number("negative") == -129
    assert info.number("VMALLOC_START") == 0xFFFFC90000000000
    assert info.number("hexish") == 0xFFFF8880
    assert info.pgtable_l5_enabled
    assert info.config("X86_PAE")
    assert info.config("CONFIG_X86_PAE")
    assert not info.config("ARM_LPAE")
    assert info.kerneloffset == 0x2600000
    assert info.crashtime == 1795327416
    assert info.raw["NEW_KEY(with.dots)"] == "kept"
    assert info.family("SYMBOL") == {"init_uts_ns": "ffffffff851fb000", "all_digits": "1000"}
    assert info.build_id == "eb4fbcd037e7253717950bf2b93bd5566f47c56f"


def test_str_input_crlf_and_junk_lines():
    info = VmcoreInfo.parse("PAGESIZE=65536\r\nnot a key\n=\nSIZE(x)=oops\n")
    assert info.pagesize == 65536
    assert info.size("x") is None


@pytest.mark.parametrize(
    ("release", "ignored"),
    [
        ("6.1.115-1", True),
        ("6.1.119", False),
        ("6.11.5", True),
        ("5.15.200", True),
        ("6.1.0", False),
    ],
)
def test_build_id_of_known_broken_stable_kernels_is_ignored(release, ignored):
    info = VmcoreInfo.parse(f"OSRELEASE={release}\nBUILD-ID=00112233445566778899\n")
    assert (info.build_id is None) == ignored


def test_required_keys_name_what_is_missing():
    info = VmcoreInfo.parse(b"")
    with pytest.raises(UnsupportedDump, match=r"SYMBOL\(prb\)"):
        info.need_symbol("prb")
    with pytest.raises(UnsupportedDump, match=r"SIZE\(prb_desc\)"):
        info.need_size("prb_desc")
    with pytest.raises(UnsupportedDump, match=r"OFFSET\(printk_info\.seq\)"):
        info.need_offset("printk_info", "seq")
    assert info.osrelease is None
    assert info.crashtime is None
    assert not info.pgtable_l5_enabled


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10), ("-5", -5), ("0x10", 16), ("-0x10", -16), ("ff", 255), ("zz", None), (" 7 ", 7)],
)
def test_parse_number(text, value):
    assert parse_number(text) == value
