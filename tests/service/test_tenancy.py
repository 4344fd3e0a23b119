"""Tenancy over real HTTP, on SQLite and PostgreSQL: every read is scoped to the caller's
account.  Two accounts act (NMIs, denials, a cross-account attempt, a forged signature);
each then reads ``/v1/audit``, ``/v1/instances`` and EC2 ``DescribeInstances`` and must see
its own rows and instances only."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import botocore.exceptions
import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.dbfixtures import _pg_admin_url
from tests.service.conftest import Creds, allow, run_service, signed_call

POLICY = allow(
    action=["ec2:SendDiagnosticInterrupt", "ec2:DescribeInstances", "cloudtrail:LookupEvents"]
)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def service(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tenancy")
    if request.param == "sqlite":
        with run_service(tmp) as svc:
            yield svc
        return
    admin = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    name = f"kdiag_tenancy_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        with run_service(tmp, db_url=url) as svc:
            yield svc
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@dataclass(frozen=True)
class Tenant:
    account: str
    creds: Creds
    box: str

    @property
    def arn_prefix(self) -> str:
        return f"arn:aws:iam::{self.account}:"


def tenant(service, account_id: str, user_name: str) -> Tenant:
    user = service.store.create_user(user_name, account_id=account_id)
    service.store.put_user_policy(user, "p", json.dumps(POLICY))
    key, secret = service.store.create_access_key(user)
    # the account's secrets go into the target, the tags and the failure messages
    box = service.store.add_instance(
        backend="fake", target={}, account_id=account_id, tags={"Owner": user_name}
    )
    return Tenant(account_id, Creds(user_name, key.id, secret), box.id)


@pytest.fixture(scope="module")
def tenants(service):
    a = tenant(service, service.store.default_account().id, "alice")
    other = service.store.create_account("other-tenant")
    b = tenant(service, other.id, "bob")
    for me, them in ((a, b), (b, a)):
        sent = signed_call(
            service, me.creds, "POST", f"/v1/instances/{me.box}/diagnostic-interrupt", {}
        )
        assert sent.status_code == 200, sent.text
        # across accounts: NotFound for the caller, and a row in the caller's log only
        cross = signed_call(
            service, me.creds, "POST", f"/v1/instances/{them.box}/diagnostic-interrupt", {}
        )
        assert cross.status_code == 400, cross.text
        # a forged signature with the account's key id: a row with no principal
        forged = Creds(me.creds.name, me.creds.key_id, "not-the-secret")
        assert signed_call(service, forged, "GET", "/v1/instances").status_code == 401
    return a, b


def test_audit_shows_only_the_callers_account(service, tenants):
    for me, them in (tenants, tenants[::-1]):
        response = signed_call(service, me.creds, "GET", "/v1/audit?limit=1000", nonce=me.box)
        assert response.status_code == 200, response.text
        events = response.json()["Events"]
        assert any(e["outcome"] == "sent" and e["instance_id"] == me.box for e in events)
        assert any(e["instance_id"] == them.box for e in events)  # my own failed attempt
        for event in events:
            assert (event["principal"] or "").startswith(me.arn_prefix), event
        assert them.arn_prefix not in response.text
        assert them.creds.key_id not in response.text
        # and the store holds the other tenant's rows: the filter, not emptiness, hid them
        assert any(
            r.principal and r.principal.startswith(them.arn_prefix)
            for r in service.store.audit_rows()
        )


def test_instance_lists_show_only_the_callers_account(service, tenants):
    for me, them in (tenants, tenants[::-1]):
        response = signed_call(service, me.creds, "GET", "/v1/instances", nonce="list" + me.box)
        assert response.status_code == 200, response.text
        assert [i["InstanceId"] for i in response.json()["Instances"]] == [me.box]
        ec2 = service.client(me.creds)
        reservations = ec2.describe_instances()["Reservations"]
        assert [r["OwnerId"] for r in reservations] == [me.account]
        assert [i["InstanceId"] for r in reservations for i in r["Instances"]] == [me.box]
        by_tag = ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["*"]}])
        assert [i["InstanceId"] for r in by_tag["Reservations"] for i in r["Instances"]] == [me.box]
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            ec2.describe_instances(InstanceIds=[them.box])
        assert caught.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"


def test_unauthenticated_audit_read_is_refused(service, tenants):
    response = httpx.get(service.url + "/v1/audit")
    assert response.status_code == 403
    assert "Events" not in response.json()
