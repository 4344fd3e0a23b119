"""Every command list fits 80 columns through a pipe: no summary is cut with '...'."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

KDIAG = Path(sys.executable).with_name("kdiag")
GROUPS = ["", "iam", "instances", "lab"]


@pytest.mark.parametrize("group", GROUPS)
def test_command_lists_are_not_truncated_at_80_columns(group: str) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    args = [str(KDIAG), *([group] if group else []), "--help"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    listing = out.split("Commands:", 1)[1].splitlines()
    rows = [line for line in listing if line.startswith("  ") and line.strip()]
    assert len(rows) >= 4, out
    cut = [row for row in rows if row.rstrip().endswith("...")]
    assert not cut, cut
    assert all(len(row) <= 80 for row in rows), rows
