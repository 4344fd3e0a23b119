"""``kdiag dumps``: in process through ``kdiag.cli.main.run`` (each console-script start
costs a second of imports), and through the real console script, as a user's shell runs it,
for the error line, the exit code and the progress bar on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kdiag.cli import main
from tests.catalog.conftest import TREE, link_or_copy

KDIAG = str(Path(sys.executable).with_name("kdiag"))


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KDIAG_")}
    environ["KDIAG_STATE_DIR"] = str(tmp_path / "state")
    environ["KDIAG_DB"] = f"sqlite:///{tmp_path / 'kdiag.db'}"
    for key in os.environ:
        if key.startswith("KDIAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KDIAG_STATE_DIR", environ["KDIAG_STATE_DIR"])
    monkeypatch.setenv("KDIAG_DB", environ["KDIAG_DB"])
    return environ


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    def call(env: dict[str, str], *args: str) -> Ran:
        del env  # the monkeypatched environment of the env fixture
        code = main.run(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return call


def shell(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KDIAG, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_scan_list_show_group(env: dict[str, str], tree: Path, run: Callable[..., Ran]) -> None:
    first = run(env, "dumps", "scan", str(tree), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["scanned"], report["new"], report["rejected"]) == (len(TREE), len(TREE), 0)
    again = run(env, "dumps", "scan", str(tree))
    assert again.returncode == 0, again.stderr
    assert f"{len(TREE)} scanned: 0 new, 0 matched a known dump, {len(TREE)} unchanged" in (
        again.stdout
    )

    listed = json.loads(run(env, "dumps", "list", "--json").stdout)["Dumps"]
    assert len(listed) == len(TREE)
    assert {d["class"] for d in listed} == {"nmi", "sysrq", "null-deref"}
    text = run(env, "dumps", "list", "-o", "text").stdout.splitlines()
    assert len(text) == len(TREE)
    assert all(line.split("\t")[0].startswith("dump-") for line in text)

    oops = next(d for d in listed if d["class"] == "null-deref")
    shown = run(env, "dumps", "show", oops["id"])
    assert shown.returncode == 0, shown.stderr
    assert "CLASS: null-deref" in shown.stdout
    assert f"SIGNATURE: {oops['signature_id']}" in shown.stdout
    assert "LAST 50 LOG LINES:" in shown.stdout
    assert oops["paths"][0] in shown.stdout
    detail = json.loads(run(env, "dumps", "show", oops["id"], "--json").stdout)
    assert detail["summary"]["panic"]["class"] == "null-deref"
    assert len(detail["log_tail"]) == 50

    groups = json.loads(run(env, "dumps", "group", "--json").stdout)["Groups"]
    nmi = next(g for g in groups if g["class"] == "nmi")
    # nmi-zlib and nmi-lzo: one crash written twice, two hosts by folder name.
    assert nmi["count"] == 2
    assert nmi["hosts"] == ["192.168.122.7", "web-1"]
    assert sum(g["count"] for g in groups) == len(TREE)
    assert json.loads(run(env, "dumps", "group", "--since", "1h", "--json").stdout) == {
        "Groups": []
    }  # the fixtures crashed in November 2026, well over an hour ago


def test_bad_input_is_one_line_and_the_right_exit_code(
    env: dict[str, str], tree: Path, tmp_path: Path, run: Callable[..., Ran]
) -> None:
    junk = tree / "vmcore.junk"
    junk.write_bytes(b"\0" * 4096)
    scanned = run(env, "dumps", "scan", str(tree))
    assert scanned.returncode == 5
    assert f"rejected  {junk}: " in scanned.stdout
    assert "(NotACrashDump)" in scanned.stdout
    rejected = json.loads(run(env, "dumps", "list", "--rejected", "--json").stdout)
    assert [r["code"] for r in rejected["Rejected"]] == ["NotACrashDump"]

    missing = shell(env, "dumps", "scan", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr

    unknown = shell(env, "dumps", "show", "dump-ffffffffffffffff")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no dump dump-ffffffffffffffff (NoSuchEntity)"

    since = run(env, "dumps", "group", "--since", "yesterday")
    assert since.returncode == 2
    assert "(ConfigError)" in since.stderr


def test_scan_shows_progress_on_a_terminal(env: dict[str, str], tree: Path) -> None:
    """A Rich bar on stderr when it is a terminal (a pseudo-terminal here); none in a pipe."""
    for n in range(8):  # the bar is drawn from the first file on
        link_or_copy(tree / "202611220620" / "dump.202611220620", tree / "many" / f"vmcore.{n}")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [KDIAG, "dumps", "scan", str(tree)],
        stdout=subprocess.PIPE,
        stderr=secondary,
        env={**env, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(primary)
    assert proc.returncode == 0
    # The bar names the file it is on; a fast scan may draw only the last one.
    names = {f.name.encode() for f in tree.rglob("*") if f.is_file()}
    assert any(name in seen for name in names), seen[-400:]
    assert b"12 scanned: 4 new, 8 matched" in out
