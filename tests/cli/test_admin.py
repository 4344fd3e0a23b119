"""``kdiag iam``, ``kdiag instances`` and ``kdiag audit`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdiag.cli import main as cli_main
from kdiag.cli.audit import parse_since
from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir")

ALLOW_ALL = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}
        ],
    }
)


@pytest.fixture
def kdiag(db_url, capsys):
    def run(*args: str, code: int = 0) -> str:
        rc = cli_main.run([*args, "--db", db_url])
        out, err = capsys.readouterr()
        assert rc == code, (out, err)
        return out if code == 0 else err

    return run


def test_users_keys_and_policies(kdiag, db_url, tmp_path):
    out = kdiag("iam", "create-user", "alice")
    assert out.startswith("alice\tAIDA")
    assert "EntityAlreadyExists" in kdiag("iam", "create-user", "alice", code=2)
    key = json.loads(kdiag("iam", "create-access-key", "alice", "--json"))["AccessKey"]
    plain = kdiag("iam", "create-access-key", "alice").splitlines()
    assert plain[0].startswith("AccessKeyId\tAKIA")
    assert plain[1].startswith("SecretAccessKey\t")
    with Store.open(db_url) as store:
        found = store.lookup_access_key(key["AccessKeyId"])
        assert found is not None
        assert found[2] == key["SecretAccessKey"]
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(ALLOW_ALL)
    kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "from-file",
        "--policy-document",
        f"file://{policy_file}",
    )
    kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "literal",
        "--policy-document",
        ALLOW_ALL,
    )
    err = kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "bad",
        "--policy-document",
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:SendDiagnosticInterrupt"}]}',
        code=2,
    )
    assert "Statement[0]" in err
    assert "MalformedPolicyDocument" in err
    assert "cannot read" in kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "x",
        "--policy-document",
        "file:///nonexistent.json",
        code=2,
    )
    listing = kdiag("iam", "list", "--json")
    assert key["SecretAccessKey"] not in listing
    users = json.loads(listing)["Users"]
    assert [u["UserName"] for u in users] == ["alice"]
    assert sorted(users[0]["Policies"]) == ["from-file", "literal"]
    assert len(users[0]["AccessKeys"]) == 2
    assert "alice" in kdiag("iam", "list")
    assert "NoSuchEntity" in kdiag("iam", "create-access-key", "bob", code=2)
    kdiag("iam", "delete-user-policy", "alice", "--policy-name", "literal")
    kdiag("iam", "delete-access-key", key["AccessKeyId"])
    users = json.loads(kdiag("iam", "list", "--json"))["Users"]
    assert list(users[0]["Policies"]) == ["from-file"]
    assert len(users[0]["AccessKeys"]) == 1
    kdiag("iam", "delete-user", "alice")
    assert json.loads(kdiag("iam", "list", "--json")) == {"Users": []}


def test_instances(kdiag):
    iid = kdiag(
        "instances",
        "add",
        "--backend",
        "fake",
        "--target",
        '{"state": "running"}',
        "--tag",
        "Owner=alice",
        "--tag",
        "env=prod",
        "--region",
        "eu-west-1",
        "--az",
        "eu-west-1c",
    ).strip()
    assert iid.startswith("i-")
    assert len(iid) == 19
    added = json.loads(
        kdiag(
            "instances",
            "add",
            "--backend",
            "qmp",
            "--target",
            "/run/vm.qmp",
            "--id",
            "i-0123456789abcdef0",
            "--arch",
            "arm64",
            "--json",
        )
    )["Instance"]
    assert added["Target"] == {"address": "/run/vm.qmp"}
    assert added["Architecture"] == "arm64"
    listed = json.loads(kdiag("instances", "list", "--json"))["Instances"]
    by_id = {i["InstanceId"]: i for i in listed}
    assert set(by_id) == {iid, "i-0123456789abcdef0"}
    assert by_id[iid]["Tags"] == {"Owner": "alice", "env": "prod"}
    assert by_id[iid]["AvailabilityZone"] == "eu-west-1c"
    only = json.loads(kdiag("instances", "list", "--json", "--tag", "env=prod"))["Instances"]
    assert [i["InstanceId"] for i in only] == [iid]
    assert iid in kdiag("instances", "list")
    assert "InvalidInstanceID.Malformed" in kdiag(
        "instances", "add", "--backend", "fake", "--target", "x", "--id", "i-123", code=2
    )
    assert "unknown or disabled backend" in kdiag(
        "instances", "add", "--backend", "nope", "--target", "x", code=2
    )
    assert "KEY=VALUE" in kdiag(
        "instances", "add", "--backend", "fake", "--target", "x", "--tag", "novalue", code=2
    )
    assert '"address"' in kdiag("instances", "add", "--backend", "qmp", "--target", "{}", code=2)
    assert "timeout" in kdiag(
        "instances",
        "add",
        "--backend",
        "qmp",
        "--target",
        '{"address": "/x", "timeout": -1}',
        code=2,
    )
    kdiag("instances", "set-state", iid, "stopped")
    states = {
        i["InstanceId"]: i["State"]
        for i in json.loads(kdiag("instances", "list", "--json"))["Instances"]
    }
    assert states[iid] == "stopped"
    kdiag("instances", "remove", iid)
    assert "NoSuchEntity" in kdiag("instances", "remove", iid, code=2)


def test_audit(kdiag, db_url, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from kdiag.backends.fake import FakeBackend
    from kdiag.errors import AccessDenied
    from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt

    kdiag("iam", "create-user", "alice")
    kdiag("iam", "put-user-policy", "alice", "--policy-name", "all", "--policy-document", ALLOW_ALL)
    iid = kdiag("instances", "add", "--backend", "fake", "--target", "{}").strip()
    with Store.open(db_url) as store:
        user = store.user("alice")
        caller = Caller(user.account_id, "alice", user.id, None, "127.0.0.1")
        send_diagnostic_interrupt(
            store, InterruptRequest(caller, iid), backends={"fake": FakeBackend()}
        )
        stranger = Caller(user.account_id, "mallory", "AIDAXXXXXXXXXXXXXXXXX", None, "127.0.0.2")
        with pytest.raises(AccessDenied):
            send_diagnostic_interrupt(
                store, InterruptRequest(stranger, iid), backends={"fake": FakeBackend()}
            )
    rows = json.loads(kdiag("audit", "--json"))["AuditLog"]
    assert [(r["outcome"], r["decision"], r["source_ip"]) for r in rows] == [
        ("sent", "allow", "127.0.0.1"),
        ("denied", "deny", "127.0.0.2"),
    ]
    assert rows[0]["latency_ms"] is not None
    assert len(json.loads(kdiag("audit", "--json", "--since", "1h"))["AuditLog"]) == 2
    assert json.loads(kdiag("audit", "--json", "--since", "2999-01-01T00:00:00Z"))["AuditLog"] == []
    assert [
        r["outcome"] for r in json.loads(kdiag("audit", "--json", "--limit", "1"))["AuditLog"]
    ] == ["denied"]
    table = kdiag("audit")
    assert iid in table
    assert "UnauthorizedOperation" in table
    assert "--since" in kdiag("audit", "--since", "yesterday", code=2)


def test_parse_since():
    import datetime as dt

    now = dt.datetime(2026, 1, 2, 0, 0, tzinfo=dt.UTC)
    assert parse_since("30m", now) == now - dt.timedelta(minutes=30)
    assert parse_since("7d", now) == now - dt.timedelta(days=7)
    assert parse_since("2026-01-01T12:00:00") == dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def test_real_entry_point_uses_kdiag_db(tmp_path, state_dir):
    env = {
        **os.environ,
        "KDIAG_DB": f"sqlite:///{tmp_path / 'env.db'}",
        "KDIAG_STATE_DIR": str(state_dir),
    }
    kdiag = [str(Path(sys.executable).with_name("kdiag"))]
    proc = subprocess.run(
        [*kdiag, "iam", "create-user", "envuser"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*kdiag, "iam", "list", "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert [u["UserName"] for u in json.loads(proc.stdout)["Users"]] == ["envuser"]
    assert (tmp_path / "env.db").exists()
