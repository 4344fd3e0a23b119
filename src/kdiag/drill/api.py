"""The drill's send: ``SendDiagnosticInterrupt`` over HTTP, SigV4-signed with the drill
user's key, exactly what ``aws ec2 send-diagnostic-interrupt`` does (botocore, one attempt:
the service's answer, whatever it is, is the evidence)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from kdiag.drill.identity import DrillCredentials

__all__ = ("SendOutcome", "send_nmi")


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """``ok`` when the service answered ``<return>true</return>``; else the EC2 error."""

    ok: bool
    request_id: str = ""
    error_code: str | None = None
    message: str | None = None


def _nonce(request: Any, **_: Any) -> None:
    # two drills in the same second must not share a signature (each is accepted once)
    request.headers["X-Kdiag-Nonce"] = str(uuid.uuid4())


def send_nmi(
    endpoint: str, region: str, instance_id: str, creds: DrillCredentials, *, timeout: float = 30
) -> SendOutcome:
    """One SendDiagnosticInterrupt call; never raises for what the service answers."""
    import botocore.exceptions  # noqa: PLC0415 - botocore costs ~0.3 s: the send step only
    import botocore.session  # noqa: PLC0415 - see above
    from botocore.config import Config  # noqa: PLC0415 - see above

    session = botocore.session.Session()
    session.set_config_variable("config_file", "/dev/null")
    session.set_config_variable("credentials_file", "/dev/null")
    try:
        client = session.create_client(
            "ec2",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=timeout,
            ),
        )
    except ValueError as exc:
        return SendOutcome(False, "", "InvalidParameterValue", f"bad endpoint {endpoint!r}: {exc}")
    client.meta.events.register("before-sign.ec2.SendDiagnosticInterrupt", _nonce)
    try:
        response = client.send_diagnostic_interrupt(InstanceId=instance_id)
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        request_id = str(exc.response.get("ResponseMetadata", {}).get("RequestId", ""))
        code = str(err.get("Code", "Unknown"))
        return SendOutcome(False, request_id, code, str(err.get("Message", code)))
    except botocore.exceptions.EndpointConnectionError:
        return SendOutcome(False, "", "ServiceUnreachable", f"cannot reach {endpoint}")
    except botocore.exceptions.BotoCoreError as exc:
        return SendOutcome(False, "", "RequestFailed", f"request to {endpoint} failed: {exc}")
    request_id = str(response.get("ResponseMetadata", {}).get("RequestId", ""))
    return SendOutcome(True, request_id)
