"""`make demo`, end to end, as the README promises it: the live half on a real lab guest (the
aws CLI's NMI through `kdiag serve`, kdump, triage, audit), then the sample dumps and their
closing table. Afterwards nothing of the demo's own may survive: no QEMU guest, no
`kdiag serve`, no temporary directory.

The demo puts every temporary directory under ``$KDIAG_DEMO_TMP`` (here a fresh directory), so
its processes are found by that path in their command line or environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, fixtures_root, require_tool

pytestmark = pytest.mark.e2e

TIMEOUT = 1800.0  # the first run downloads the lab's Debian packages


def _processes_using(root: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line or environment names ``root``."""
    needle = str(root).encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in cmdline or needle in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def _survivors(root: Path, timeout: float = 60.0) -> dict[int, str]:
    """The processes still using ``root`` once those that were stopping have stopped: polls
    until there are none or ``timeout`` has passed (a guest's QEMU can take seconds to exit
    on a loaded machine), then returns what is left."""
    deadline = time.monotonic() + timeout
    while (found := _processes_using(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _kill(pids: dict[int, str]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _closing_table(stdout: str) -> dict[str, list[str]]:
    """The rows of the one-line-per-dump summary table, by dump name (it runs to the next
    ``====`` heading: the drill's report and the dump catalog follow it)."""
    lines = stdout.rstrip("\n").splitlines()
    head = max(i for i, line in enumerate(lines) if line.split()[:2] == ["DUMP", "CLASS"])
    assert "summary" in lines[head - 1]
    rows = {}
    for line in lines[head + 1 :]:
        if line.startswith("===="):
            break
        if cells := line.split():
            rows[cells[0]] = cells
    return rows


def _expected_classes() -> dict[str, str]:
    """Each sample dump's panic class, from the ground truth beside it."""
    out = {}
    for meta in sorted(fixtures_root().glob("*/meta.json")):
        if any((meta.parent / name).exists() for name in ("vmcore", "vmcore.zst")):
            out[meta.parent.name] = json.loads(meta.read_text())["expected"]["panic_class"]
    return out


@pytest.fixture
def demo_tmp() -> Iterator[Path]:
    # short: the guest's QMP socket lives below it, and socket paths stop at ~100 bytes
    root = Path(tempfile.mkdtemp(prefix="kdd-", dir="/tmp"))
    yield root
    _kill(_processes_using(root))
    shutil.rmtree(root, ignore_errors=True)


def _run_make_demo(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KDIAG_DEMO_TMP": str(root)}
    for var in ("KDIAG_DEMO_LIVE", "KDIAG_STATE_DIR", "KDIAG_DB", "KDIAG_ENDPOINT"):
        env.pop(var, None)
    # Run it as a user does from a shell, even when this suite itself runs under `make test`:
    # an inherited MAKELEVEL would make the inner make print "make[1]: Entering directory"
    # lines into the output, and MAKEFLAGS would hand it the outer make's jobserver.
    for var in (
        "MAKELEVEL",
        "MAKEFLAGS",
        "MFLAGS",
        "MAKEOVERRIDES",
        "MAKE_TERMOUT",
        "MAKE_TERMERR",
    ):
        env.pop(var, None)
    proc = subprocess.Popen(
        ["make", "demo"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a timeout takes down make and everything under it
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"make demo did not finish in {TIMEOUT:.0f} s:\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_make_demo_passes_and_leaves_nothing_behind(demo_tmp: Path) -> None:
    for tool in ("make", "zstd", "qemu-system-x86_64"):
        require_tool(tool)
    done = _run_make_demo(demo_tmp)
    print(done.stdout)  # shown with the failure, or with pytest -rP
    survivors = _survivors(demo_tmp)
    leftovers = sorted(p.name for p in demo_tmp.iterdir())

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    assert survivors == {}
    assert leftovers == []

    out = done.stdout
    # the live half: a denial, the aws CLI's NMI, a vmcore, its triage, the audit trail
    assert "exit 3" in out
    assert "vmcore saved" in out
    # the wait for the panic and the dump is kdiag drill's: its report says pass
    report = out.split("== the drill's report (kdiag drill: exit 0)")[1].split("== triage")[0]
    assert "verdict: PASS (ok)" in report
    assert re.search(r"^  pass    send .*sent by oncall through the API", report, re.M)
    for step in ("readiness", "panic", "reboot", "dump", "triage"):
        assert re.search(rf"^  (pass|warn)\s+{step}\s", report, re.M), step
    assert "CLASS: nmi" in out.split("== triage")[1].split("== the audit trail")[0]
    audit = out.split("== the audit trail")[1].split("== stop the endpoint")[0]
    assert "UnauthorizedOperation" in audit
    assert "SendDiagnosticInterrupt" in audit
    assert "DescribeInstances" in audit
    assert "kdiag serve: stopped (SIGTERM)" in out

    # the closing table: one line per sample dump, with the class the ground truth gives.
    table = _closing_table(out)
    expected = _expected_classes()
    assert sorted(table) == sorted(expected)
    for name, panic_class in expected.items():
        assert table[name][1] == panic_class, table[name]
        assert re.fullmatch(r"[0-9a-f]{16}", table[name][2]), table[name]  # a signature id

    # the ending: the drill's report again, then the catalog's groups: one row per
    # signature, the drill's NMI dump counted with the sample NMI dumps of the same crash
    ending = out.split("== the fire drill (kdiag drill --watch, the live part) ==")[1]
    assert "verdict: PASS (ok)" in ending.split("== the dump catalog")[0]
    groups = ending.split("== the dump catalog: kdiag dumps group ==")[1].splitlines()[1:]
    assert groups[0].split()[:3] == ["SIGNATURE", "COUNT", "CLASS"]
    rows = {  # a row starts with its signature id; a long cell goes on below it
        cells[0]: cells
        for line in groups[1:]
        if (cells := line.split()) and re.fullmatch(r"[0-9a-f]{16}", cells[0])
    }
    samples: dict[str, int] = {}
    for cells in table.values():
        samples[cells[2]] = samples.get(cells[2], 0) + 1
    nmi_id = next(cells[2] for cells in table.values() if cells[1] == "nmi")
    assert set(rows) == set(samples)
    for signature, count in samples.items():
        expected = count + (1 if signature == nmi_id else 0)  # + the drill's own dump
        assert int(rows[signature][1]) == expected, rows[signature]


def test_interrupted_live_demo_cleans_up(demo_tmp: Path) -> None:
    """Ctrl-C in the middle of the live demo (guest up, kdiag serve answering): the cleanup
    still stops the endpoint, takes the guest down and removes the temporary directory."""
    require_tool("qemu-system-x86_64")
    env = {**os.environ, "KDIAG_DEMO_TMP": str(demo_tmp)}
    for var in ("KDIAG_STATE_DIR", "KDIAG_DB", "KDIAG_ENDPOINT"):
        env.pop(var, None)
    proc = subprocess.Popen(
        ["bash", "scripts/demo-live.sh"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + TIMEOUT
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("== the aws CLI") or time.monotonic() > deadline:
            break
    running = _processes_using(demo_tmp)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground job
    try:
        rest, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("demo-live.sh did not stop within 120 s of Ctrl-C")
    survivors = _survivors(demo_tmp)
    output = "".join(seen) + rest
    assert seen[-1].startswith("== the aws CLI"), output
    # the interruption came while both were up: a guest (qemu) and kdiag serve
    assert any("qemu-system" in cmd for cmd in running.values()), running
    assert any(" serve " in cmd for cmd in running.values()), running
    assert proc.returncode == 130, output
    assert survivors == {}
    assert sorted(p.name for p in demo_tmp.iterdir()) == []
