"""``kdiag dumps scan ssh://HOST/var/crash``: a real OpenSSH sshd on loopback serves a crash
tree of real dumps over SFTP.  The remote scan must catalog exactly what a local scan of the
same files catalogs (same identities, hosts, signatures, summaries), reading ranges, not the
files; a remote-then-local scan is one entry per dump with both paths."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.cli.main import run
from tests.catalog.conftest import TREE, link_or_copy
from tests.conftest import require_tool
from tests.fleet.sshd import Sshd, start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(
        tmp_path_factory.mktemp("sshd"),
        require_tool("sshd"),
        "/usr/lib/openssh/sftp-server",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def crash(tmp_path: Path, vmcore_fixtures: Path) -> Path:
    """A /var/crash of four real dumps, their dmesg files, a junk 'vmcore', a symlink to
    one of the dumps (counted once) and a directory symlink (not followed)."""
    root = tmp_path / "crash"
    for rel, name in TREE.items():
        dump = link_or_copy(vmcore_fixtures / name / "vmcore", root / rel)
        (dump.parent / "vmcore-dmesg.txt").write_text("not a dump\n")
    junk = root / "bad-2026-11-24-00:00:00" / "vmcore"
    junk.parent.mkdir()
    junk.write_bytes(b"\x7fELF" + os.urandom(5000))
    first = next(iter(TREE))
    (root / "vmcore.link").symlink_to(root / first)
    (root / "loop").symlink_to(root, target_is_directory=True)
    return root


def _env(monkeypatch: pytest.MonkeyPatch, sshd: Sshd, db: Path) -> None:
    for key in list(os.environ):
        if key.startswith("KDIAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KDIAG_STATE_DIR", str(db.parent / "state"))
    monkeypatch.setenv("KDIAG_DB", f"sqlite:///{db}")
    monkeypatch.setenv("KDIAG_SSH_CONFIG", str(sshd.config))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = run(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out)


def _catalog(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    """The catalog by identity, without what depends on where and when it was read."""
    code, doc = _cli(capsys, "dumps", "list", "--json")
    assert code == 0
    rows = doc["Dumps"]
    assert isinstance(rows, list)
    out: dict[str, dict[str, object]] = {}
    for row in rows:
        _, shown = _cli(capsys, "dumps", "show", str(row["id"]), "--json")
        keep = {k: v for k, v in row.items() if k not in ("id", "paths", "indexed_at")}
        summary = dict(shown["summary"])  # type: ignore[call-overload]
        # where it was read from and how many bytes that took differ, by design
        assert summary.pop("path")
        assert summary.pop("bytes_read") > 0
        keep["summary"] = summary
        keep["log_tail"] = shown["log_tail"]
        out[str(row["identity"])] = keep
    return out


def test_remote_scan_equals_local_scan_and_is_one_entry_with_it(
    sshd: Sshd,
    crash: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = sshd.url(crash)
    total = sum(p.stat().st_size for p in crash.rglob("vmcore") if p.is_file())
    # the remote scan, in its own database
    _env(monkeypatch, sshd, tmp_path / "remote.db")
    code, remote = _cli(capsys, "dumps", "scan", url, "--json")
    assert code == 5  # the junk file is rejected; the scan goes on
    assert (remote["new"], remote["rejected"], remote["scanned"]) == (4, 1, 5)
    paths = [o["paths"][0] for o in remote["outcomes"]]  # type: ignore[index]
    assert all(p.startswith("ssh://kdiag-sshd/") for p in paths)
    assert not any("/loop/" in p for p in paths)  # directory links not followed
    assert 0 < int(remote["bytes_read"]) < total // 4  # type: ignore[call-overload]
    remote_catalog = _catalog(capsys)
    # the local scan of the same files, in another database
    _env(monkeypatch, sshd, tmp_path / "local.db")
    code, local = _cli(capsys, "dumps", "scan", str(crash), "--json")
    assert code == 5
    assert (local["new"], local["rejected"]) == (4, 1)
    # the same files were chosen (a symlink to a dump counted once, under the same name)
    local_paths = [o["paths"][0] for o in local["outcomes"]]  # type: ignore[index]
    assert [p.removeprefix("ssh://kdiag-sshd") for p in paths] == local_paths
    local_catalog = _catalog(capsys)
    for key, want in local_catalog.items():
        got = remote_catalog[key]
        assert {k: (v, want.get(k)) for k, v in got.items() if v != want.get(k)} == {}, key
    assert remote_catalog == local_catalog
    assert len(remote_catalog) == 4
    # remote then local in one database: one entry per dump, with both paths
    _env(monkeypatch, sshd, tmp_path / "remote.db")
    code, both = _cli(capsys, "dumps", "scan", str(crash), "--json")
    assert (both["matched"], both["new"]) == (4, 0)
    _, listed = _cli(capsys, "dumps", "list", "--json")
    rows = listed["Dumps"]
    assert isinstance(rows, list)
    assert len(rows) == 4
    for row in rows:
        kinds = sorted(
            p.split(":", 1)[0] if p.startswith("ssh:") else "local" for p in row["paths"]
        )
        assert kinds == ["local", "ssh"], row["paths"]
    # a remote rescan reads nothing again
    code, again = _cli(capsys, "dumps", "scan", url, "--json")
    assert (again["unchanged"], again["new"], again["matched"]) == (4, 0, 0)
    assert again["bytes_read"] == 0


def test_remote_scan_refusals(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, sshd, tmp_path / "k.db")
    assert run(["dumps", "scan", sshd.url(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert run(["dumps", "scan", "ssh://kdiag-sshd"]) == 2  # no path
    capsys.readouterr()
    # an unknown host key: refused, exit 4
    bad = tmp_path / "config"
    bad.write_text(sshd.config.read_text().replace(str(sshd.known_hosts), str(tmp_path / "empty")))
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("KDIAG_SSH_CONFIG", str(bad))
    assert run(["dumps", "scan", sshd.url(tmp_path)]) == 4
    assert "host key" in capsys.readouterr().err
