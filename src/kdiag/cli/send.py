"""``kdiag send``: SendDiagnosticInterrupt through the API, like any other client.

Credentials come from the usual AWS chain (environment, ``--profile``, config files).  Like
the aws CLI, nothing is printed on success; ``--verbose`` says what happened.  Exit codes:
0 sent (or, with ``--dry-run``, would have been sent), 2 bad instance id or parameter,
3 not authenticated or not authorized, 4 the instance or its hypervisor refused,
1 anything else (throttled, service unreachable, internal error).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Annotated, Any

import typer

from kdiag.errors import AuthFailure, ConfigError, KdiagError

__all__ = ("DEFAULT_ENDPOINT", "register", "remote_error", "send")

DEFAULT_ENDPOINT = "http://127.0.0.1:8787"


def remote_error(code: str, message: str) -> KdiagError:
    """The kdiag error for an EC2 error code the service answered with: the class of the
    tree that carries that code (its exit code follows), else a plain KdiagError showing
    the service's code."""
    answered = {cls.code: cls for cls in KdiagError.tree() if cls.http_status is not None}
    known = answered.get(code)
    if known is not None:
        return known(message)
    error = KdiagError(message)
    error.code = code
    return error


def _nonce(request: Any, **_: Any) -> None:
    # Sign a unique header: two identical sends in the same second must not share a
    # signature, because the service accepts each signature once.
    request.headers["X-Kdiag-Nonce"] = str(uuid.uuid4())


def send(
    instance_id: Annotated[
        str, typer.Argument(metavar="INSTANCE_ID", help="The instance to interrupt (i-...).")
    ],
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check permission only; send nothing.")
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help=f"Service URL (default: $KDIAG_ENDPOINT, else {DEFAULT_ENDPOINT}).",
        ),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", metavar="REGION", help="Region to sign for.")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="NAME", help="AWS profile to take credentials from."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say what happened.")] = False,
) -> None:
    """Send a diagnostic interrupt (NMI) to INSTANCE_ID through the kdiag service."""
    # A malformed id is a usage error here, before credentials are looked for or a request
    # is signed (the service would answer the same InvalidInstanceID.Malformed).
    from kdiag.store.ids import check_instance_id  # noqa: PLC0415 - loads the store: send only

    check_instance_id(instance_id)
    # botocore costs ~0.3 s to import: only `kdiag send` itself pays it, not `kdiag --help`.
    import botocore.exceptions  # noqa: PLC0415 - see above
    import botocore.session  # noqa: PLC0415 - see above
    from botocore.config import Config  # noqa: PLC0415 - see above

    url = endpoint or os.environ.get("KDIAG_ENDPOINT") or DEFAULT_ENDPOINT
    try:
        session = botocore.session.Session(profile=profile)
        signing_region = region or session.get_config_variable("region") or "us-east-1"
        client = session.create_client(
            "ec2",
            region_name=signing_region,
            endpoint_url=url,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5),
        )
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(str(exc)) from exc
    except ValueError as exc:
        raise ConfigError(f"invalid endpoint {url!r}: {exc}") from exc
    client.meta.events.register("before-sign.ec2.SendDiagnosticInterrupt", _nonce)
    try:
        response = client.send_diagnostic_interrupt(InstanceId=instance_id, DryRun=dry_run)
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        request_id = exc.response.get("ResponseMetadata", {}).get("RequestId", "")
        if dry_run and code == "DryRunOperation":
            if verbose:
                sys.stderr.write(
                    f"dry run: sending a diagnostic interrupt to {instance_id} would have "
                    f"succeeded (request {request_id})\n"
                )
            return
        raise remote_error(code, str(err.get("Message", code))) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise AuthFailure(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile"
        ) from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise KdiagError(f"cannot reach the kdiag service at {url}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise KdiagError(f"request to {url} failed: {exc}") from exc
    if verbose:
        request_id = response.get("ResponseMetadata", {}).get("RequestId", "")
        sys.stderr.write(
            f"sent: the hypervisor accepted a diagnostic interrupt for {instance_id} "
            f"(request {request_id}); that is not yet proof of a panic or a dump\n"
        )


def register(app: typer.Typer) -> None:
    app.command("send", short_help="Send an NMI to an instance through the API.")(send)
