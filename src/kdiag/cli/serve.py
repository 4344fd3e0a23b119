"""``kdiag serve``: the EC2-compatible endpoint (and the /v1 JSON API) under uvicorn."""

from __future__ import annotations

import logging
import sys
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
) -> None:
    """Serve SendDiagnosticInterrupt and DescribeInstances (EC2 Query, SigV4) until stopped.

    Ctrl-C or SIGTERM stops it gracefully (requests in flight finish) with exit status 0.
    """
    # The service stack (uvicorn, SQLAlchemy, Starlette) costs ~1 s to import here; importing
    # it at the top would put that on every `kdiag --help`, which imports each command module.
    import uvicorn  # noqa: PLC0415 - see above

    from kdiag.backends.base import BackendPool  # noqa: PLC0415 - see above
    from kdiag.service import ServiceContext, create_app  # noqa: PLC0415 - see above
    from kdiag.service.ratelimit import Throttle  # noqa: PLC0415 - see above
    from kdiag.service.server import (  # noqa: PLC0415 - see above
        bind_socket,
        is_loopback,
        run_foreground,
        uvicorn_config,
    )
    from kdiag.store import Store  # noqa: PLC0415 - see above

    if not 0 < port < 65536:
        raise ConfigError(f"invalid port {port}")
    if rate <= 0 or burst < 1:
        raise ConfigError("--rate must be positive and --burst at least 1")
    regions = tuple(region or ("us-east-1",))
    _configure_logging()
    store = Store.open(db, checkpoint_every=1.0)  # WAL checkpoints off the request path
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        store.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    _reconcile(store)
    if not is_loopback(host):
        sys.stderr.write(
            f"warning: listening on {host}, not loopback: anyone who can reach this address "
            "can try credentials against it; put TLS in front of it\n"
        )
    ctx = ServiceContext(
        store,
        regions=regions,
        throttle=Throttle(rate=rate, burst=burst),
        backends=BackendPool(),
    )
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(
        f"kdiag serve: http://{shown}:{sock.getsockname()[1]}  regions: {', '.join(regions)}  "
        f"database: {store.url}\n"
    )
    sys.stderr.flush()
    server = uvicorn.Server(
        uvicorn_config(
            create_app(ctx),
            access_log=access_log,
            # uvicorn's start/stop lines repeat the banner; its access log needs INFO
            log_level="info" if access_log else "warning",
            forwarded_allow_ips=forwarded_allow_ips,
        )
    )
    try:
        stopped_by = run_foreground(server, sock)
    finally:
        sock.close()
        ctx.close()
        store.close()
    reason = f" ({stopped_by.name})" if stopped_by is not None else ""
    sys.stderr.write(f"kdiag serve: stopped{reason}\n")


def _reconcile(store: Store) -> None:
    """Rows a killed predecessor left ``pending`` become ``unknown``: said once on stderr."""
    ids = store.reconcile_pending()
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
