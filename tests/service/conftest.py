"""The service under test: a fresh SQLite store per module, the real app on 127.0.0.1:<port>.

Users, keys, policies and instances are created through the store API; clients are the real
boto3 and the real ``aws`` CLI, isolated from the developer's AWS configuration.
"""

import json
import os
import time
from dataclasses import dataclass

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kdiag.backends.base import BackendPool
from kdiag.backends.fake import FakeBackend
from kdiag.service import ServiceContext, create_app
from kdiag.service.ratelimit import Throttle
from kdiag.service.server import ServerThread
from kdiag.store import Store

REGION = "us-east-1"


@pytest.fixture(scope="module", autouse=True)
def _isolated_aws_env():
    """No developer AWS configuration leaks in; undone after each module."""
    mp = pytest.MonkeyPatch()
    for var in list(os.environ):
        if var.startswith("AWS_"):
            mp.delenv(var)
    mp.setenv("AWS_CONFIG_FILE", "/dev/null")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv("AWS_DEFAULT_REGION", REGION)
    yield
    mp.undo()


@dataclass
class Service:
    store: Store
    backend: FakeBackend
    ctx: ServiceContext
    url: str

    def user(self, name, *policies):
        user = self.store.create_user(name)
        for n, doc in enumerate(policies):
            self.store.put_user_policy(user, f"p{n}", json.dumps(doc))
        key, secret = self.store.create_access_key(user)
        return Creds(name, key.id, secret)

    def client(self, creds, *, region=REGION, retries=1):
        return boto3.session.Session().client(
            "ec2",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=creds.key_id,
            aws_secret_access_key=creds.secret,
            config=Config(retries={"max_attempts": retries, "mode": "standard"}),
        )

    def audit(self, request_id):
        rows = self.store.audit_rows(request_id=request_id)
        assert len(rows) == 1, rows
        return rows[0]


@dataclass(frozen=True)
class Creds:
    name: str
    key_id: str
    secret: str


def allow(action="ec2:SendDiagnosticInterrupt", resource="*", **extra):
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}],
    }


def deny(action="ec2:SendDiagnosticInterrupt", resource="*"):
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": action, "Resource": resource}],
    }


def signed_call(service, creds, method, path, body=None, *, nonce=""):
    """A ``/v1`` request signed with SigV4 by real botocore, sent with httpx."""
    data = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Kdiag-Nonce": nonce or path + method}
    request = AWSRequest(method=method, url=service.url + path, data=data, headers=headers)
    SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION).add_auth(request)
    return httpx.request(method, request.url, content=data, headers=dict(request.headers.items()))


def run_service(
    tmp, *, rate=1000.0, burst=1000, db_url=None, limiter_clock=time.time, **server_config
):
    """A fresh store in ``tmp`` (or at ``db_url``) and the app serving it; a context manager
    yielding Service.  ``limiter_clock`` is the token buckets' clock; ``server_config``
    goes to :func:`kdiag.service.server.uvicorn_config` (timeouts, connection cap)."""
    import contextlib

    @contextlib.contextmanager
    def running():
        store = Store.open(db_url or f"sqlite:///{tmp}/kdiag.db", key_file=tmp / "kdiag.key")
        backend = FakeBackend()
        ctx = ServiceContext(
            store,
            regions=(REGION, "eu-west-1"),
            throttle=Throttle(rate=rate, burst=burst, clock=limiter_clock),
            backends=BackendPool({"fake": backend}),
        )
        try:
            with ServerThread(create_app(ctx), **server_config) as server:
                yield Service(store, backend, ctx, server.url)
        finally:
            store.close()

    return running()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with run_service(tmp_path_factory.mktemp("service")) as svc:
        yield svc
