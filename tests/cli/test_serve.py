"""``kdiag serve`` as a real process: quiet start-up, and a graceful stop is exit status 0.

uvicorn re-raises the signal it shut down on (so a plain run dies of SIGTERM, status 143);
scripts that stop the server with ``kill`` and then ``wait`` under ``set -e`` must not abort.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kdiag.store.migrate import HEAD
from tests.peers.ports import free_port

KDIAG = str(Path(sys.executable).with_name("kdiag"))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status)
    except urllib.error.HTTPError:
        return True  # an HTTP answer, even an error, means it is serving
    except OSError:
        return False


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "KDIAG_STATE_DIR": str(tmp_path / "state")}
    env.pop("KDIAG_DB", None)
    proc = subprocess.Popen(
        [KDIAG, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1/openapi.json"
    deadline = time.monotonic() + 120  # start-up took ~50 s at load ~50 on 2 cores
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"kdiag serve did not come up (status {proc.returncode}):\n{err}")
        time.sleep(0.1)
    return proc, url


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_exits_zero(tmp_path: Path, sig: signal.Signals) -> None:
    proc, url = _start(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err.rstrip().splitlines()[-1] == f"kdiag serve: stopped ({sig.name})"
    assert "Traceback" not in err
    assert out == ""
    assert not _answers(url)


def test_start_up_is_one_banner_line_without_alembic_logging(tmp_path: Path) -> None:
    proc, _ = _start(tmp_path)  # a fresh state dir: the schema is created at this start
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert "INFO  [alembic" not in err
    assert "alembic" not in err
    migrated, banner, stopped = err.splitlines()  # and nothing else
    assert banner.startswith("kdiag serve: http://127.0.0.1:")
    assert migrated.endswith(f"kdiag.db: schema empty -> {HEAD}")
    assert " kdiag.store INFO " in migrated
    assert stopped == "kdiag serve: stopped (SIGTERM)"


def test_second_start_has_no_migration_line(tmp_path: Path) -> None:
    for _ in range(2):
        proc, _ = _start(tmp_path)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert len(err.splitlines()) == 2, err
