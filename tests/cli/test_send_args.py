"""``kdiag send`` checks its arguments before it looks for credentials or signs anything."""

import os
import subprocess
import sys
from pathlib import Path

KDIAG = Path(sys.executable).with_name("kdiag")


def test_a_malformed_id_is_a_usage_error_even_without_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    done = subprocess.run(
        [str(KDIAG), "send", "i-123"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith("(InvalidInstanceID.Malformed)"), done.stderr
    assert "credentials" not in done.stderr


def test_a_well_formed_id_without_credentials_is_an_auth_failure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(KDIAG), "send", "i-0123456789abcdef0", "--endpoint", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "(AuthFailure)" in done.stderr
