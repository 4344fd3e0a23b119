"""The use case alone, without HTTP: send_diagnostic_interrupt latency and throughput.

Measures authorize + intent + delivery + outcome (policy evaluation, four store round
trips, the backend) on SQLite and, when a URL is given, PostgreSQL, with the fake backend
and with QMP against a real QEMU (``-M pc``, TCG, no guest).

    .venv/bin/python bench/interrupts.py [-n 2000] [--pg URL]
    bash scripts/pg-throwaway.sh sh -c \
        '.venv/bin/python bench/interrupts.py --pg "$KDIAG_TEST_PG_URL"'
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine

from kdiag.backends import BackendPool
from kdiag.backends.fake import FakeBackend
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per case")
    parser.add_argument("--pg", metavar="URL", help="an admin URL of a PostgreSQL to use too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import os

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


if __name__ == "__main__":
    main()
