"""Targets hold no secrets: every way of storing one is refused without echoing it, and
whatever shows target values (records, audit rows) masks them as a second defence."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from kdiag.backends.base import check_target
from kdiag.backends.credentials import masked_settings
from kdiag.backends.fake import FakeSettings
from kdiag.errors import ConfigError
from kdiag.store import AuditEntry
from kdiag.store.records import Instance

SECRET = "hunter2-Zq8xV-s3cr3t"

#: Every shape of secret a target could carry.
SECRET_TARGETS = [
    {"password": SECRET},
    {"Password": SECRET},
    {"PASSWD": SECRET},
    {"auth": {"password": SECRET}},
    {"auth": {"user": "admin", "pass": SECRET}},
    {"x-api-key": SECRET},
    {"API_KEY": SECRET},
    {"apiKey": SECRET},
    {"private_key": SECRET},
    {"ssh": {"PrivateKey": SECRET}},
    {"client_secret": SECRET},
    {"SecretAccessKey": SECRET},
    {"token": SECRET},
    {"headers": {"Authorization": f"Bearer {SECRET}"}},
    {"hosts": [{"name": "bmc", "token": SECRET}]},
    {"key": SECRET},
    {"url": f"https://admin:{SECRET}@bmc.example/redfish/v1"},
    {"urls": ["https://bmc.example/", f"ipmi://root:{SECRET}@10.0.0.1:623"]},
    {"address": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----"},
    {"credentials": SECRET},
    {"credentials": {"username": "admin", "password": SECRET}},
    {"nested": {"deeper": [{"deepest": {"Api-Token": SECRET}}]}},
    {f"https://admin:{SECRET}@bmc.example": "a key that is a URL"},
]


@pytest.mark.parametrize("target", SECRET_TARGETS, ids=lambda t: json.dumps(t)[:40])
def test_store_refuses_secrets_without_echoing_them(store, caplog, target):
    caplog.set_level(logging.DEBUG)
    for backend in ("fake", "qmp"):
        with pytest.raises(ConfigError) as caught:
            store.add_instance(backend=backend, target=target)
        message = str(caught.value)
        assert SECRET not in message
        assert "looks like a secret" in message
        assert '"credentials": "file:/path" or "env:PREFIX"' in message
    assert store.list_instances() == []
    assert SECRET not in caplog.text


@pytest.mark.parametrize("target", SECRET_TARGETS, ids=lambda t: json.dumps(t)[:40])
def test_the_backends_own_parser_refuses_them_too(target):
    # TargetSettings.parse is the one parser: a caller that skips the store is covered.
    with pytest.raises(ConfigError) as caught:
        FakeSettings.parse(target)
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        check_target("qmp", {"address": "/run/vm.qmp", **target})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("target", SECRET_TARGETS, ids=lambda t: json.dumps(t)[:40])
def test_records_mask_secrets_that_reached_a_row_anyway(target):
    # A row written by hand or by an older kdiag: to_json (instances list) masks it.
    inst = Instance(
        id="i-0123456789abcdef0",
        account_id="123456789012",
        region="us-east-1",
        availability_zone="us-east-1a",
        backend="fake",
        target=target,
        arch="x86_64",
        state="running",
        tags={},
        created_at=dt.datetime.now(dt.UTC),
    )
    assert SECRET not in json.dumps(inst.to_json())
    assert SECRET not in json.dumps(masked_settings(target))


def test_references_and_plain_settings_are_stored_and_shown(store):
    target = {
        "address": "https://admin@bmc.example/redfish",  # a user name alone is no secret
        "credentials": "file:/etc/kdiag/bmc.cred",
        "keyboard": "us",
        "record": "/tmp/x",
    }
    inst = store.add_instance(backend="fake", target=target)
    assert inst.to_json()["Target"] == target
    assert store.get_instance(inst.id).target == target
    env = store.add_instance(backend="fake", target={"credentials": "env:BMC"})
    assert env.to_json()["Target"] == {"credentials": "env:BMC"}


@pytest.mark.parametrize("bad", ["file:relative/path", "file:", "env:1BAD", "env:", "env:A-B"])
def test_a_malformed_reference_is_refused(store, bad):
    with pytest.raises(ConfigError, match='"credentials" must be "file:/absolute/path"'):
        store.add_instance(backend="fake", target={"credentials": bad})


def test_audit_rows_mask_a_secret_in_a_message(store):
    message = f"redfish: cannot connect to https://admin:{SECRET}@bmc.example/redfish"
    store.record_audit(
        AuditEntry(action="SendDiagnosticInterrupt", outcome="failed", message=message)
    )
    row_id = store.start_audit(AuditEntry(action="SendDiagnosticInterrupt", outcome="pending"))
    store.finish_audit(row_id, outcome="failed", message=message)
    rows = store.audit_rows()
    assert len(rows) == 2
    for row in rows:
        assert SECRET not in json.dumps(row.to_json())
        assert row.message is not None
        assert "https://admin:***@bmc.example/redfish" in row.message
