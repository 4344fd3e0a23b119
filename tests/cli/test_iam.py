"""``kdiag iam`` as an aws-CLI user reaches for it: get-user-policy, update-access-key (an
Inactive key is refused by a real service, through real boto3), simulate-principal-policy
(which statement decides), IAM's quotas, hostile policy documents, and ``--db`` pointing
nowhere."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from kdiag.cli import main as cli_main
from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir
from tests.service.conftest import REGION, run_service

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir")

ACTION = "ec2:SendDiagnosticInterrupt"
OWNED = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowOwned",
            "Effect": "Allow",
            "Action": ACTION,
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
        },
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
    ],
}
GUARD = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "NoProdFromOutside",
            "Effect": "Deny",
            "Action": "ec2:*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:ResourceTag/env": "prod"},
                "NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"},
            },
        }
    ],
}


@pytest.fixture
def kdiag(db_url, capsys):
    def run(*args: str, code: int = 0) -> str:
        rc = cli_main.run([*args, "--db", db_url])
        out, err = capsys.readouterr()
        assert rc == code, (out, err)
        return out if code == 0 else err

    return run


def put(kdiag, user: str, name: str, document: dict | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    kdiag("iam", "put-user-policy", user, "--policy-name", name, "--policy-document", text)


def test_get_user_policy(kdiag):
    kdiag("iam", "create-user", "alice")
    put(kdiag, "alice", "owned", OWNED)
    got = json.loads(kdiag("iam", "get-user-policy", "alice", "--policy-name", "owned", "--json"))
    assert got == {"UserName": "alice", "PolicyName": "owned", "PolicyDocument": OWNED}
    assert json.loads(kdiag("iam", "get-user-policy", "alice", "--policy-name", "owned")) == OWNED
    query = ("--query", "PolicyDocument.Statement[0].Effect")
    assert kdiag("iam", "get-user-policy", "alice", "--policy-name", "owned", *query) == "Allow\n"
    err = kdiag("iam", "get-user-policy", "alice", "--policy-name", "nope", code=2)
    assert err == "error: user 'alice' has no policy 'nope' (NoSuchEntity)\n"
    assert "(NoSuchEntity)" in kdiag("iam", "get-user-policy", "bob", "--policy-name", "x", code=2)


def test_quotas_through_the_cli(kdiag):
    kdiag("iam", "create-user", "alice")
    kdiag("iam", "create-access-key", "alice")
    kdiag("iam", "create-access-key", "alice")
    err = kdiag("iam", "create-access-key", "alice", code=2)
    assert err.startswith("error: user 'alice' already has 2 access keys")
    assert err.rstrip().endswith("(LimitExceeded)")
    statements = [
        {"Sid": f"S{i}", "Effect": "Allow", "Action": f"ec2:Action{i}", "Resource": "*"}
        for i in range(40)
    ]
    big = {"Version": "2012-10-17", "Statement": statements}
    kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "big",
        "--policy-document",
        json.dumps(big),
        code=2,
    )
    listing = json.loads(kdiag("iam", "list-user-policies", "alice", "--json"))
    assert listing == {"PolicyNames": []}


def test_hostile_documents_are_malformed_not_a_traceback(kdiag, tmp_path):
    kdiag("iam", "create-user", "alice")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    err = kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "deep",
        "--policy-document",
        f"file://{deep}",
        code=2,
    )
    assert err.startswith("error: the document is")
    assert err.rstrip().endswith("(MalformedPolicyDocument)")
    nested = '{"Version":"2012-10-17","Statement":' + "[" * 5000 + "]" * 5000 + "}"
    err = kdiag(
        "iam",
        "put-user-policy",
        "alice",
        "--policy-name",
        "deep",
        "--policy-document",
        nested,
        code=2,
    )
    assert err == (
        "error: the document is nested more than 32 levels deep (MalformedPolicyDocument)\n"
    )
    err = kdiag(
        "iam",
        "simulate-principal-policy",
        "alice",
        "--action-names",
        ACTION,
        "--context-entries",
        "[" * 100_000 + "]" * 100_000,
        code=2,
    )
    assert "(ConfigError)" in err


def test_simulate_names_the_deciding_statement(kdiag, db_url):
    kdiag("iam", "create-user", "alice")
    put(kdiag, "alice", "owned", OWNED)
    put(kdiag, "alice", "guard", GUARD)
    with Store.open(db_url) as store:
        mine = store.add_instance(backend="fake", target={}, tags={"Owner": "alice"})
        prod = store.add_instance(backend="fake", target={}, tags={"Owner": "alice", "env": "prod"})
        other = store.add_instance(backend="fake", target={}, tags={"Owner": "bob"})
    arns = {i.id: i.arn for i in (mine, prod, other)}
    out = kdiag(
        "iam",
        "simulate-principal-policy",
        "alice",
        "--action-names",
        f"{ACTION},ec2:DescribeInstances",
        "--resource-arns",
        arns[mine.id],
        "--resource-arns",
        f"{arns[prod.id]} {arns[other.id]}",
        "--json",
    )
    results = json.loads(out)["EvaluationResults"]
    decisions = {(r["EvalActionName"], r["EvalResourceName"]): r for r in results}
    assert [r["EvalActionName"] for r in results] == [ACTION] * 3 + ["ec2:DescribeInstances"] * 3

    allowed = decisions[ACTION, arns[mine.id]]
    assert allowed["EvalDecision"] == "allowed"
    assert allowed["MatchedStatements"] == [
        {
            "SourcePolicyId": "owned",
            "SourcePolicyType": "IAM Policy",
            "StatementIndex": 0,
            "Sid": "AllowOwned",
            "Effect": "Allow",
        }
    ]
    # The guard was stopped by its env condition (the instance has no env tag).
    assert [(s["SourcePolicyId"], s["FailedCondition"]) for s in allowed["StoppedStatements"]] == [
        ("guard", "StringEquals aws:ResourceTag/env")
    ]
    assert "aws:SourceIp" in allowed["MissingContextValues"]

    denied = decisions[ACTION, arns[prod.id]]  # no aws:SourceIp: NotIpAddress holds
    assert denied["EvalDecision"] == "explicitDeny"
    assert [(s["SourcePolicyId"], s["Sid"]) for s in denied["MatchedStatements"]] == [
        ("guard", "NoProdFromOutside")
    ]

    implicit = decisions[ACTION, arns[other.id]]
    assert implicit["EvalDecision"] == "implicitDeny"
    assert implicit["MatchedStatements"] == []
    assert implicit["StoppedStatements"][-1]["FailedCondition"] == (
        "StringEquals aws:ResourceTag/Owner"
    )
    assert decisions["ec2:DescribeInstances", arns[other.id]]["EvalDecision"] == "allowed"

    # A context entry wins over what the service would see: from inside 10/8 prod is fine.
    inside = json.loads(
        kdiag(
            "iam",
            "simulate-principal-policy",
            "alice",
            "--action-names",
            ACTION,
            "--resource-arns",
            arns[prod.id],
            "--context-entries",
            "ContextKeyName=aws:SourceIp,ContextKeyValues=10.1.2.3,ContextKeyType=ip",
            "--json",
        )
    )["EvaluationResults"]
    assert [r["EvalDecision"] for r in inside] == ["allowed"]

    args = ("iam", "simulate-principal-policy", "alice", "--action-names", ACTION)
    text = kdiag(*args, "--resource-arns", arns[prod.id], "--output", "table")
    first, *details = text.splitlines()
    assert first == f"explicitDeny\t{ACTION}\t{arns[prod.id]}"
    decided = 'policy "guard" Statement[0] (Sid "NoProdFromOutside") Deny'
    assert details[0] == f"    decided by: {decided}"
    # in a pipe: one tab-separated line per decision (decided by, stopped by, missing keys)
    piped = kdiag(*args, "--resource-arns", arns[prod.id]).splitlines()
    assert [line.split("\t")[:4] for line in piped] == [
        ["explicitDeny", ACTION, arns[prod.id], decided]
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("key=aws:SourceIp,values=nope,type=ip", "does not appear to be an IPv4 or IPv6"),
        ("key=aws:SourceIp,values=1.2.3.4,5.6.7.8,type=ip", "is ip: give one value"),
        ("key=aws:x,values=a,type=colour", "ContextKeyType 'colour' is not one of"),
        ("values=a", 'ContextKeyName must be "service:key"'),
        ("key=aws:x", "aws:x needs ContextKeyValues"),
        ("key=aws:x,values=a,key=aws:y", "key is given twice"),
        ("nonsense", "cannot read 'nonsense'"),
        ('{"ContextKeyName": "aws:x"', "not valid JSON"),
    ],
)
def test_bad_context_entries_are_usage_errors(kdiag, entry, message):
    kdiag("iam", "create-user", "alice")
    err = kdiag(
        "iam",
        "simulate-principal-policy",
        "alice",
        "--action-names",
        ACTION,
        "--context-entries",
        entry,
        code=2,
    )
    assert message in err
    assert err.count("\n") == 1


def test_db_in_a_missing_directory_is_an_error(tmp_path, state_dir, capsys):
    missing = tmp_path / "no" / "such" / "dir"
    for db in (str(missing / "k.db"), f"sqlite:///{missing}/k.db"):
        assert cli_main.run(["iam", "list-users", "--db", db]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"error: cannot create the database {missing}/k.db: directory {missing} does not"
            " exist (ConfigError)\n"
        )
    assert not (tmp_path / "no").exists()
    assert cli_main.run(["iam", "list-users", "--db", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    # The default location, the state directory, is still created on first use.
    assert cli_main.run(["iam", "list-users", "--json"]) == 0
    assert (state_dir / "kdiag.db").is_file()


@pytest.fixture
def aws_env(monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _describe(url: str, key_id: str, secret: str) -> str:
    """``ok`` or the error code of a real boto3 DescribeInstances."""
    client = boto3.session.Session().client(
        "ec2",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    try:
        client.describe_instances()
    except botocore.exceptions.ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def test_an_inactive_key_is_refused_by_the_service(
    tmp_path, aws_env, state_dir, capsys, monkeypatch
):
    db = f"sqlite:///{tmp_path}/kdiag.db"
    monkeypatch.setenv("KDIAG_KEY_FILE", str(tmp_path / "kdiag.key"))  # the service's

    def kdiag(*args: str) -> str:
        assert cli_main.run([*args, "--db", db]) == 0
        return capsys.readouterr().out

    with run_service(tmp_path, db_url=db) as service:
        kdiag("iam", "create-user", "carol")
        kdiag(
            "iam",
            "put-user-policy",
            "carol",
            "--policy-name",
            "describe",
            "--policy-document",
            json.dumps(OWNED),
        )
        fresh = json.loads(kdiag("iam", "create-access-key", "carol", "--json"))["AccessKey"]
        used = json.loads(kdiag("iam", "create-access-key", "carol", "--json"))["AccessKey"]
        assert _describe(service.url, used["AccessKeyId"], used["SecretAccessKey"]) == "ok"

        for key in (fresh, used):
            kdiag(
                "iam",
                "update-access-key",
                "carol",
                "--access-key-id",
                key["AccessKeyId"],
                "--status",
                "Inactive",
            )
        listed = json.loads(kdiag("iam", "list-access-keys", "carol", "--json"))
        assert {k["Status"] for k in listed["AccessKeyMetadata"]} == {"Inactive"}
        # Never used: refused at once.
        assert _describe(service.url, fresh["AccessKeyId"], fresh["SecretAccessKey"]) == (
            "AuthFailure"
        )
        # Used a moment ago: refused once the service's key cache (2 s) has expired.
        deadline = time.monotonic() + 30
        while (code := _describe(service.url, used["AccessKeyId"], used["SecretAccessKey"])) == (
            "ok"
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert code == "AuthFailure"

        kdiag(
            "iam",
            "update-access-key",
            "carol",
            "--access-key-id",
            fresh["AccessKeyId"],
            "--status",
            "Active",
        )
        assert _describe(service.url, fresh["AccessKeyId"], fresh["SecretAccessKey"]) == "ok"


def test_update_access_key_checks_owner_and_status(kdiag):
    kdiag("iam", "create-user", "alice")
    kdiag("iam", "create-user", "bob")
    key = json.loads(kdiag("iam", "create-access-key", "alice", "--json"))["AccessKey"]
    err = kdiag(
        "iam",
        "update-access-key",
        "bob",
        "--access-key-id",
        key["AccessKeyId"],
        "--status",
        "Inactive",
        code=2,
    )
    assert err == f"error: no access key {key['AccessKeyId']} of user 'bob' (NoSuchEntity)\n"
    err = kdiag(
        "iam",
        "update-access-key",
        "alice",
        "--access-key-id",
        key["AccessKeyId"],
        "--status",
        "Sleeping",
        code=2,
    )
    assert "Sleeping" in err
    listed = json.loads(kdiag("iam", "list-access-keys", "alice", "--json"))
    assert [k["Status"] for k in listed["AccessKeyMetadata"]] == ["Active"]


def test_help_does_not_load_the_store():
    """``kdiag --help`` imports every command module; iam's must not pull in SQLAlchemy."""
    code = (
        "import sys; from kdiag.cli import main; main.build_app(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')"
        " or m in ('kdiag.store', 'kdiag.authz')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_delete_access_key_as_aws_writes_it(kdiag):
    kdiag("iam", "create-user", "alice")
    kdiag("iam", "create-user", "bob")
    first, second = (
        json.loads(kdiag("iam", "create-access-key", "alice", "--json"))["AccessKey"]["AccessKeyId"]
        for _ in range(2)
    )
    err = kdiag("iam", "delete-access-key", "--access-key-id", first, "--user-name", "bob", code=2)
    assert err == f"error: no access key {first} of user 'bob' (NoSuchEntity)\n"
    kdiag("iam", "delete-access-key", "--access-key-id", first, "--user-name", "alice")
    assert "give the access key id once" in kdiag("iam", "delete-access-key", code=2)
    assert "give the access key id once" in kdiag(
        "iam", "delete-access-key", second, "--access-key-id", second, code=2
    )
    kdiag("iam", "delete-access-key", second)
    assert json.loads(kdiag("iam", "list-access-keys", "alice", "--json")) == {
        "AccessKeyMetadata": []
    }


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path, state_dir, capsys):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database\n" * 100)
    cases = {
        str(not_a_db): f"sqlite:///{not_a_db}: file is not a database",
        "postgresql://kdiag:hunter2@127.0.0.1:1/kdiag": "kdiag:***@127.0.0.1:1/kdiag: connection",
    }
    for db, expected in cases.items():
        assert cli_main.run(["iam", "list-users", "--db", db]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot open the database ")
        assert expected in err
        assert err.endswith("(ConfigError)\n")
        assert err.count("\n") == 1
        assert "hunter2" not in err
