"""Black box: the real ``aws`` CLI (pip awscli) against the real app."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REGION, allow, deny

AWS = str(Path(sys.executable).with_name("aws"))


@pytest.fixture(scope="module")
def world(service):
    account = service.store.default_account().id
    mine = service.store.add_instance(backend="fake", target={}, tags={"Owner": "dave"})
    theirs = service.store.add_instance(backend="fake", target={}, tags={"Owner": "erin"})
    stopped = service.store.add_instance(
        backend="fake", target={}, state="stopped", tags={"Owner": "dave"}
    )
    arm = service.store.add_instance(
        backend="fake", target={}, arch="arm64", tags={"Owner": "dave"}
    )
    vetoed = service.store.add_instance(backend="fake", target={}, tags={"Owner": "dave"})
    arn = f"arn:aws:ec2:{REGION}:{account}:instance/"
    dave = service.user(
        "dave",
        allow(
            resource=arn + "*",
            Condition={"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
        ),
        allow(action="ec2:DescribeInstances"),
        deny(resource=arn + vetoed.id),
    )
    return {
        "mine": mine,
        "theirs": theirs,
        "stopped": stopped,
        "arm": arm,
        "vetoed": vetoed,
        "dave": dave,
    }


def aws(service, creds, *args, secret=None):
    if not Path(AWS).exists():
        pytest.fail(f"the aws CLI is not installed at {AWS} (pip install awscli)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": creds.key_id,
        "AWS_SECRET_ACCESS_KEY": secret or creds.secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    return subprocess.run(
        [AWS, "ec2", *args, "--endpoint-url", service.url],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_send_allowed_prints_nothing(service, world):
    before = len(service.backend.sent)
    done = aws(
        service, world["dave"], "send-diagnostic-interrupt", "--instance-id", world["mine"].id
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert service.backend.sent[before:] == [world["mine"].id]
    rows = service.store.audit_rows(instance_id=world["mine"].id)
    assert rows[-1].outcome == "sent"
    assert rows[-1].principal.endswith(":user/dave")


def test_send_denied_by_tag_condition(service, world):
    done = aws(
        service, world["dave"], "send-diagnostic-interrupt", "--instance-id", world["theirs"].id
    )
    assert done.returncode != 0
    assert "UnauthorizedOperation" in done.stderr
    assert service.store.audit_rows(instance_id=world["theirs"].id)[-1].outcome == "denied"


def test_dry_run(service, world):
    done = aws(
        service,
        world["dave"],
        "send-diagnostic-interrupt",
        "--instance-id",
        world["mine"].id,
        "--dry-run",
    )
    assert done.returncode != 0
    assert "DryRunOperation" in done.stderr
    assert service.store.audit_rows(instance_id=world["mine"].id)[-1].outcome == "dry-run"


def test_bad_secret(service, world):
    done = aws(
        service,
        world["dave"],
        "send-diagnostic-interrupt",
        "--instance-id",
        world["mine"].id,
        secret="x" * 40,
    )
    assert done.returncode != 0
    assert "AuthFailure" in done.stderr


def test_describe_instances_with_tag_filter(service, world):
    done = aws(
        service,
        world["dave"],
        "describe-instances",
        "--filters",
        "Name=tag:Owner,Values=erin",
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    listed = [
        i["InstanceId"] for r in json.loads(done.stdout)["Reservations"] for i in r["Instances"]
    ]
    assert listed == [world["theirs"].id]


@pytest.mark.parametrize(
    "case",
    [
        ("vetoed", [], "UnauthorizedOperation", "denied"),
        ("theirs", ["--dry-run"], "UnauthorizedOperation", "denied"),
        ("stopped", [], "IncorrectInstanceState", "rejected"),
        ("arm", [], "UnsupportedOperation", "rejected"),
        # unknown: no tags, so the tag condition denies; "not found" is not revealed
        ("i-0000000000000000f", [], "UnauthorizedOperation", "denied"),
        ("i-nothex", [], "InvalidInstanceID.Malformed", "rejected"),
    ],
)
def test_send_errors(service, world, case):
    which, extra, code, outcome = case
    instance_id = world[which].id if which in world else which
    before = len(service.backend.sent)
    done = aws(
        service, world["dave"], "send-diagnostic-interrupt", "--instance-id", instance_id, *extra
    )
    assert done.returncode != 0
    assert f"({code})" in done.stderr
    assert len(service.backend.sent) == before
    rows = service.store.audit_rows(instance_id=instance_id)
    assert rows[-1].error_code == code
    if outcome is not None:
        assert rows[-1].outcome == outcome
