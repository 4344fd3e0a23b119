"""Black box: real boto3 against the real app, store, policy engine and fake backend."""

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .conftest import REGION, allow, deny


def _error(exc_info):
    err = exc_info.value.response["Error"]
    return err["Code"], exc_info.value.response["ResponseMetadata"]


@pytest.fixture(scope="module")
def world(service):
    account = service.store.default_account().id
    running = service.store.add_instance(
        backend="fake", target={}, tags={"Owner": "alice", "Team": "kernel"}
    )
    other = service.store.add_instance(backend="fake", target={}, tags={"Owner": "bob"})
    stopped = service.store.add_instance(
        backend="fake", target={}, state="stopped", tags={"Owner": "alice"}
    )
    arm = service.store.add_instance(
        backend="fake", target={}, arch="arm64", tags={"Owner": "alice"}
    )
    arn = f"arn:aws:ec2:{REGION}:{account}:instance/"
    alice = service.user(
        "alice",
        allow(
            resource=[arn + running.id, arn + stopped.id, arn + arm.id, arn + "i-00000000000000000"]
        ),
        allow(action="ec2:DescribeInstances"),
    )
    carol = service.user("carol", allow(resource=arn + "*"), deny(resource=arn + running.id))
    nobody = service.user("nobody")
    return {
        "running": running,
        "other": other,
        "stopped": stopped,
        "arm": arm,
        "alice": alice,
        "carol": carol,
        "nobody": nobody,
        "arn": arn,
    }


def test_allowed_sends_one_nmi(service, world):
    before = len(service.backend.sent)
    response = service.client(world["alice"]).send_diagnostic_interrupt(
        InstanceId=world["running"].id
    )
    meta = response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200
    assert service.backend.sent[before:] == [world["running"].id]
    row = service.audit(meta["RequestId"])
    assert row.outcome == "sent"
    assert row.decision == "allow"
    assert row.principal.endswith(":user/alice")
    assert row.source_ip == "127.0.0.1"
    assert row.instance_id == world["running"].id
    assert row.latency_ms is not None


def test_denied_by_resource(service, world):
    before = len(service.backend.sent)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(InstanceId=world["other"].id)
    code, meta = _error(info)
    assert code == "UnauthorizedOperation"
    assert meta["HTTPStatusCode"] == 403
    assert len(service.backend.sent) == before
    row = service.audit(meta["RequestId"])
    assert (row.outcome, row.decision, row.error_code) == (
        "denied",
        "deny",
        "UnauthorizedOperation",
    )


def test_denied_by_explicit_deny(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["carol"]).send_diagnostic_interrupt(InstanceId=world["running"].id)
    code, meta = _error(info)
    assert code == "UnauthorizedOperation"
    assert service.audit(meta["RequestId"]).decision == "deny"
    # ...while the same user may interrupt another instance.
    service.client(world["carol"]).send_diagnostic_interrupt(InstanceId=world["other"].id)


def test_no_policy_is_implicit_deny(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["nobody"]).send_diagnostic_interrupt(InstanceId=world["running"].id)
    assert _error(info)[0] == "UnauthorizedOperation"


def test_dry_run_allowed(service, world):
    before = len(service.backend.sent)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(
            InstanceId=world["running"].id, DryRun=True
        )
    code, meta = _error(info)
    assert code == "DryRunOperation"
    assert meta["HTTPStatusCode"] == 412
    assert len(service.backend.sent) == before
    row = service.audit(meta["RequestId"])
    assert row.outcome == "dry-run"
    assert row.dry_run


def test_dry_run_denied(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(
            InstanceId=world["other"].id, DryRun=True
        )
    code, meta = _error(info)
    assert code == "UnauthorizedOperation"
    assert service.audit(meta["RequestId"]).outcome == "denied"


@pytest.mark.parametrize("bad_id", ["bogus", "i-123", "i-0123456789ABCDEF0", "i-" + "0" * 18])
def test_malformed_id(service, world, bad_id):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(InstanceId=bad_id)
    code, meta = _error(info)
    assert code == "InvalidInstanceID.Malformed"
    assert meta["HTTPStatusCode"] == 400
    assert service.audit(meta["RequestId"]).error_code == "InvalidInstanceID.Malformed"


def test_unknown_id_after_authorization(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(InstanceId="i-00000000000000000")
    code, meta = _error(info)
    assert code == "InvalidInstanceID.NotFound"
    assert service.audit(meta["RequestId"]).outcome == "rejected"
    # Not authorized for that ARN: "not found" is not revealed.
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(InstanceId="i-00000000000000001")
    assert _error(info)[0] == "UnauthorizedOperation"


def test_stopped_instance(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(InstanceId=world["stopped"].id)
    code, meta = _error(info)
    assert code == "IncorrectInstanceState"
    assert service.audit(meta["RequestId"]).error_code == "IncorrectInstanceState"


def test_arm64_instance(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).send_diagnostic_interrupt(InstanceId=world["arm"].id)
    code, meta = _error(info)
    assert code == "UnsupportedOperation"
    assert service.audit(meta["RequestId"]).error_code == "UnsupportedOperation"


def test_bad_signature(service, world):
    creds = world["alice"]
    forged = type(creds)(creds.name, creds.key_id, creds.secret[::-1])
    before = len(service.backend.sent)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(forged).send_diagnostic_interrupt(InstanceId=world["running"].id)
    code, meta = _error(info)
    assert code == "AuthFailure"
    assert meta["HTTPStatusCode"] == 401
    assert len(service.backend.sent) == before
    row = service.audit(meta["RequestId"])
    assert (row.outcome, row.error_code, row.principal) == ("rejected", "AuthFailure", None)
    assert row.action == "SendDiagnosticInterrupt"


def test_unknown_access_key(service, world):
    creds = world["alice"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(type(creds)("x", "AKIAUNKNOWNUNKNOWN00", creds.secret)).describe_instances()
    assert _error(info)[0] == "AuthFailure"


def test_region_not_served(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"], region="ap-south-1").describe_instances()
    assert _error(info)[0] == "AuthFailure"


def _signed_request(service, creds, body, *, when=None):
    request = AWSRequest(
        method="POST",
        url=service.url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    auth = SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION)
    if when is None:
        auth.add_auth(request)
    else:
        from unittest import mock

        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(request)
    return request


def _post(service, request):
    import httpx

    headers = {k: v for k, v in request.headers.items()}
    return httpx.post(request.url, content=request.body, headers=headers)


def test_expired_request(service, world):
    import datetime as dt

    body = f"Action=SendDiagnosticInterrupt&InstanceId={world['running'].id}&Version=2016-11-15"
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    before = len(service.backend.sent)
    response = _post(service, _signed_request(service, world["alice"], body, when=old))
    assert response.status_code == 400
    assert "<Code>RequestExpired</Code>" in response.text
    assert len(service.backend.sent) == before
    row = service.audit(response.headers["x-amzn-requestid"])
    assert row.error_code == "RequestExpired"


def test_replay_is_rejected(service, world):
    body = f"Action=SendDiagnosticInterrupt&InstanceId={world['running'].id}&Version=2016-11-15"
    request = _signed_request(service, world["alice"], body)
    before = len(service.backend.sent)
    first = _post(service, request)
    assert first.status_code == 200, first.text
    assert "<return>true</return>" in first.text
    second = _post(service, request)
    # the first answer again (its request id inside), and no second NMI
    assert (second.status_code, second.content) == (200, first.content)
    assert len(service.backend.sent) == before + 1
    row = service.audit(second.headers["x-amzn-requestid"])
    assert (row.outcome, row.error_code) == ("replayed", None)
    assert first.headers["x-amzn-requestid"] in row.message


def test_tampered_body(service, world):
    body = f"Action=SendDiagnosticInterrupt&InstanceId={world['running'].id}&Version=2016-11-15"
    request = _signed_request(service, world["alice"], body)
    headers = {k: v for k, v in request.headers.items()}
    import httpx

    response = httpx.post(
        request.url, content=body.replace(world["running"].id, world["other"].id), headers=headers
    )
    assert response.status_code == 401


def test_missing_signature_is_audited(service, world):
    import httpx

    response = httpx.post(service.url + "/", data={"Action": "SendDiagnosticInterrupt"})
    assert response.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in response.text
    row = service.audit(response.headers["x-amzn-requestid"])
    assert row.error_code == "MissingAuthenticationToken"
    assert row.source_ip == "127.0.0.1"


def test_missing_instance_id(service, world):
    body = "Action=SendDiagnosticInterrupt&Version=2016-11-15"
    response = _post(service, _signed_request(service, world["alice"], body))
    assert response.status_code == 400
    assert "<Code>MissingParameter</Code>" in response.text


def test_unknown_action(service, world):
    body = "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-00000000000000000"
    response = _post(service, _signed_request(service, world["alice"], body))
    assert response.status_code == 400
    assert "<Code>InvalidAction</Code>" in response.text
    assert service.audit(response.headers["x-amzn-requestid"]).action == "TerminateInstances"


def test_describe_instances_lists_the_inventory(service, world):
    ec2 = service.client(world["alice"])
    reservations = ec2.describe_instances()["Reservations"]
    found = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
    assert world["running"].id in found
    assert found[world["running"].id]["State"] == {"Code": 16, "Name": "running"}
    assert found[world["stopped"].id]["State"]["Name"] == "stopped"
    assert found[world["arm"].id]["Architecture"] == "arm64"
    tags = {t["Key"]: t["Value"] for t in found[world["running"].id]["Tags"]}
    assert tags == {"Owner": "alice", "Team": "kernel"}


def test_describe_instances_filters(service, world):
    ec2 = service.client(world["alice"])

    def ids(**kw):
        return {
            i["InstanceId"]
            for r in ec2.describe_instances(**kw)["Reservations"]
            for i in r["Instances"]
        }

    assert ids(Filters=[{"Name": "tag:Owner", "Values": ["bob"]}]) == {world["other"].id}
    assert ids(
        Filters=[
            {"Name": "tag:Owner", "Values": ["alice"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    ) == {world["running"].id, world["arm"].id}
    assert ids(Filters=[{"Name": "tag-key", "Values": ["Team"]}]) == {world["running"].id}
    assert ids(Filters=[{"Name": "tag:Owner", "Values": ["b*"]}]) == {world["other"].id}
    assert ids(InstanceIds=[world["stopped"].id]) == {world["stopped"].id}
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2.describe_instances(InstanceIds=["i-00000000000000009"])
    assert _error(info)[0] == "InvalidInstanceID.NotFound"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2.describe_instances(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert _error(info)[0] == "InvalidParameterValue"


def test_describe_instances_is_authorized(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["nobody"]).describe_instances()
    code, meta = _error(info)
    assert code == "UnauthorizedOperation"
    assert service.audit(meta["RequestId"]).action == "DescribeInstances"


def test_describe_instances_dry_run(service, world):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(world["alice"]).describe_instances(DryRun=True)
    assert _error(info)[0] == "DryRunOperation"


def test_inactive_key(service, world):
    user = service.store.create_user("retired")
    key, secret = service.store.create_access_key(user)
    service.store.set_access_key_status(key.id, "Inactive")
    creds = type(world["alice"])("retired", key.id, secret)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        service.client(creds).describe_instances()
    assert _error(info)[0] == "AuthFailure"


def test_region_scoping(service, world):
    """The signing region is the request's region: instances of another region are not
    listed, and their ARN in this region is what the policy sees."""
    eu = service.client(world["alice"], region="eu-west-1")
    assert eu.describe_instances()["Reservations"] == []
    with pytest.raises(botocore.exceptions.ClientError) as info:
        eu.send_diagnostic_interrupt(InstanceId=world["running"].id)
    code, meta = _error(info)
    assert code == "UnauthorizedOperation"
    assert service.audit(meta["RequestId"]).region == "eu-west-1"


def test_forwarded_for_is_not_trusted(service, world):
    """aws:SourceIp is the peer address: X-Forwarded-For from a client is ignored."""
    body = "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag-key&Filter.1.Value.1=xff"
    request = _signed_request(service, world["alice"], body)
    import httpx

    headers = {**dict(request.headers.items()), "X-Forwarded-For": "203.0.113.9"}
    response = httpx.post(request.url, content=request.body, headers=headers)
    assert response.status_code == 200, response.text
    assert service.audit(response.headers["x-amzn-requestid"]).source_ip == "127.0.0.1"
