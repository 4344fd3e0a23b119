"""RequestLimitExceeded: the per-principal token bucket, seen through boto3."""

import botocore.exceptions
import pytest

from .conftest import allow, run_service


class Clock:
    """The token buckets' clock, moved by the tests (time stands still otherwise)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory, clock):
    with run_service(
        tmp_path_factory.mktemp("throttle"), rate=0.01, burst=3, limiter_clock=clock
    ) as svc:
        yield svc


def test_throttling_is_per_principal_and_audited(slow_service):
    svc = slow_service
    # Distinct instances: identical requests signed in the same second share a signature,
    # and a signature is accepted once.
    instances = [svc.store.add_instance(backend="fake", target={}) for _ in range(5)]
    frank = svc.user("frank", allow())
    grace = svc.user("grace", allow())
    ec2 = svc.client(frank)
    for instance in instances[:3]:
        ec2.send_diagnostic_interrupt(InstanceId=instance.id)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2.send_diagnostic_interrupt(InstanceId=instances[3].id)
    error = info.value.response
    assert error["Error"]["Code"] == "RequestLimitExceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert svc.backend.sent == [i.id for i in instances[:3]]
    row = svc.audit(error["ResponseMetadata"]["RequestId"])
    assert (row.outcome, row.error_code) == ("rejected", "RequestLimitExceeded")
    assert row.principal.endswith(":user/frank")
    # Another principal has its own bucket.
    svc.client(grace).send_diagnostic_interrupt(InstanceId=instances[4].id)
    assert svc.backend.sent[-1] == instances[4].id


def test_a_throttled_signature_is_not_consumed(slow_service, clock):
    """The throttled request did nothing: the same signed bytes are accepted once the bucket
    refills."""
    import httpx

    svc = slow_service
    instance = svc.store.add_instance(backend="fake", target={})
    ivan = svc.user("ivan", allow())
    ec2 = svc.client(ivan)
    sent = []
    ec2.meta.events.register(
        "before-send.ec2.SendDiagnosticInterrupt",
        lambda request, **kw: sent.append((request.url, dict(request.headers), request.body)),
    )
    arn = svc.store.get_user("ivan").arn
    for n in range(3):  # drain the bucket (it is in the database)
        assert svc.store.take_token(svc.ctx.throttle.bucket(arn), f"drain-{n}")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2.send_diagnostic_interrupt(InstanceId=instance.id, DryRun=True)
    assert info.value.response["Error"]["Code"] == "RequestLimitExceeded"
    url, headers, body = sent[-1]
    clock.now += 100.0  # at 0.01 tokens a second: one token more
    again = httpx.post(url, content=body, headers=headers)
    assert again.status_code == 412, again.text  # DryRunOperation: accepted this time
    clock.now += 100.0  # a token for the replay, so that only the signature can stop it
    replay = httpx.post(url, content=body, headers=headers)
    # ...and only once: the repeat gets the recorded answer, byte for byte
    assert (replay.status_code, replay.content) == (412, again.content)
    row = svc.audit(replay.headers["x-amzn-requestid"])
    assert row.outcome == "replayed"
