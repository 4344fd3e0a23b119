"""A hostile JSON body on the ``/v1`` API is a 400 InvalidParameterValue, not a 500: Python's
JSON parser recurses, and 32,000 nested brackets fit in the 64 KiB body limit."""

from __future__ import annotations

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.service.conftest import REGION, allow, run_service


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with run_service(tmp_path_factory.mktemp("hostile-json")) as svc:
        yield svc


@pytest.fixture(scope="module")
def creds(service):
    return service.user("hostile", allow())


@pytest.mark.parametrize(
    "body",
    [b"[" * 32_000 + b"]" * 32_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000],
    ids=["arrays", "objects"],
)
def test_deeply_nested_body_is_invalid_parameter_value(service, creds, body):
    instance = service.store.add_instance(backend="fake", target={})
    url = f"{service.url}/v1/instances/{instance.id}/diagnostic-interrupt"
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION).add_auth(request)
    response = httpx.post(url, content=body, headers=dict(request.headers.items()))
    assert response.status_code == 400, response.text
    assert response.json()["Error"]["Code"] == "InvalidParameterValue"
    assert service.backend.sent == []
