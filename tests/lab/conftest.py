"""Fixtures shared by the lab tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdiag.lab.qemu import GuestFiles


@pytest.fixture
def guest_files(tmp_path: Path) -> GuestFiles:
    """A guest's file set under ``tmp_path`` (nothing is created: command lines only)."""
    return GuestFiles(
        directory=tmp_path / "g1",
        vmlinuz=tmp_path / "vmlinuz",
        initrd=tmp_path / "main.img",
        disk=tmp_path / "disk.img",
        console=tmp_path / "console.log",
        qmp=tmp_path / "qmp.sock",
        events=tmp_path / "events.sock",
        commands=tmp_path / "cmd.sock",
    )
