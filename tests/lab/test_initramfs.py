from __future__ import annotations

import subprocess
from pathlib import Path

from kdiag.lab.initramfs import write_initramfs
from tests.conftest import require_tool


def _tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 3)
    (root / "bin" / "tool").chmod(0o755)
    (root / "init").write_text("#!/bin/sh\necho hi\n")
    (root / "lib").mkdir()
    (root / "lib" / "link").symlink_to("../bin/tool")


def test_cpio_tool_reads_back_every_entry(tmp_path: Path) -> None:
    cpio = require_tool("cpio")
    root = tmp_path / "root"
    _tree(root)
    image = tmp_path / "img.gz"
    write_initramfs(root, image)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(f"gzip -dc {image} | {cpio} -idm --quiet", shell=True, check=True, cwd=out)
    assert (out / "bin" / "tool").read_bytes() == (root / "bin" / "tool").read_bytes()
    assert (out / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (out / "init").read_text() == "#!/bin/sh\necho hi\n"
    assert (out / "lib" / "link").is_symlink()
    assert str((out / "lib" / "link").readlink()) == "../bin/tool"


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    write_initramfs(root, tmp_path / "a")
    write_initramfs(root, tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
