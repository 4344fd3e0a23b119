"""``kdiag analyze ssh://HOST/path``: a real OpenSSH sshd on loopback serves the fixture dumps
over SFTP; the remote analysis must equal the local one, reading ranges, not the file.

Also the range source on its own: any reads through it equal the file's bytes (hypothesis),
with its cache bounded."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.cli.main import run
from kdiag.errors import ConfigError, TruncatedDump
from kdiag.fleet.remote import parse_ssh_url
from kdiag.vmcore.source import RangeSource
from tests.conftest import require_tool
from tests.fleet.sshd import Sshd, start_sshd

FIXTURES = ("nmi-lzo", "arm64-sysrq-zlib", "hostdump-qemu-kdump")


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
def ssh_env(sshd: Sshd, monkeypatch: pytest.MonkeyPatch) -> Sshd:
    monkeypatch.setenv("KDIAG_SSH_CONFIG", str(sshd.config))
    return sshd


def analyze_json(capsys: pytest.CaptureFixture[str], target: str) -> tuple[int, dict[str, object]]:
    code = run(["analyze", "--json", target])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.mark.parametrize("name", FIXTURES)
def test_remote_analysis_equals_local(
    name: str,
    ssh_env: Sshd,
    vmcore_fixtures: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = vmcore_fixtures / name / "vmcore"
    code_local, local = analyze_json(capsys, str(path))
    code_remote, remote = analyze_json(capsys, ssh_env.url(path))
    assert code_remote == code_local
    for doc in (local, remote):
        doc.pop("path", None)
        doc.pop("bytes_read", None)
    assert remote == local
    assert local["panic"]
    assert local["log_records"]


def test_remote_reads_ranges_not_the_file(ssh_env: Sshd, vmcore_fixtures: Path) -> None:
    from kdiag.fleet.remote import open_remote
    from kdiag.vmcore.triage import triage

    path = vmcore_fixtures / "nmi-lzo" / "vmcore"
    with open_remote(ssh_env.url(path)) as dump:
        triage(dump)
        source = dump.source
        assert isinstance(source, RangeSource)
        fetched, trips = source.bytes_read, source.fetches
    assert fetched < path.stat().st_size / 10
    assert trips < 50


def test_remote_refusals(
    ssh_env: Sshd, vmcore_fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no such file: the caller's mistake
    assert run(["analyze", ssh_env.url(tmp_path / "absent")]) == 2
    assert "no such file" in capsys.readouterr().err
    # a directory
    assert run(["analyze", ssh_env.url(tmp_path)]) == 2
    # not a dump
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello" * 100)
    assert run(["analyze", ssh_env.url(junk)]) == 5
    # compressed: refused (it needs the whole file), not copied
    assert run(["analyze", ssh_env.url(vmcore_fixtures / "nmi-elf" / "vmcore.zst")]) == 5
    capsys.readouterr()
    # a host key that is not the pinned one: refused before any read
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{ssh_env.port} ssh-ed25519 " + "A" * 68 + "\n")
    config = tmp_path / "config"
    config.write_text(ssh_env.config.read_text().replace(str(ssh_env.known_hosts), str(wrong)))
    os.environ["KDIAG_SSH_CONFIG"] = str(config)
    assert run(["analyze", ssh_env.url(vmcore_fixtures / "nmi-lzo" / "vmcore")]) == 4
    assert "host key" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "ssh://host",
        "ssh://host/",
        "ssh://user:pw@host/x",
        "http://host/x",
        "ssh://host:99999/x",
        "ssh://ho st/x",
        "ssh://host/x?y=1",
        "ssh://-oProxyCommand=x/x",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_ssh_url(url)


def test_url_parts() -> None:
    loc = parse_ssh_url("ssh://root@db-7.example:2222/var/crash/127.0.0.1-2026/vmcore")
    assert (loc.user, loc.host, loc.port) == ("root", "db-7.example", 2222)
    assert loc.path == "/var/crash/127.0.0.1-2026/vmcore"
    assert str(loc) == "ssh://root@db-7.example:2222/var/crash/127.0.0.1-2026/vmcore"


DATA = bytes(range(256)) * 97 + b"tail"


@settings(max_examples=200, deadline=None)
@given(
    reads=st.lists(
        st.tuples(st.integers(0, len(DATA) + 10), st.integers(0, 5000)), min_size=1, max_size=30
    ),
    block=st.sampled_from([16, 64, 4096]),
    cache=st.integers(1, 8),
)
def test_range_source_reads_equal_the_bytes(
    reads: list[tuple[int, int]], block: int, cache: int
) -> None:
    calls: list[tuple[int, int]] = []

    def fetch(offset: int, size: int) -> bytes:
        calls.append((offset, size))
        return DATA[offset : offset + size]

    src = RangeSource(fetch, len(DATA), block=block, cache_blocks=cache)
    for offset, size in reads:
        assert src.read_upto(offset, size) == DATA[offset : offset + size][: max(0, size)]
        if offset + size <= len(DATA):
            assert src.read(offset, size) == DATA[offset : offset + size]
        else:
            with pytest.raises(TruncatedDump):
                src.read(offset, size)
        assert len(src._cache) <= cache
    assert all(o % block == 0 for o, _ in calls)
    assert src.bytes_read == sum(min(s, len(DATA) - o) for o, s in calls)
    closed: list[bool] = []
    src2 = RangeSource(fetch, len(DATA), on_close=lambda: closed.append(True))
    src2.close()
    src2.close()
    assert closed == [True]


def test_inventory_connection_settings(
    sshd: Sshd,
    vmcore_fixtures: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``$KDIAG_INVENTORY``: the host name is an inventory host, reached as Ansible would
    reach it (address, port, user, key, known_hosts from its variables); no ssh_config."""
    inv = tmp_path / "inventory.ini"
    inv.write_text(
        f"[dumps]\ndumpbox ansible_host=127.0.0.1 ansible_port={sshd.port} "
        f"ansible_user={getpass.getuser()} "
        f"ansible_ssh_private_key_file={sshd.key} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={sshd.known_hosts}'\n"
    )
    empty = tmp_path / "empty_config"
    empty.write_text("")
    monkeypatch.setenv("KDIAG_SSH_CONFIG", str(empty))
    monkeypatch.setenv("KDIAG_INVENTORY", str(inv))
    path = vmcore_fixtures / "nmi-lzo" / "vmcore"
    _, local = analyze_json(capsys, str(path))
    code, remote = analyze_json(capsys, f"ssh://dumpbox{path}")
    assert code == 0
    for doc in (local, remote):
        doc.pop("path", None)
        doc.pop("bytes_read", None)
    assert remote == local
    # a host the inventory does not have falls back to ssh_config (empty: no such host)
    assert run(["analyze", f"ssh://elsewhere.invalid{path}"]) == 4
