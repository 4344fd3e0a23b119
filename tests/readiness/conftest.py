"""Fixtures for the readiness tests: hand-made trees, one per layout, built per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.readiness import trees

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "rhel9-unprepared": trees.rhel9_unprepared,
    "rhel9-ready": trees.rhel9_ready,
    "suse15": trees.suse15,
    "azure-centos6": trees.azure_centos6,
    "tricky": trees.tricky,
    "debian12-arm64-text": trees.debian12_arm64_text,
    "debian12-arm64-notext": trees.debian12_arm64_notext,
    "debian12-arm64-hidden": trees.debian12_arm64_hidden,
}


@pytest.fixture(params=sorted(BUILDERS))
def any_tree(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return BUILDERS[request.param](tmp_path / request.param)


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        return BUILDERS[name](tmp_path / name)

    return make
