"""Fixtures of the catalog tests: the store on SQLite and PostgreSQL (tests/dbfixtures.py),
the real fixture dumps (tests/vmcore/conftest.py), and trees built from them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store
from tests.vmcore.conftest import fixture_dump

__all__ = (
    "db_url",
    "fixture_dump",
    "link_or_copy",
    "pg_template",
    "sqlite_template",
    "state_dir",
    "store",
    "tree",
)

#: Small real dumps (kdump-compressed, 16-22 MB), with the folder names of both capture tools.
TREE = {
    "192.168.122.7-2026-11-22-07:00:00/vmcore": "nmi-zlib",
    "192.168.122.7-2026-11-22-06:13:06/vmcore": "sysrq-zlib",
    "202611220620/dump.202611220620": "oops-null-zlib",
    "web-1-2026-11-23-08:00:00/vmcore": "nmi-lzo",
}


def link_or_copy(source: Path, target: Path) -> Path:
    """``target`` as a hard link to ``source`` (a copy across file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


@pytest.fixture
def tree(tmp_path: Path, vmcore_fixtures: Path) -> Path:
    """A ``/var/crash`` of four real dumps, with the kernel-log text files beside them."""
    root = tmp_path / "crash"
    for rel, name in TREE.items():
        dump = link_or_copy(vmcore_fixtures / name / "vmcore", root / rel)
        (dump.parent / "vmcore-dmesg.txt").write_text("not a dump\n")
    return root


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path, str], Path]:
    """A real (not linked) copy of a file under a new name."""

    def make(source: Path, name: str) -> Path:
        target = tmp_path / "copies" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    return make
