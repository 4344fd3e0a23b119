"""Benchmark: ``kdiag analyze ssh://HOST/path`` against ``scp`` of the whole dump, under latency.

Two network namespaces made for the run (``kdr-c-PID`` client, ``kdr-s-PID`` server) joined by
a veth pair, nothing on the host's own network; ``tc netem`` adds the same one-way delay on
both ends (RTT = 2 x delay).  A private OpenSSH sshd (tests/fleet/sshd.py) serves the fixture
dumps in the server namespace; in the client namespace, per dump and per delay:

- ``kdiag analyze --json ssh://...``: SFTP byte ranges (the whole process, start-up included);
- ``scp`` of the whole file, then ``kdiag analyze --json`` of the local copy.

Bytes are counted on the wire (the client veth's rx+tx counters, SSH overhead included).

Where the kernel has no ``sch_netem`` (``tc ... netem`` answers "unknown qdisc"), the delay
comes from a small TCP relay in the client namespace instead (this script, ``--relay``): each
chunk is held for the delay in each direction, in order, optionally paced to ``--rate``
Mbit/s; the table says which was used.
Prints a table with the ratios scp/kdiag for time and bytes; asserts nothing.  Needs root
(``ip netns``, ``tc``), sshd and sftp-server (``scripts/apt-packages.txt``).

Run: ``.venv/bin/python bench/remote.py [--delays 0,5,25] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fleet.sshd import Sshd, start_sshd  # noqa: E402 - after the path is set

FIXTURES = Path(os.environ.get("KDIAG_FIXTURES", REPO.parent / "shared" / "fixtures")) / "vmcores"
DUMPS = ("nmi-lzo", "arm64-sysrq-zlib", "hostdump-qemu-kdump")
CLIENT_IP, SERVER_IP = "10.213.7.1", "10.213.7.2"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check)


class Netns:
    """Client and server namespaces joined by a veth pair with netem delay."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.client, self.server = f"kdr-c-{pid}", f"kdr-s-{pid}"
        self.cdev, self.sdev = f"kdrc{pid % 100000}", f"kdrs{pid % 100000}"

    def __enter__(self) -> Netns:
        sh("ip", "netns", "add", self.client)
        sh("ip", "netns", "add", self.server)
        sh("ip", "link", "add", self.cdev, "type", "veth", "peer", "name", self.sdev)
        sh("ip", "link", "set", self.cdev, "netns", self.client)
        sh("ip", "link", "set", self.sdev, "netns", self.server)
        for ns, dev, ip in (
            (self.client, self.cdev, CLIENT_IP),
            (self.server, self.sdev, SERVER_IP),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def delay(self, ms: float) -> bool:
        """netem delay on both ends; False when the kernel has no netem."""
        for ns, dev in ((self.client, self.cdev), (self.server, self.sdev)):
            sh("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)
            if ms > 0:
                args = ("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay")
                if sh(*args, f"{ms}ms", check=False).returncode != 0:
                    return False
        return True

    def wire_bytes(self) -> int:
        base = f"/sys/class/net/{self.cdev}/statistics"
        out = sh(
            "ip", "netns", "exec", self.client, "sh", "-c", f"cat {base}/rx_bytes {base}/tx_bytes"
        )
        return sum(int(x) for x in out.stdout.split())

    def __exit__(self, *exc: object) -> None:
        sh("ip", "netns", "del", self.client, check=False)
        sh("ip", "netns", "del", self.server, check=False)


def timed(net: Netns, argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    before = net.wire_bytes()
    start = time.perf_counter()
    proc = subprocess.run(
        ["ip", "netns", "exec", net.client, *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}): {proc.stderr[-300:]}")
    return elapsed, net.wire_bytes() - before


RELAY_PORT = 2222


def relay(listen_port: int, target: str, delay_ms: float, rate_mbit: float) -> None:
    """Forward 127.0.0.1:listen_port to target (host:port), holding every chunk delay_ms in
    each direction (in order) and pacing to rate_mbit (0: unpaced)."""
    import asyncio

    host, _, port = target.rpartition(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        task = asyncio.create_task(sender())
        free = 0.0
        while chunk := await reader.read(65536):
            due = time.monotonic() + delay_ms / 1000
            if rate_mbit > 0:
                free = max(free, time.monotonic()) + len(chunk) * 8 / (rate_mbit * 1e6)
                due = max(due, free)
            await queue.put((due, chunk))
        await queue.put((0.0, b""))
        await task

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def start_relay(
    net: Netns, server: Sshd, work: Path, delay_ms: float, rate: float
) -> tuple[subprocess.Popen[bytes], Path]:
    """The relay in the client namespace, and an ssh_config that goes through it."""
    argv = [sys.executable, __file__, "--relay", str(RELAY_PORT), f"{SERVER_IP}:22"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", net.client, *argv, str(delay_ms), str(rate)],
        stdin=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    config = work / "relay_config"
    config.write_text(
        server.config.read_text()
        .replace(f"HostName {SERVER_IP}", "HostName 127.0.0.1")
        .replace("Port 22\n", f"Port {RELAY_PORT}\n")
        .replace(str(server.known_hosts), str(work / "relay_known"))
    )
    key = server.known_hosts.read_text().split(None, 1)[1]
    (work / "relay_known").write_text(f"[127.0.0.1]:{RELAY_PORT} {key}")
    return proc, config


def measure(
    net: Netns, *, kdiag: str, url: str, dump: Path, conf: str, work: Path, runs: int
) -> tuple[float, float, float, float]:
    env = {**os.environ, "KDIAG_SSH_CONFIG": conf}
    remote, local = [], []
    for _ in range(runs):
        remote.append(timed(net, [kdiag, "analyze", "--json", url], env))
        copy = work / "copy.vmcore"
        t_scp, b_scp = timed(net, ["scp", "-q", "-F", conf, f"kdiag-sshd:{dump}", str(copy)], env)
        t_an, _ = timed(net, [kdiag, "analyze", "--json", str(copy)], env)
        copy.unlink()
        local.append((t_scp + t_an, b_scp))
    return (
        statistics.median(t for t, _ in remote),
        statistics.median(b for _, b in remote),
        statistics.median(t for t, _ in local),
        statistics.median(b for _, b in local),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", default="0,5,25", help="one-way delays in ms")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.0, help="relay pacing, Mbit/s")
    parser.add_argument("--relay", nargs=4, metavar=("PORT", "TARGET", "MS", "RATE"))
    opts = parser.parse_args()
    if opts.relay:
        port, target, ms, rate = opts.relay
        relay(int(port), target, float(ms), float(rate))
        return 0
    if os.geteuid() != 0:
        print("needs root (ip netns, tc)", file=sys.stderr)
        return 2
    rows = bench_rows(opts)
    report(rows, opts)
    return 0


def bench_rows(opts: argparse.Namespace) -> list[tuple[Any, ...]]:
    kdiag = str(Path(sys.executable).parent / "kdiag")
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    work = Path(tempfile.mkdtemp(prefix="kdr-"))
    rows: list[tuple[Any, ...]] = []
    try:
        with Netns() as net:
            server = start_sshd(
                work / "sshd",
                sshd,
                "/usr/lib/openssh/sftp-server",
                listen=SERVER_IP,
                port=22,
                prefix=("ip", "netns", "exec", net.server),
            )
            time.sleep(0.5)
            try:
                for delay in (float(d) for d in opts.delays.split(",")):
                    how, relay_proc, conf = "netem", None, str(server.config)
                    if not net.delay(delay) or opts.rate > 0:
                        net.delay(0)
                        how = "relay"
                        relay_proc, config = start_relay(net, server, work, delay, opts.rate)
                        conf = str(config)
                    try:
                        for name in DUMPS:
                            dump = FIXTURES / name / "vmcore"
                            if not dump.is_file():
                                continue
                            url = server.url(dump)
                            rt, rb, lt, lb = measure(
                                net,
                                kdiag=kdiag,
                                url=url,
                                dump=dump,
                                conf=conf,
                                work=work,
                                runs=opts.runs,
                            )
                            size = dump.stat().st_size
                            rows.append((how, delay * 2, name, size, rt, rb, lt, lb))
                            print(f"  {how} rtt {delay * 2:.0f} ms {name} done", file=sys.stderr)
                    finally:
                        if relay_proc is not None:
                            relay_proc.terminate()
                            relay_proc.wait()
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def report(rows: list[tuple[Any, ...]], opts: argparse.Namespace) -> None:
    rate = f", relay paced to {opts.rate:g} Mbit/s" if opts.rate else ""
    print(
        f"kdiag analyze ssh:// vs scp + local analyze: median of {opts.runs}, bytes on the "
        f"wire{rate}"
    )
    head = (
        "delay by",
        "RTT ms",
        "dump",
        "MiB",
        "ssh:// s",
        "ssh:// KiB",
        "scp+an s",
        "scp KiB",
        "time x",
        "bytes x",
    )
    print("  ".join(f"{h:>10}" for h in head))
    for how, rtt, name, size, rt, rb, lt, lb in rows:
        cells = (
            how,
            f"{rtt:.0f}",
            name[:10],
            f"{size / 2**20:.1f}",
            f"{rt:.2f}",
            f"{rb / 1024:.0f}",
            f"{lt:.2f}",
            f"{lb / 1024:.0f}",
            f"{lt / rt:.2f}",
            f"{lb / max(rb, 1):.1f}",
        )
        print("  ".join(f"{c:>10}" for c in cells))
    print("time x, bytes x: scp's figure over kdiag's (above 1: analyze ssh:// wins)")


if __name__ == "__main__":
    raise SystemExit(main())
