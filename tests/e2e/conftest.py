"""Shared support for the end-to-end tests: one lab build per session and short lab roots.

Unix socket paths must stay under ~100 bytes, so lab roots live in short /tmp directories
rather than under pytest's tmp_path.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool


@pytest.fixture(scope="session")
def lab_build() -> object:
    """The lab build (downloaded and assembled once; cached across runs in cache_dir())."""
    for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb", "depmod", "mkfs.ext4", "debugfs"):
        require_tool(tool)
    from kdiag.lab import Lab

    root = Path(tempfile.mkdtemp(prefix="kdl-", dir="/tmp"))
    try:
        return Lab(root).build()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def lab_root(lab_build: object) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="kdl-", dir="/tmp"))
    yield root
    from kdiag.lab import Lab

    for guest in Lab(root).list():
        guest.down()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def module_lab_root(lab_build: object) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="kdl-", dir="/tmp"))
    yield root
    from kdiag.lab import Lab

    for guest in Lab(root).list():
        guest.down()
    shutil.rmtree(root, ignore_errors=True)
