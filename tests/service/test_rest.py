"""The /v1 JSON API and the presigned query form, with SigV4 from real botocore."""

import httpx
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .conftest import REGION, allow, signed_call


@pytest.fixture(scope="module")
def world(service):
    account = service.store.default_account().id
    box = service.store.add_instance(
        backend="fake", target={"address": "/secret/path.sock"}, tags={"Env": "lab"}
    )
    arn = f"arn:aws:ec2:{REGION}:{account}:instance/"
    judy = service.user(
        "judy",
        allow(resource=arn + box.id),
        allow(action=["ec2:DescribeInstances", "cloudtrail:LookupEvents"]),
    )
    mallory = service.user("mallory", allow(action="ec2:DescribeInstances"))
    return {"box": box, "judy": judy, "mallory": mallory}


def test_openapi_document_is_served_without_auth(service):
    response = httpx.get(service.url + "/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert "/v1/instances/{instance_id}/diagnostic-interrupt" in doc["paths"]


def test_openapi_document_names_every_error_code(service):
    from kdiag.service.errors import STATUS

    doc = httpx.get(service.url + "/v1/openapi.json").json()
    operation = doc["paths"]["/v1/instances/{instance_id}/diagnostic-interrupt"]["post"]
    described = {
        status: response["description"] for status, response in operation["responses"].items()
    }
    for code, status in STATUS.items():
        assert f"{code} (" in described[str(status)], code


def test_list_instances_hides_backend_settings(service, world):
    response = signed_call(service, world["judy"], "GET", "/v1/instances?filter=tag:Env=lab")
    assert response.status_code == 200, response.text
    instances = response.json()["Instances"]
    assert [i["InstanceId"] for i in instances] == [world["box"].id]
    assert "secret" not in response.text
    assert instances[0]["Tags"] == {"Env": "lab"}


def test_interrupt_dry_run_then_real(service, world):
    path = f"/v1/instances/{world['box'].id}/diagnostic-interrupt"
    dry = signed_call(service, world["judy"], "POST", path, {"DryRun": True})
    assert dry.status_code == 412
    assert dry.json()["Error"]["Code"] == "DryRunOperation"
    before = len(service.backend.sent)
    real = signed_call(service, world["judy"], "POST", path, {})
    assert real.status_code == 200, real.text
    assert real.json()["Return"] is True
    assert service.backend.sent[before:] == [world["box"].id]
    assert service.audit(real.json()["RequestId"]).outcome == "sent"


def test_interrupt_denied(service, world):
    path = f"/v1/instances/{world['box'].id}/diagnostic-interrupt"
    response = signed_call(service, world["mallory"], "POST", path, {})
    assert response.status_code == 403
    body = response.json()
    assert body["Error"]["Code"] == "UnauthorizedOperation"
    assert service.audit(body["RequestId"]).outcome == "denied"


def test_audit_log(service, world):
    response = signed_call(service, world["judy"], "GET", "/v1/audit?limit=1000")
    assert response.status_code == 200, response.text
    events = response.json()["Events"]
    assert any(e["outcome"] == "sent" and e["instance_id"] == world["box"].id for e in events)
    denied = signed_call(service, world["mallory"], "GET", "/v1/audit")
    assert denied.status_code == 403


def test_rest_needs_a_signature(service):
    response = httpx.get(service.url + "/v1/instances")
    assert response.status_code == 403
    assert response.json()["Error"]["Code"] == "MissingAuthenticationToken"


def test_bad_json(service, world):
    path = f"/v1/instances/{world['box'].id}/diagnostic-interrupt"
    data = b"{not json"
    request = AWSRequest(method="POST", url=service.url + path, data=data)
    SigV4Auth(Credentials(world["judy"].key_id, world["judy"].secret), "ec2", REGION).add_auth(
        request
    )
    response = httpx.post(request.url, content=data, headers=dict(request.headers.items()))
    assert response.status_code == 400
    assert response.json()["Error"]["Code"] == "InvalidParameterValue"


def test_presigned_query_on_the_ec2_endpoint(service, world):
    url = (
        f"{service.url}/?Action=DescribeInstances&Version=2016-11-15&InstanceId.1={world['box'].id}"
    )
    request = AWSRequest(method="GET", url=url)
    creds = Credentials(world["judy"].key_id, world["judy"].secret)
    SigV4QueryAuth(creds, "ec2", REGION, expires=60).add_auth(request)
    response = httpx.get(request.url)
    assert response.status_code == 200, response.text
    assert f"<instanceId>{world['box'].id}</instanceId>" in response.text
    again = httpx.get(request.url)  # once: the repeat is answered from the ledger
    assert (again.status_code, again.content) == (200, response.content)
    assert service.audit(again.headers["x-amzn-requestid"]).outcome == "replayed"


def test_unknown_path_and_method_are_audited(service):
    for method, path, status in [
        ("GET", "/v1/nothing", 404),
        ("GET", "/nothing", 404),
        ("PUT", "/", 405),
        ("DELETE", "/v1/instances", 405),
    ]:
        response = httpx.request(method, service.url + path)
        assert response.status_code == status
        (row,) = service.store.audit_rows(request_id=response.headers["x-amzn-requestid"])
        assert row.action == f"{method} {path}"
        assert row.outcome == "rejected"
        assert row.source_ip == "127.0.0.1"
