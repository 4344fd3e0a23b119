"""``kdiag serve``: the EC2-compatible endpoint (and the /v1 JSON API) under uvicorn."""

from __future__ import annotations

import logging
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from kdiag.errors import ConfigError

if TYPE_CHECKING:
    from kdiag.store import Store

__all__ = ("register", "serve")


def serve(
    *,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; loopback unless you mean it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8787,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: $KDIAG_DB, else SQLite in the state dir)."
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="A region this endpoint serves (repeatable)."),
    ] = None,
    rate: Annotated[
        float, typer.Option("--rate", help="Requests per second allowed per principal.")
    ] = 50.0,
    burst: Annotated[int, typer.Option("--burst", help="Token-bucket size per principal.")] = 100,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes sharing the port (PostgreSQL to scale; SQLite serializes "
            "writes).",
        ),
    ] = 1,
    max_connections: Annotated[
        int,
        typer.Option("--max-connections", help="Connections served at once, per worker."),
    ] = 1000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Comma-separated proxy addresses whose X-Forwarded-For is trusted "
            "(the client address policies see); default: trust none.",
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn access log).")
    ] = False,
    reconcile_after: Annotated[
        float,
        typer.Option(
            "--reconcile-after",
            help="Seconds after which a 'pending' interrupt is marked 'unknown' (at start-up "
            "and every minute). Default 1800: longer than any request stays in flight on "
            "any replica. Lower it only when no other host serves this database.",
        ),
    ] = 1800.0,
) -> None:
    """Serve SendDiagnosticInterrupt and DescribeInstances (EC2 Query, SigV4) until stopped.

    Ctrl-C or SIGTERM stops it gracefully (requests in flight finish) with exit status 0.
    """
    # The service stack (uvicorn, SQLAlchemy, Starlette) costs ~1 s to import here; importing
    # it at the top would put that on every `kdiag --help`, which imports each command module.
    from kdiag.service.replicas import WorkersFailed, run_workers  # noqa: PLC0415 - see above
    from kdiag.service.server import bind_socket, is_loopback  # noqa: PLC0415 - see above
    from kdiag.store import Store  # noqa: PLC0415 - see above

    if not 0 < port < 65536:
        raise ConfigError(f"invalid port {port}")
    if rate <= 0 or burst < 1:
        raise ConfigError("--rate must be positive and --burst at least 1")
    if not 1 <= workers <= 64:
        raise ConfigError("--workers must be 1..64")
    if not 1 <= max_connections <= 100_000:
        raise ConfigError("--max-connections must be 1..100000")
    if not 0 <= reconcile_after <= 30 * 86400:
        raise ConfigError("--reconcile-after must be 0..2592000 seconds")
    _raise_fd_limit(max_connections)
    regions = tuple(region or ("us-east-1",))
    _configure_logging()
    # Migrate, reconcile and prune once, before any worker runs; no thread is left behind
    # (workers are forked).
    with Store.open(db) as store:
        try:
            sock = bind_socket(host, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        _reconcile(store, reconcile_after)
        store.prune_ledger(time.time())
        url = store.url
    if not is_loopback(host):
        sys.stderr.write(
            f"warning: listening on {host}, not loopback: anyone who can reach this address "
            "can try credentials against it; put TLS in front of it\n"
        )
    settings = _Settings(
        db, regions, rate, burst, max_connections, forwarded_allow_ips, access_log, reconcile_after
    )
    shown = f"[{host}]" if ":" in host else host
    many = f"  workers: {workers}" if workers > 1 else ""
    sys.stderr.write(
        f"kdiag serve: http://{shown}:{sock.getsockname()[1]}  regions: {', '.join(regions)}  "
        f"database: {url}{many}\n"
    )
    sys.stderr.flush()
    try:
        if workers == 1:
            stopped_by = _serve_on(sock, settings)
        else:
            stopped_by = run_workers(workers, lambda _index: _worker(sock, settings))
    except WorkersFailed as exc:
        raise ConfigError(f"kdiag serve: {exc}") from exc
    finally:
        sock.close()
    reason = f" ({stopped_by.name})" if stopped_by is not None else ""
    sys.stderr.write(f"kdiag serve: stopped{reason}\n")


@dataclass(frozen=True, slots=True)
class _Settings:
    db: str | None
    regions: tuple[str, ...]
    rate: float
    burst: int
    max_connections: int
    forwarded_allow_ips: str | None
    access_log: bool
    reconcile_after: float


def _serve_on(sock: socket.socket, settings: _Settings) -> signal.Signals | None:
    """Serve on ``sock`` in this process until SIGINT or SIGTERM; the signal."""
    import uvicorn  # noqa: PLC0415 - see serve()

    from kdiag.backends.base import BackendPool  # noqa: PLC0415 - see serve()
    from kdiag.service import ServiceContext, create_app  # noqa: PLC0415 - see serve()
    from kdiag.service.ratelimit import Throttle  # noqa: PLC0415 - see serve()
    from kdiag.service.server import run_foreground, uvicorn_config  # noqa: PLC0415
    from kdiag.service.sweep import PendingSweeper  # noqa: PLC0415 - see serve()
    from kdiag.store import Store  # noqa: PLC0415 - see serve()

    store = Store.open(settings.db, checkpoint_every=1.0)  # WAL checkpoints off requests
    ctx = ServiceContext(
        store,
        regions=settings.regions,
        throttle=Throttle(rate=settings.rate, burst=settings.burst),
        backends=BackendPool(),
    )
    server = uvicorn.Server(
        uvicorn_config(
            create_app(ctx),
            access_log=settings.access_log,
            # uvicorn's start/stop lines repeat the banner; its access log needs INFO
            log_level="info" if settings.access_log else "warning",
            forwarded_allow_ips=settings.forwarded_allow_ips,
            max_connections=settings.max_connections,
        )
    )
    sweeper = PendingSweeper(store, older_than=settings.reconcile_after).start()
    try:
        return run_foreground(server, sock)
    finally:
        sweeper.stop()
        ctx.close()
        store.close()


def _worker(sock: socket.socket, settings: _Settings) -> int:
    """One worker process of ``--workers N``: its exit status."""
    _serve_on(sock, settings)
    return 0


def _raise_fd_limit(max_connections: int) -> None:
    """Each connection is a file descriptor: make room for ``max_connections`` and the
    store's, or refuse to start."""
    needed = max_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise ConfigError(
                f"--max-connections {max_connections} needs {needed} file descriptors; "
                f"the limit is {hard} (ulimit -n)"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _reconcile(store: Store, older_than: float) -> None:
    """Rows a killed process left ``pending`` longer than ``older_than`` seconds become
    ``unknown``: said once on stderr.  Younger ones may be another replica's requests in
    flight; the serving processes' sweep takes them later."""
    ids = store.reconcile_pending(older_than=older_than)
    if ids:
        shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
        sys.stderr.write(
            f"kdiag serve: {len(ids)} interrupt(s) left pending by a previous run marked "
            f"'unknown' (delivery unconfirmed; audit rows {shown}); see `kdiag audit`\n"
        )


def _configure_logging() -> None:
    """kdiag's own records at INFO on stderr; libraries (Alembic, qemu.qmp, ...) only from
    WARNING up, so that start-up is the one banner line and not a page of migration chatter.
    uvicorn configures its own loggers (``--access-log``)."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("kdiag").setLevel(logging.INFO)


def register(app: typer.Typer) -> None:
    app.command("serve", short_help="Run the EC2-compatible endpoint.")(serve)
