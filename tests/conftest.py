"""Shared test support: where the real fixture dumps live, and how a missing peer fails.

kdiag's tests never skip for a missing tool: `make test` installs every tool and peer, so a
missing one is a broken environment and the test fails, saying what is missing.
"""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def fixtures_root() -> Path:
    """``../shared/fixtures/vmcores`` beside the repository, or ``$KDIAG_FIXTURES``."""
    return Path(os.environ.get("KDIAG_FIXTURES", REPO.parent / "shared" / "fixtures" / "vmcores"))


def require_tool(name: str) -> str:
    """The path of the executable ``name``; the test fails when it is not installed."""
    path = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )
    if path is None:
        pytest.fail(f"required tool {name!r} is not installed (make test installs it)")
    return path


@pytest.fixture(scope="session")
def vmcore_fixtures() -> Path:
    root = fixtures_root()
    if not root.is_dir():
        pytest.fail(f"fixture dumps not found at {root}")
    return root
