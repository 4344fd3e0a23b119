"""The service never shows a target's secret: the fake backend requires a credentials
reference and reads it at delivery time; no answer (/v1 and EC2 faces), audit row or log
line holds the secret, and a group-readable file fails the delivery without quoting it."""

from __future__ import annotations

import json
import logging
import time

import botocore.exceptions
import pytest

from kdiag.backends.fake import FakeBackend
from kdiag.errors import ConfigError
from tests.service.conftest import allow, run_service, signed_call
from tests.store.test_target_secrets import SECRET, SECRET_TARGETS


@pytest.fixture
def service(tmp_path):
    with run_service(tmp_path) as svc:
        svc.ctx.backends._backends["fake"] = svc.backend = FakeBackend(require_credentials=True)
        yield svc


def test_delivery_reads_the_reference_and_nothing_shows_the_secret(service, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    for target in SECRET_TARGETS:  # the service's store refuses them like any other
        with pytest.raises(ConfigError) as caught:
            service.store.add_instance(backend="fake", target=target)
        assert SECRET not in str(caught.value)
    cred = tmp_path / "bmc.cred"
    cred.write_text(f"username=admin\npassword={SECRET}\n")
    cred.chmod(0o600)
    inst = service.store.add_instance(backend="fake", target={"credentials": f"file:{cred}"})
    creds = service.user("ops", allow(action="ec2:*"), allow(action="cloudtrail:*"))
    ec2 = service.client(creds)

    ec2.send_diagnostic_interrupt(InstanceId=inst.id)
    used = [c.credentials for c in service.backend.calls if c.verb == "send_nmi"]
    assert [(c.username, c.password) for c in used if c] == [("admin", SECRET)]

    cred.chmod(0o644)  # now readable by others: refused at delivery
    time.sleep(1.1)  # a new X-Amz-Date: the same signature twice is a replay
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ec2.send_diagnostic_interrupt(InstanceId=inst.id)
    failed = caught.value.response
    assert SECRET not in json.dumps(failed, default=str)
    assert len(service.backend.sent) == 1
    rows = service.store.audit_rows(instance_id=inst.id)
    # botocore retries the 503 (BackendUnavailable is retryable); a retry signed in a new
    # second is a new request, not a replay, and is refused the same way.
    assert rows[0].outcome == "sent"
    assert len(rows) >= 2
    assert {r.outcome for r in rows[1:]} == {"failed"}
    assert all("mode 0644" in (r.message or "") for r in rows[1:])

    described = ec2.describe_instances(InstanceIds=[inst.id])
    listed = signed_call(service, creds, "GET", f"/v1/instances?id={inst.id}")
    audit = signed_call(service, creds, "GET", "/v1/audit?limit=1000")
    assert listed.status_code == 200
    assert audit.status_code == 200
    assert inst.id in listed.text
    assert "mode 0644" in audit.text
    shown = [json.dumps(described, default=str), listed.text, audit.text, caplog.text]
    shown += [json.dumps(r.to_json()) for r in service.store.audit_rows()]
    for text in shown:
        assert SECRET not in text
