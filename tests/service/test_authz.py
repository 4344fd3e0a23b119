"""One policy, one answer: every action of every face asks the same authorization.

Each user below has one policy conditioned on a global condition key (``aws:PrincipalType``,
``aws:SourceIp``, ``aws:CurrentTime``) covering the three actions.  The same user is then
tried through every door: the EC2 Query endpoint (SendDiagnosticInterrupt, DescribeInstances),
the ``/v1`` API (instances, diagnostic-interrupt, audit), ``kdiag send``, the use case
called as a library, and ``kdiag iam simulate-principal-policy``.  Every door must give the
same answer, and the expected one.  (Before
authorization was one function, DescribeInstances and the audit lookup built their own
context without ``aws:PrincipalType``, so the first two policies split the doors.)
"""

import json
import uuid
from pathlib import Path

import botocore.exceptions
import pytest

from kdiag.authz import Caller
from kdiag.errors import AccessDenied
from kdiag.interrupts import InterruptRequest, send_diagnostic_interrupt

from .conftest import REGION, signed_call

ACTIONS = ["ec2:SendDiagnosticInterrupt", "ec2:DescribeInstances", "cloudtrail:LookupEvents"]


def _policy(effect, condition, *, allow_first=False):
    statements = [{"Effect": effect, "Action": ACTIONS, "Resource": "*", "Condition": condition}]
    if allow_first:
        statements.insert(0, {"Effect": "Allow", "Action": ACTIONS, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


#: user name → (policy, whether it allows a request from 127.0.0.1 by an IAM user, now)
CASES = {
    "type-user": (_policy("Allow", {"StringEquals": {"aws:PrincipalType": "User"}}), True),
    "type-role": (_policy("Allow", {"StringEquals": {"aws:PrincipalType": "AssumedRole"}}), False),
    "deny-typed": (
        _policy("Deny", {"Null": {"aws:PrincipalType": "false"}}, allow_first=True),
        False,
    ),
    "from-loopback": (_policy("Allow", {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}), True),
    "from-elsewhere": (_policy("Allow", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}), False),
    "since-2020": (
        _policy("Allow", {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}),
        True,
    ),
    "until-2020": (
        _policy("Allow", {"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}),
        False,
    ),
}


@pytest.fixture(scope="module")
def instance(service):
    return service.store.add_instance(backend="fake", target={})


def _nonce(request, **_):
    request.headers["X-Kdiag-Nonce"] = str(uuid.uuid4())


def _ec2(service, creds):
    client = service.client(creds)
    client.meta.events.register("before-sign.ec2.*", _nonce)
    return client


def _allowed_by_boto3(call, **kw):
    """True for success or DryRunOperation, False for UnauthorizedOperation."""
    try:
        call(**kw)
    except botocore.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert code in ("DryRunOperation", "UnauthorizedOperation"), code
        return code == "DryRunOperation"
    return True


def _allowed_by_rest(response):
    assert response.status_code in (200, 412, 403), response.text
    return response.status_code != 403


def _every_door(service, creds, instance, monkeypatch):
    ec2 = _ec2(service, creds)
    v1 = f"/v1/instances/{instance.id}/diagnostic-interrupt"
    answers = {
        "ec2 SendDiagnosticInterrupt": _allowed_by_boto3(
            ec2.send_diagnostic_interrupt, InstanceId=instance.id, DryRun=True
        ),
        "ec2 DescribeInstances": _allowed_by_boto3(ec2.describe_instances),
        "ec2 DescribeInstances DryRun": _allowed_by_boto3(ec2.describe_instances, DryRun=True),
        "v1 instances": _allowed_by_rest(signed_call(service, creds, "GET", "/v1/instances")),
        "v1 diagnostic-interrupt": _allowed_by_rest(
            signed_call(service, creds, "POST", v1, {"DryRun": True})
        ),
        "v1 audit": _allowed_by_rest(signed_call(service, creds, "GET", "/v1/audit?limit=1")),
    }
    from kdiag.cli import main as cli_main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret)
    code = cli_main.run(["send", instance.id, "--dry-run", "--endpoint", service.url])
    assert code in (0, 3)
    answers["kdiag send --dry-run"] = code == 0

    user = service.store.get_user(creds.name)
    caller = Caller.of(user, source_ip="127.0.0.1")
    try:
        send_diagnostic_interrupt(
            service.store,
            InterruptRequest(caller, instance.id, dry_run=True, region=REGION),
            backends={},
        )
        answers["library send_diagnostic_interrupt"] = True
    except AccessDenied:
        answers["library send_diagnostic_interrupt"] = False
    return answers


def _simulated(service, name, monkeypatch, capsys):
    """``kdiag iam simulate-principal-policy`` for the three actions: allowed or not.  (No
    request, so no aws:SourceIp: the simulator is asked only about the other keys.)"""
    from kdiag.cli import main as cli_main

    db = Path(service.store.url.removeprefix("sqlite:///"))
    monkeypatch.setenv("KDIAG_KEY_FILE", str(db.with_name("kdiag.key")))
    monkeypatch.setenv("KDIAG_STATE_DIR", str(db.parent))
    capsys.readouterr()
    argv = ["iam", "simulate-principal-policy", name, "--json", "--db", service.store.url]
    assert cli_main.run([*argv, "--action-names", ",".join(ACTIONS)]) == 0
    results = json.loads(capsys.readouterr().out)["EvaluationResults"]
    return {f"simulate {r['EvalActionName']}": r["EvalDecision"] == "allowed" for r in results}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_policy_answers_every_action_alike(service, instance, monkeypatch, capsys, name):
    document, expected = CASES[name]
    creds = service.user(name, document)
    answers = _every_door(service, creds, instance, monkeypatch)
    if "aws:SourceIp" not in json.dumps(document):
        answers |= _simulated(service, name, monkeypatch, capsys)
        assert len(answers) == 11
    assert answers == dict.fromkeys(answers, expected)
    # Each denial is audited as one, with the same reason text wherever it came from.
    if not expected:
        rows = [r for r in service.store.audit_rows() if r.principal and r.principal.endswith(name)]
        assert {r.outcome for r in rows} == {"denied"}
        assert len({r.reason for r in rows}) == 1
