"""`kdiag lab corpus`: a crash saved in three formats, a manifest that matches the files,
and every file readable by kdiag.vmcore as the format the manifest names."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

READER_FORMAT = {"kdump-zlib": "kdump", "flattened-zlib": "flattened", "elf": "elf"}


def test_corpus(lab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import kdiag.vmcore
    from kdiag.cli import main as cli_main

    out = tmp_path / "corpus"
    args = ["lab", "corpus", str(out), "--root", str(lab_root), "--json"]
    args += ["--trigger", "sysrq-c"]
    for fmt in READER_FORMAT:
        args += ["--format", fmt]
    assert cli_main.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert printed == manifest
    assert manifest["kernel_release"].endswith("-amd64")
    entries = {(e["trigger"], e["format"]): e for e in manifest["dumps"]}
    assert set(entries) == {("sysrq-c", f) for f in READER_FORMAT}
    panic = {"sysrq-c": "Kernel panic - not syncing: sysrq triggered crash"}
    for (trigger, fmt), entry in entries.items():
        path = out / entry["path"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size == entry["size"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["makedumpfile_rc"] == 0
        assert entry["panic_line"] == panic[trigger]
        with kdiag.vmcore.open(path) as dump:
            assert dump.format == READER_FORMAT[fmt]
            log = kdiag.vmcore.format_dmesg(dump.kernel_log())
        assert panic[trigger] in log
    # the lab guest the corpus used is stopped again
    from kdiag.lab import Lab

    assert all(not g.running for g in Lab(lab_root).list())
