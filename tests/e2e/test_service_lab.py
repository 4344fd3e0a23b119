"""End to end: boto3 SendDiagnosticInterrupt → kdiag serve → QMP inject-nmi → a real guest
panics → kdump writes a vmcore.  The policy is the resource-level one AWS documents for
this action, verbatim with real values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

pytestmark = pytest.mark.e2e

BOOT = 300.0
DUMP = 300.0
REGION = "us-east-1"


@pytest.fixture
def aws_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("aws_isolated")
def test_boto3_send_diagnostic_interrupt_produces_a_vmcore(lab_root: Path, tmp_path: Path) -> None:
    from kdiag.backends.base import BackendPool
    from kdiag.lab import Lab
    from kdiag.service import ServiceContext, create_app
    from kdiag.service.server import ServerThread
    from kdiag.store import Store

    guest = Lab(lab_root).up(name="svc-e2e", profile="default", memory="512M", cpus=2)
    guest.wait_ready(BOOT)

    with Store.open(f"sqlite:///{tmp_path}/kdiag.db", key_file=tmp_path / "kdiag.key") as store:
        account = store.default_account().id
        instance = store.add_instance(
            backend="qmp", target={"address": str(guest.qmp_socket)}, tags={"lab": "e2e"}
        )
        documented = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "ec2:SendDiagnosticInterrupt",
                    "Resource": f"arn:aws:ec2:{REGION}:{account}:instance/{instance.id}",
                }
            ],
        }
        oncall = store.create_user("oncall")
        store.put_user_policy(oncall, "nmi", json.dumps(documented))
        key, secret = store.create_access_key(oncall)
        intern = store.create_user("intern")
        intern_key, intern_secret = store.create_access_key(intern)

        ctx = ServiceContext(store, regions=(REGION,), backends=BackendPool())
        with ServerThread(create_app(ctx)) as server:

            def ec2(key_id: str, secret_key: str) -> object:
                return boto3.session.Session().client(
                    "ec2",
                    endpoint_url=server.url,
                    region_name=REGION,
                    aws_access_key_id=key_id,
                    aws_secret_access_key=secret_key,
                    config=Config(retries={"max_attempts": 1}),
                )

            with pytest.raises(botocore.exceptions.ClientError) as denied:
                ec2(intern_key.id, intern_secret).send_diagnostic_interrupt(InstanceId=instance.id)
            assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"

            client = ec2(key.id, secret)
            with pytest.raises(botocore.exceptions.ClientError) as dry:
                client.send_diagnostic_interrupt(InstanceId=instance.id, DryRun=True)
            assert dry.value.response["Error"]["Code"] == "DryRunOperation"
            assert guest.dumps() == []

            response = client.send_diagnostic_interrupt(InstanceId=instance.id)
            request_id = response["ResponseMetadata"]["RequestId"]
            vmcore = guest.wait_dump(DUMP)
        ctx.close()

        assert vmcore.read_bytes()[:8] == b"KDUMP   "
        assert "NMI" in (vmcore.parent / "dmesg.txt").read_text(errors="replace")
        (row,) = store.audit_rows(request_id=request_id)
        assert (row.outcome, row.backend, row.instance_id) == ("sent", "qmp", instance.id)
        outcomes = [r.outcome for r in store.audit_rows(instance_id=instance.id)]
        assert outcomes == ["denied", "dry-run", "sent"]
    guest.down()
