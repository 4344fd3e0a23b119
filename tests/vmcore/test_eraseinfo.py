"""ERASEINFO: what ``makedumpfile --config`` erased, from a real makedumpfile run.

Debian's makedumpfile filters the ``nmi-elf`` fixture with a config that erases ``jiffies``
and ``init_uts_ns.name.nodename`` (it needs the kernel's debug vmlinux for the types), once
into a kdump file (the eraseinfo blob of the sub header) and once with ``-E`` into an ELF file
(an ``ERASEINFO`` note).  Both must report the same text, in the API, the JSON and the summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import kdiag.vmcore
from kdiag.paths import cache_dir
from kdiag.vmcore.describe import summary_block
from kdiag.vmcore.triage import triage
from tests.debugvmlinux import debug_vmlinux, fixtures_kernel
from tests.vmcore import makedumpfile_sets
from tests.vmcore._fixtures import folder

CONFIG = "[vmlinux]\nerase jiffies\nerase init_uts_ns.name.nodename\n"
ERASED = "erase jiffies size 8\nerase init_uts_ns.name.nodename size 65\n"
KDIAG = str(Path(sys.executable).with_name("kdiag"))


@pytest.fixture(scope="module")
def erased(fixture_dump: Callable[[str], Path]) -> dict[str, Path]:
    vmlinux = debug_vmlinux(*fixtures_kernel(folder("nmi-elf") / "meta.json"))
    config = cache_dir() / "makedumpfile" / "erase-jiffies-nodename.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG)
    common = ["-d", "31", "--config", str(config), "-x", str(vmlinux)]
    kdump = makedumpfile_sets.made(fixture_dump, "erase-c-d31", ["-c", *common], ["vmcore"])
    elf = makedumpfile_sets.made(fixture_dump, "erase-E-d31", ["-E", *common], ["vmcore"])
    return {"kdump": kdump[0], "elf": elf[0]}


@pytest.mark.parametrize("kind", ["kdump", "elf"])
def test_eraseinfo_is_read(erased: dict[str, Path], kind: str) -> None:
    with kdiag.vmcore.open(erased[kind]) as dump:
        assert dump.format == kind
        assert dump.eraseinfo == ERASED
        result = triage(dump)
    assert result.to_json()["eraseinfo"] == ERASED
    assert (
        "ERASEINFO: erase jiffies size 8; erase init_uts_ns.name.nodename size 65\n"
        in summary_block(result)
    )


def test_the_kdump_file_was_really_scrubbed(erased: dict[str, Path]) -> None:
    """What makedumpfile erased reads as its fill ('X' for a char array); the kdump header's
    own utsname copy is not memory and keeps the name."""
    with kdiag.vmcore.open(erased["kdump"]) as dump:
        assert dump.read_init_uts_ns() is not None
        assert dump.read_init_uts_ns().nodename == "X" * 65  # type: ignore[union-attr]
        assert dump.utsname is not None
        assert dump.utsname.nodename == "fixture-nmi"


def test_the_elf_file_reads_the_scrubbed_copy(erased: dict[str, Path]) -> None:
    """makedumpfile -E erases only in the first PT_LOAD that covers the address: kexec's
    kernel-image segment, which comes before the RAM segment that still holds the name.
    kdiag reads the first one, as crash and makedumpfile do."""
    with kdiag.vmcore.open(erased["elf"]) as dump:
        uts = dump.read_init_uts_ns()
        assert uts is not None
        assert uts.nodename == "X" * 65
        assert triage(dump).nodename == "X" * 65


def test_an_unerased_dump_has_no_eraseinfo(fixture_dump: Callable[[str], Path]) -> None:
    with kdiag.vmcore.open(fixture_dump("nmi-elf")) as dump:
        assert dump.eraseinfo is None
        assert triage(dump).to_json()["eraseinfo"] is None


def test_analyze_json_shows_it(erased: dict[str, Path]) -> None:
    run = subprocess.run(
        [KDIAG, "analyze", "--json", str(erased["kdump"])], capture_output=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["eraseinfo"] == ERASED
