"""The service on PostgreSQL (the throwaway server `make test` starts): the same black-box
path as on SQLite, through real boto3."""

import uuid

import botocore.exceptions
import pytest

from tests.dbfixtures import _pg_admin_url

from .conftest import REGION, allow, deny, run_service

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_service(tmp_path_factory):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    name = f"kdiag_service_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        with run_service(tmp_path_factory.mktemp("pg"), db_url=url) as svc:
            yield svc
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def test_send_deny_dry_run_describe_and_audit(pg_service):
    svc = pg_service
    account = svc.store.default_account().id
    mine = svc.store.add_instance(backend="fake", target={}, tags={"Owner": "pat"})
    other = svc.store.add_instance(backend="fake", target={})
    arn = f"arn:aws:ec2:{REGION}:{account}:instance/"
    pat = svc.user(
        "pat",
        allow(resource=arn + "*"),
        deny(resource=arn + other.id),
        allow(action="ec2:DescribeInstances"),
    )
    ec2 = svc.client(pat)

    sent = ec2.send_diagnostic_interrupt(InstanceId=mine.id)["ResponseMetadata"]["RequestId"]
    assert svc.backend.sent == [mine.id]
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        ec2.send_diagnostic_interrupt(InstanceId=other.id)
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    with pytest.raises(botocore.exceptions.ClientError) as dry:
        ec2.send_diagnostic_interrupt(InstanceId=mine.id, DryRun=True)
    assert dry.value.response["Error"]["Code"] == "DryRunOperation"
    listed = ec2.describe_instances(Filters=[{"Name": "tag:Owner", "Values": ["pat"]}])
    assert [i["InstanceId"] for r in listed["Reservations"] for i in r["Instances"]] == [mine.id]

    assert svc.audit(sent).outcome == "sent"
    outcomes = {r.instance_id: r.outcome for r in svc.store.audit_rows() if r.instance_id}
    assert outcomes[other.id] == "denied"
    assert [r.outcome for r in svc.store.audit_rows(instance_id=mine.id)] == ["sent", "dry-run"]
