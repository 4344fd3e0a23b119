"""Truth files of the real fixture dumps: crash ``sys`` output and ``meta.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import fixtures_root

__all__ = ("crash_sys", "folder", "meta")


def folder(name: str) -> Path:
    return fixtures_root() / name


def meta(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder(name) / "meta.json").read_text())
    return data


def crash_sys(name: str) -> dict[str, str]:
    """crash ``sys`` output as {LABEL: value}."""
    out: dict[str, str] = {}
    for line in (folder(name) / "crash-sys.txt").read_text().splitlines():
        label, sep, value = line.partition(": ")
        if sep:
            out[label.strip()] = value.strip()
    return out
