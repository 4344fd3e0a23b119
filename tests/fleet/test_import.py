"""``kdiag instances import -i INVENTORY``: real ansible-inventory parses a YAML inventory
with kdiag_* variables and EC2-plugin-shaped ones; the store gets each instance once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdiag.cli.main import run
from kdiag.store import Store

INVENTORY = """\
all:
  children:
    lab:
      hosts:
        qmp1:
          kdiag_backend: qmp
          kdiag_target: /run/kdiag/qmp1.sock
          kdiag_tags: {team: kernel}
        fake1:
          kdiag_backend: fake
          kdiag_target: {address: fake1}
          kdiag_arch: aarch64
          kdiag_region: eu-west-1
    ec2:
      hosts:
        web-1.example:
          instance_id: i-0123456789abcdef0
          architecture: x86_64
          placement: {region: eu-central-1, availability_zone: eu-central-1b}
    odd:
      hosts:
        plain.example: {}
        secretive:
          kdiag_backend: fake
          kdiag_target: {address: x, password: hunter2}
        badid:
          instance_id: not-an-id
          placement: {region: us-east-1}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    return path


def test_import_registers_what_the_host_vars_say(
    inventory: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["instances", "import", "-i", str(inventory), "--json"]) == 0
    hosts = {h["host"]: h for h in json.loads(capsys.readouterr().out)["Hosts"]}
    assert {h: o["status"] for h, o in hosts.items()} == {
        "qmp1": "added",
        "fake1": "added",
        "web-1.example": "added",
        "plain.example": "skipped",
        "secretive": "skipped",
        "badid": "skipped",
    }
    assert "password" in hosts["secretive"]["reason"]
    assert "hunter2" not in json.dumps(hosts)
    assert hosts["web-1.example"]["instance_id"] == "i-0123456789abcdef0"
    with Store.open() as store:
        by_name = {i.tags["Name"]: i for i in store.list_instances()}
    assert set(by_name) == {"qmp1", "fake1", "web-1.example"}
    ec2 = by_name["web-1.example"]
    assert (ec2.backend, ec2.region, ec2.availability_zone) == (
        "aws",
        "eu-central-1",
        "eu-central-1b",
    )
    assert dict(ec2.target) == {"region": "eu-central-1", "instance_id": "i-0123456789abcdef0"}
    assert dict(by_name["qmp1"].target) == {"address": "/run/kdiag/qmp1.sock"}
    assert by_name["qmp1"].tags["team"] == "kernel"
    assert (by_name["fake1"].arch, by_name["fake1"].region) == ("arm64", "eu-west-1")
    # again: nothing new
    assert run(["instances", "import", "-i", str(inventory), "--json"]) == 0
    again = {h["host"]: h["status"] for h in json.loads(capsys.readouterr().out)["Hosts"]}
    assert [h for h, s in again.items() if s == "exists"] == ["fake1", "qmp1", "web-1.example"]
    with Store.open() as store:
        assert len(store.list_instances()) == 3


def test_dry_run_and_limit_store_nothing(
    inventory: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["instances", "import", "-i", str(inventory), "--limit", "ec2", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == ["web-1.example\twould-add\taws\ti-0123456789abcdef0"]
    with Store.open() as store:
        assert store.list_instances() == []
    assert run(["instances", "import", "-i", str(inventory.parent / "nope.yml")]) == 2
