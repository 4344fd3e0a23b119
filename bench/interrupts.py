"""Benchmark: NMI delivery per backend against its real peer, and the use case without HTTP.

**Delivery** (``--only delivery``): for each backend in the :data:`PEERS` registry, the
latency of one NMI delivered by kdiag's backend (``Backend.send_nmi``: state check included,
as every send does) to a real peer, next to the peer's own CLI doing the same, in one run:

- ``libvirt``: a private session-mode libvirtd (tests/peers/libvirtd.py) running a TCG
  domain with no OS (SeaBIOS idles; each NMI is taken and returned from).  kdiag opens a
  connection per call, reads ``isActive``/``state`` and calls ``injectNMI(0)``; the peer is
  ``virsh -c URI inject-nmi DOMAIN`` (a process per NMI, as an operator runs it); a third
  row is the floor: ``injectNMI(0)`` alone on one open libvirt-python connection.
- ``qmp``: QEMU (``-M pc``, TCG, no OS) with a QMP socket.  kdiag's qmp backend
  (``query-status`` then ``inject-nmi``, its session kept briefly between calls) against
  ``socat`` speaking QMP by hand (greeting, ``qmp_capabilities``, ``inject-nmi``; timed
  until its answer is read and socat has exited).
- ``redfish``: sushy-tools' emulator (libvirt driver, Basic auth) in front of a no-OS
  domain in a private libvirtd.  kdiag's redfish backend (service root, system, allowed
  reset types and power state, then the POST) against ``curl`` POSTing the Nmi reset.
- ``ipmi``: VirtualBMC (pyghmi's BMC server) in front of such a domain.  kdiag's ipmi
  backend (RMCP+ login, power state, Chassis Control 04h, power state again, logout)
  against ``ipmitool -I lanplus -C 3 chassis power diag``.

Per row: runs, median and p99 in ms, and the ratio of kdiag's median to the peer CLI's.

**Adding a backend**: write a context manager that starts
the peer and yields a :class:`DeliveryCase` (the kdiag target, the peer CLI as a callable
that raises when it fails, optional extra rows), and decorate it with ``@peer("name")``;
the runner and the table need nothing else.  A peer that cannot start here (a tool
missing) raises :class:`PeerUnavailable`; its row says why instead of a figure.

**Use case** (``--only use-case``): authorize + intent + delivery + outcome (policy
evaluation, four store round trips, the backend) on SQLite and, when a URL is given,
PostgreSQL, with the fake backend and with QMP against a real QEMU (``-M pc``, TCG, no
guest).

    .venv/bin/python bench/interrupts.py [--only delivery|use-case] [--nmi-runs 50] [-n 2000]
    bash scripts/pg-throwaway.sh sh -c \
        '.venv/bin/python bench/interrupts.py --only use-case --pg "$KDIAG_TEST_PG_URL"'

It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from kdiag.backends import BackendPool, Target, get_backend
from kdiag.backends.fake import FakeBackend
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store

REPO = Path(__file__).resolve().parents[1]

POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "ec2:SendDiagnosticInterrupt",
            "Resource": "arn:aws:ec2:us-east-1:*:instance/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
        }
    ],
}


def _fresh_pg(admin_url: str) -> tuple[str, tuple[Engine, str]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"kdiag_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin.set(database=name).render_as_string(hide_password=False), (engine, name)


def _drop_pg(handle: tuple[Engine, str]) -> None:
    from sqlalchemy import text

    engine, name = handle
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _run(url: str, backend: str, target: dict[str, object], n: int) -> tuple[float, float, float]:
    with Store.open(url) as store, BackendPool({"fake": FakeBackend()}) as pool:
        user = store.create_user("bench")
        store.put_user_policy("bench", "nmi", POLICY)
        inst = store.add_instance(backend=backend, target=target, tags={"Owner": "bench"})
        caller = Caller(user.account_id, "bench", user.id, None, "127.0.0.1")
        for _ in range(min(50, n)):  # warm-up: connections, caches
            send_diagnostic_interrupt(store, InterruptRequest(caller, inst.id), backends=pool)
        latencies = []
        started = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            send_diagnostic_interrupt(store, InterruptRequest(caller, inst.id), backends=pool)
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies), p99, n / elapsed


def use_case(args: argparse.Namespace) -> None:
    print("== use case (no HTTP): authorize + intent + delivery + outcome ==")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KDIAG_STATE_DIR"] = str(Path(tmp) / "state")
        qemu = shutil.which("qemu-system-x86_64")
        proc = None
        sock = Path(tmp) / "qmp.sock"
        if qemu:
            proc = subprocess.Popen(
                [qemu, "-M", "pc", "-m", "32", "-accel", "tcg", "-nodefaults", "-display",
                 "none", "-qmp", f"unix:{sock},server=on,wait=off"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            while not sock.exists():
                time.sleep(0.02)
        try:
            cases = [("sqlite", "fake")] + ([("sqlite", "qmp")] if proc else [])
            if args.pg:
                cases += [("postgresql", "fake")] + ([("postgresql", "qmp")] if proc else [])
            print(f"{'database':<11} {'backend':<8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
            for i, (db, backend) in enumerate(cases):
                handle: tuple[Engine, str] | None = None
                if db == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'bench{i}.db'}"
                else:
                    url, handle = _fresh_pg(args.pg)
                target: dict[str, object] = {"address": str(sock)} if backend == "qmp" else {}
                n = args.n if backend == "fake" else max(1, args.n // 4)
                try:
                    p50, p99, rps = _run(url, backend, target, n)
                finally:
                    if handle is not None:
                        _drop_pg(handle)
                print(f"{db:<11} {backend:<8} {p50:8.2f} {p99:8.2f} {rps:8.0f}")
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()


# --- delivery against each backend's real peer --------------------------------------------


class PeerUnavailable(Exception):
    """The peer cannot run here (a tool is missing); the row says why."""


@dataclass(frozen=True)
class DeliveryCase:
    """One backend's peer, running: what kdiag targets, and the peer's CLI doing the same."""

    backend: str
    target: Target
    peer_label: str
    peer: Callable[[], None]
    extras: tuple[tuple[str, Callable[[], None]], ...] = field(default=())
    #: run the rows round-robin (one NMI each per round: the host's load drifts alike for
    #: all); False when they cannot share the peer (QEMU serves one QMP client at a time)
    interleave: bool = True


PeerFactory = Callable[[], AbstractContextManager[DeliveryCase]]
#: backend name -> a context manager starting its peer (see the module docstring)
PEERS: dict[str, PeerFactory] = {}


def peer(name: str) -> Callable[[PeerFactory], PeerFactory]:
    """Register the peer of backend ``name``."""

    def register(factory: PeerFactory) -> PeerFactory:
        PEERS[name] = factory
        return factory

    return register


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )
    if path is None:
        raise PeerUnavailable(f"{name} is not installed")
    return path


def _checked(argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()[:200]}")

    return run


@peer("libvirt")
@contextlib.contextmanager
def _libvirt_peer() -> Iterator[DeliveryCase]:
    _tool("libvirtd")
    virsh = _tool("virsh")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests.peers: the peers the tests start
    from tests.peers.libvirtd import minimal_domain_xml, running_libvirtd

    with running_libvirtd() as daemon:
        name = daemon.define_xml(minimal_domain_xml("bench-nmi"))
        started = daemon.virsh("start", name)
        if started.returncode != 0:
            raise PeerUnavailable(f"virsh start: {started.stderr.strip()}")
        import libvirt

        conn = libvirt.open(daemon.uri)
        dom = conn.lookupByName(name)
        try:
            yield DeliveryCase(
                backend="libvirt",
                target=Target("i-0000000000000bench", {"uri": daemon.uri, "domain": name}),
                peer_label="virsh inject-nmi",
                peer=_checked([virsh, "-c", daemon.uri, "inject-nmi", name]),
                extras=(("libvirt-python injectNMI, open conn", lambda: dom.injectNMI(0)),),
            )
        finally:
            conn.close()


def _socat_qmp(socat: str, sock: Path) -> Callable[[], None]:
    """socat speaking QMP by hand: greeting, qmp_capabilities, inject-nmi, until answered."""
    commands = b'{"execute":"qmp_capabilities"}\n{"execute":"inject-nmi"}\n'

    def run() -> None:
        proc = subprocess.Popen(
            [socat, "-t", "0", "-", f"UNIX-CONNECT:{sock}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(commands)
        proc.stdin.flush()
        answers = 0
        for line in proc.stdout:  # greeting, then one answer per command
            if b'"return"' in line:
                answers += 1
                if answers == 2:
                    break
            elif b'"error"' in line:
                break
        proc.stdin.close()
        proc.wait(10)
        if answers != 2:
            raise RuntimeError("socat: inject-nmi was not answered")

    return run


@peer("qmp")
@contextlib.contextmanager
def _qmp_peer() -> Iterator[DeliveryCase]:
    qemu = _tool("qemu-system-x86_64")
    socat = _tool("socat")
    with tempfile.TemporaryDirectory(prefix="kdb-", dir="/tmp") as tmp:
        sock = Path(tmp) / "qmp.sock"
        proc = subprocess.Popen(
            [qemu, "-M", "pc", "-m", "32", "-accel", "tcg", "-nodefaults", "-display",
             "none", "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            yield DeliveryCase(
                backend="qmp",
                target=Target("i-0000000000000bench", {"address": str(sock)}),
                peer_label="socat (QMP by hand)",
                peer=_socat_qmp(socat, sock),
                interleave=False,
            )
        finally:
            proc.kill()
            proc.wait()


_BMC_USER = "admin"
_BMC_PASSWORD = "bench-bmc-pw"  # a throwaway login of a loopback emulator


def _free_port(kind: int) -> int:
    import socket

    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _bmc_domain() -> Iterator[tuple[Any, str, str]]:
    """A private libvirtd running a no-OS domain: (daemon, its URI, the domain's UUID)."""
    _tool("libvirtd")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests.peers: the peers the tests start
    from tests.peers.libvirtd import minimal_domain_xml, running_libvirtd

    with running_libvirtd() as daemon:
        name = daemon.define_xml(minimal_domain_xml("bench-bmc"))
        started = daemon.virsh("start", name)
        if started.returncode != 0:
            raise PeerUnavailable(f"virsh start: {started.stderr.strip()}")
        uuid_text = daemon.virsh("domuuid", name).stdout.strip()
        yield daemon, name, uuid_text


@contextlib.contextmanager
def _background(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _bmc_env() -> Iterator[str]:
    """The benchmark's BMC login as an ``env:`` credentials reference."""
    saved = {k: os.environ.get(k) for k in ("KDB_BMC_USERNAME", "KDB_BMC_PASSWORD")}
    os.environ["KDB_BMC_USERNAME"], os.environ["KDB_BMC_PASSWORD"] = _BMC_USER, _BMC_PASSWORD
    try:
        yield "env:KDB_BMC"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@peer("redfish")
@contextlib.contextmanager
def _redfish_peer() -> Iterator[DeliveryCase]:
    """sushy-tools' emulator (libvirt driver, Basic auth) in front of the no-OS domain; the
    peer CLI is ``curl`` POSTing the Nmi reset (as an operator would)."""
    import socket
    import urllib.request

    curl = _tool("curl")
    emulator = Path(sys.executable).with_name("sushy-emulator")
    if not emulator.exists():
        raise PeerUnavailable("sushy-emulator is not installed (pip install sushy-tools)")
    import bcrypt

    with _bmc_domain() as (daemon, _name, uuid_text), _bmc_env() as creds:
        root = Path(daemon.root)
        htpasswd = root / "bench-htpasswd"
        digest = bcrypt.hashpw(_BMC_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"{_BMC_USER}:{digest}\n")
        config = root / "bench-sushy.conf"
        config.write_text(f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n")
        port = _free_port(socket.SOCK_STREAM)
        base = f"http://127.0.0.1:{port}"
        argv = [str(emulator), "--config", str(config), "--libvirt-uri",
                daemon.uri, "--interface", "127.0.0.1", "--port", str(port)]  # fmt: skip
        with _background(argv, root / "bench-sushy.log"):
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/redfish/v1/", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise PeerUnavailable("sushy-emulator did not answer") from None
                    time.sleep(0.2)
            system = f"/redfish/v1/Systems/{uuid_text}"
            yield DeliveryCase(
                backend="redfish",
                target=Target(
                    "i-0000000000000bench",
                    {"url": base, "system": system, "credentials": creds},
                ),
                peer_label="curl POST of the Nmi reset",
                peer=_checked(
                    [
                        curl,
                        "-sSf",
                        "-u",
                        f"{_BMC_USER}:{_BMC_PASSWORD}",
                        "-H",
                        "Content-Type: application/json",
                        "-d",
                        '{"ResetType": "Nmi"}',
                        f"{base}{system}/Actions/ComputerSystem.Reset",
                    ]
                ),
            )


@peer("ipmi")
@contextlib.contextmanager
def _ipmi_peer() -> Iterator[DeliveryCase]:
    """VirtualBMC (pyghmi's BMC server) in front of the no-OS domain; the peer CLI is
    ``ipmitool chassis power diag`` (cipher suite 3: VirtualBMC answers SHA-1)."""
    import socket

    ipmitool = _tool("ipmitool")
    try:
        import virtualbmc  # noqa: F401
    except ImportError:
        raise PeerUnavailable("virtualbmc is not installed (pip install virtualbmc)") from None
    with _bmc_domain() as (daemon, name, _uuid), _bmc_env() as creds:
        root = Path(daemon.root)
        port = _free_port(socket.SOCK_DGRAM)
        code = (
            "import sys\n"
            "from virtualbmc.vbmc import VirtualBMC\n"
            "VirtualBMC(sys.argv[1], sys.argv[2], int(sys.argv[3]), '127.0.0.1', sys.argv[4],"
            " sys.argv[5]).listen(timeout=3600)\n"
        )
        argv = [sys.executable, "-c", code, _BMC_USER, _BMC_PASSWORD, str(port), name,
                daemon.uri]  # fmt: skip
        with _background(argv, root / "bench-vbmc.log"):
            time.sleep(1.0)  # VirtualBMC binds its UDP socket at start-up
            yield DeliveryCase(
                backend="ipmi",
                target=Target(
                    "i-0000000000000bench",
                    {"address": "127.0.0.1", "port": port, "credentials": creds},
                ),
                peer_label="ipmitool chassis power diag",
                peer=_checked(
                    [
                        ipmitool,
                        "-I",
                        "lanplus",
                        "-C",
                        "3",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        _BMC_USER,
                        "-P",
                        _BMC_PASSWORD,
                        "chassis",
                        "power",
                        "diag",
                    ]
                ),
                interleave=False,
            )


@peer("aws")
@contextlib.contextmanager
def _aws_peer() -> Iterator[DeliveryCase]:
    """A *back* ``kdiag serve`` owning a QMP instance on a no-OS QEMU (as the qmp row) is
    the EC2-compatible endpoint.  kdiag's aws backend (DescribeInstances, then
    SendDiagnosticInterrupt) against boto3 calling the back directly; extra rows: the whole
    path through a *front* ``kdiag serve`` whose aws instance points at the back (one kdiag
    fronting another), and the aws CLI calling the back directly."""
    import boto3
    from botocore.config import Config

    qemu = _tool("qemu-system-x86_64")
    aws_cli = str(Path(sys.executable).with_name("aws"))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests.peers: the peers the tests start
    from tests.peers.kdiag_serve import KdiagServe

    allow = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ec2:SendDiagnosticInterrupt", "ec2:DescribeInstances"],
                "Resource": "*",
            }
        ],
    }
    saved = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "KDB_AWS_"))}
    with tempfile.TemporaryDirectory(prefix="kdb-", dir="/tmp") as tmp:
        sock = Path(tmp) / "qmp.sock"
        proc = subprocess.Popen(
            [qemu, "-M", "pc", "-m", "32", "-accel", "tcg", "-nodefaults", "-display",
             "none", "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        back, front = KdiagServe(Path(tmp) / "back"), KdiagServe(Path(tmp) / "front")
        try:
            deadline = time.monotonic() + 30
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            back_id = back.add_instance("qmp", {"address": str(sock)})
            key_id, secret = back.user("front", allow)
            for k in [k for k in os.environ if k.startswith("AWS_")]:
                del os.environ[k]
            os.environ.update(
                KDB_AWS_ACCESS_KEY_ID=key_id,
                KDB_AWS_SECRET_ACCESS_KEY=secret,
                AWS_CONFIG_FILE="/dev/null",
                AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                AWS_EC2_METADATA_DISABLED="true",
            )
            settings = {
                "region": "us-east-1",
                "instance_id": back_id,
                "endpoint_url": back.url,
                "credentials": "env:KDB_AWS",
            }
            front_id = front.add_instance("aws", settings)
            front_key = front.user("operator", allow)
            # Far above the run's rate: the bench measures latency, not the token bucket.
            for server in (back, front):
                server.env = {**server.env, **{k: os.environ[k] for k in os.environ
                                               if k.startswith("KDB_AWS_")}}  # fmt: skip
            back.start_args = front.start_args = ["--rate", "10000", "--burst", "10000"]
            back.start()
            front.start()

            def client(url: str, creds: tuple[str, str]) -> Any:
                return boto3.session.Session().client(
                    "ec2",
                    endpoint_url=url,
                    region_name="us-east-1",
                    aws_access_key_id=creds[0],
                    aws_secret_access_key=creds[1],
                    config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
                )

            direct = client(back.url, (key_id, secret))
            through = client(front.url, front_key)
            cli_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": tmp,
                "AWS_ACCESS_KEY_ID": key_id,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_PAGER": "",
            }

            def cli() -> None:
                argv = [aws_cli, "ec2", "send-diagnostic-interrupt", "--instance-id", back_id,
                        "--endpoint-url", back.url]  # fmt: skip
                done = subprocess.run(argv, env=cli_env, capture_output=True, timeout=60,
                                      check=False)  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"aws CLI failed: {done.stderr.decode()[-200:]}")

            extras: list[tuple[str, Callable[[], None]]] = [
                ("boto3 -> front kdiag -> back", lambda: through.send_diagnostic_interrupt(
                    InstanceId=front_id)),
            ]  # fmt: skip
            if Path(aws_cli).exists():
                extras.append(("aws CLI -> back kdiag (direct)", cli))
            yield DeliveryCase(
                backend="aws",
                target=Target("i-0000000000000bench", settings),
                peer_label="boto3 -> back kdiag (direct)",
                peer=lambda: direct.send_diagnostic_interrupt(InstanceId=back_id),
                extras=tuple(extras),
            )
        finally:
            front.stop()
            back.stop()
            proc.kill()
            proc.wait()
            for k in [k for k in os.environ if k.startswith(("AWS_", "KDB_AWS_"))]:
                del os.environ[k]
            os.environ.update(saved)


def _timed(
    fns: list[Callable[[], object]], runs: int, *, interleave: bool, warmup: int = 3
) -> list[list[float]]:
    """Milliseconds per call of each of ``fns``, sorted: round-robin or one after another."""
    out: list[list[float]] = [[] for _ in fns]

    def once(i: int) -> None:
        t0 = time.perf_counter()
        fns[i]()
        out[i].append((time.perf_counter() - t0) * 1000)

    if interleave:
        for fn in fns:
            for _ in range(warmup):
                fn()
        for _ in range(runs):
            for i in range(len(fns)):
                once(i)
    else:  # each block warms up right before it (and waits out the last block's session)
        for i, fn in enumerate(fns):
            for _ in range(warmup):
                fn()
            for _ in range(runs):
                once(i)
    return [sorted(ms) for ms in out]


def _p99(sorted_ms: list[float]) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * 0.99))]


def delivery(args: argparse.Namespace) -> None:
    names = args.backends.split(",") if args.backends else list(PEERS)
    print(f"== NMI delivery on the real peer ({args.nmi_runs} runs per row) ==")
    print(f"{'backend':<9} {'path':<38} {'p50 ms':>8} {'p99 ms':>8} {'vs peer':>8}")
    for name in names:
        factory = PEERS.get(name)
        if factory is None:
            print(f"{name:<9} no peer registered (known: {', '.join(PEERS)})")
            continue
        try:
            with factory() as case, get_backend(case.backend) as backend:
                labels = [f"kdiag {case.backend} backend", case.peer_label]
                labels += [label for label, _ in case.extras]
                fns = [lambda b=backend, c=case: b.send_nmi(c.target), case.peer]
                fns += [fn for _, fn in case.extras]
                timings = _timed(fns, args.nmi_runs, interleave=case.interleave)
        except PeerUnavailable as exc:
            print(f"{name:<9} peer unavailable: {exc}")
            continue
        peer_p50 = statistics.median(timings[1])
        rows = list(zip(labels, timings, strict=True))
        for label, ms in rows:
            ratio = statistics.median(ms) / peer_p50
            print(
                f"{name:<9} {label:<38} {statistics.median(ms):8.2f} {_p99(ms):8.2f} {ratio:7.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("delivery", "use-case"), help="one section only")
    parser.add_argument("-n", type=int, default=2000, help="use case: requests per case")
    parser.add_argument("--pg", metavar="URL", help="use case: a PostgreSQL admin URL too")
    parser.add_argument("--nmi-runs", type=int, default=50, help="delivery: NMIs per row")
    parser.add_argument(
        "--backends", metavar="A,B", help=f"delivery: these peers only (known: {', '.join(PEERS)})"
    )
    args = parser.parse_args()
    if args.only in (None, "delivery"):
        delivery(args)
    if args.only in (None, "use-case"):
        use_case(args)


if __name__ == "__main__":
    main()
