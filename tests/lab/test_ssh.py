"""Lab SSH plumbing: keys per lab root, the pinned host key, QEMU's loopback-only forward."""

from __future__ import annotations

import multiprocessing
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kdiag.lab.qemu import GuestFiles, command_line
from kdiag.lab.ssh import FW_CFG_HOST_KEY, access, free_port, lab_keys
from tests.conftest import require_tool


def test_keys_are_made_once_per_root_private_and_pinned(tmp_path: Path) -> None:
    require_tool("ssh-keygen")
    first = lab_keys(tmp_path)
    again = lab_keys(tmp_path)
    assert first == again  # not regenerated
    assert stat.S_IMODE(first.directory.stat().st_mode) == 0o700
    for key in (first.client_key, first.host_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # the known_hosts line is the host key's public half, for any loopback port
    kind, body = first.host_public.split()[:2]
    assert first.known_hosts.read_text() == f"[127.0.0.1]:* {kind} {body}\n"
    # ssh-keygen itself agrees that the pinned line matches the host key at any port
    found = subprocess.run(
        ["ssh-keygen", "-F", "[127.0.0.1]:2222", "-f", str(first.known_hosts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    word = first.cmdline_key()
    assert " " not in word
    assert word.startswith("ssh-ed25519:")
    other = lab_keys(tmp_path / "other")
    assert other.client_public != first.client_public


def test_command_line_forwards_loopback_only_and_restricts(
    tmp_path: Path, guest_files: GuestFiles
) -> None:
    require_tool("qemu-system-x86_64")
    port = free_port()
    hostkey = tmp_path / "host"
    args = command_line(
        guest_files,
        accel="tcg",
        memory_mib=512,
        cpus=1,
        append="x",
        ssh_port=port,
        host_key=hostkey,
    )
    netdev = args[args.index("-netdev") + 1]
    assert netdev == f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"
    assert args[args.index("-device", args.index("-netdev")) + 1] == "virtio-net-pci,netdev=n0"
    assert args[args.index("-fw_cfg") + 1] == f"name={FW_CFG_HOST_KEY},file={hostkey}"
    assert "-nic" not in args
    plain = command_line(guest_files, accel="tcg", memory_mib=512, cpus=1, append="x")
    assert plain[plain.index("-nic") + 1] == "none"


def test_access_argv_checks_the_host_key_strictly(tmp_path: Path) -> None:
    acc = access(tmp_path, 2200)
    argv = acc.argv(["true"])
    assert argv[:5] == ["ssh", "-i", str(tmp_path / "id_ed25519"), "-p", "2200"]
    assert "StrictHostKeyChecking=yes" in argv
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv
    assert argv[-2:] == ["root@127.0.0.1", "true"]


def _keys_in_process(root: str) -> tuple[str, str, str]:
    keys = lab_keys(Path(root))
    return keys.client_public, keys.host_public, keys.known_hosts.read_text()


def test_keys_made_concurrently_by_threads_and_processes_are_one_usable_pair(
    tmp_path: Path,
) -> None:
    """Several guests of one root starting at once: exactly one key pair wins, every
    caller gets it, and the private keys on disk match the public halves handed out."""
    require_tool("ssh-keygen")
    ctx = multiprocessing.get_context("spawn")
    barrier_threads = 6
    with ctx.Pool(4) as pool, ThreadPoolExecutor(barrier_threads) as threads:
        procs = [pool.apply_async(_keys_in_process, (str(tmp_path),)) for _ in range(4)]
        thr = [threads.submit(_keys_in_process, str(tmp_path)) for _ in range(barrier_threads)]
        results = [p.get(timeout=60) for p in procs] + [t.result(timeout=60) for t in thr]
    assert len(set(results)) == 1, results
    client_public, host_public, known = results[0]
    ssh_dir = tmp_path / "ssh"
    # the private keys on disk are the ones whose public halves everybody got
    for private, public in (
        (ssh_dir / "id_ed25519", client_public),
        (ssh_dir / "host_ed25519", host_public),
    ):
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(private)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[:2]
        assert derived == public.split()[:2]
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert known.split()[1:3] == host_public.split()[:2]
    # no temporary leftovers
    assert sorted(p.name for p in ssh_dir.iterdir()) == [
        ".lock",
        "host_ed25519",
        "host_ed25519.pub",
        "id_ed25519",
        "id_ed25519.pub",
        "known_hosts",
    ]


def test_a_half_made_pair_is_remade(tmp_path: Path) -> None:
    require_tool("ssh-keygen")
    first = lab_keys(tmp_path)
    first.client_key.unlink()  # a crash between the two links
    again = lab_keys(tmp_path)
    assert again.client_public != first.client_public
    assert again.host_public == first.host_public
