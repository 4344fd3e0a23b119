"""``kdiag instances add/list`` and ``kdiag audit`` never print a target's secret: storing
one is refused (exit 2, the message names where, not what), and a credentials reference
is stored and listed as the reference it is."""

from __future__ import annotations

import json
import logging

import pytest

from kdiag.backends.fake import FakeBackend
from kdiag.cli import main as cli_main
from kdiag.errors import BackendUnavailable
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir
from tests.store.test_target_secrets import SECRET, SECRET_TARGETS

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir")


@pytest.fixture
def kdiag(db_url, capsys):
    seen: list[str] = []

    def run(*args: str, code: int = 0) -> str:
        rc = cli_main.run([*args, "--db", db_url])
        out, err = capsys.readouterr()
        seen.append(out + err)
        assert rc == code, (out, err)
        return out + err

    run.seen = seen  # type: ignore[attr-defined]
    return run


def test_instances_add_refuses_every_secret_and_list_shows_none(kdiag, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("COLUMNS", "300")
    for target in SECRET_TARGETS:
        err = kdiag("instances", "add", "--backend", "fake", "--target", json.dumps(target), code=2)
        assert "looks like a secret" in err, err
        assert "credentials" in err
    # A bare --target is an address: a URL with a password in it is refused the same way.
    err = kdiag(
        "instances", "add", "--backend", "fake", "--target", f"https://root:{SECRET}@bmc", code=2
    )
    assert 'setting "address" looks like a secret' in err
    kdiag("instances", "add", "--backend", "fake", "--target", '{"credentials": "env:BMC"}')
    listed = kdiag("instances", "list")
    assert "env:BMC" in listed
    assert json.loads(kdiag("instances", "list", "--json"))["Instances"][0]["Target"] == {
        "credentials": "env:BMC"
    }
    for text in kdiag.seen:
        assert SECRET not in text
    assert SECRET not in caplog.text


def test_a_file_reference_delivers_and_a_0644_file_fails_without_leaking(
    kdiag, db_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "300")
    cred = tmp_path / "bmc.cred"
    cred.write_text(json.dumps({"username": "admin", "password": SECRET}))
    cred.chmod(0o600)
    target = json.dumps({"credentials": f"file:{cred}"})
    iid = kdiag("instances", "add", "--backend", "fake", "--target", target).strip()
    assert f"file:{cred}" in kdiag("instances", "list")
    backend = FakeBackend(require_credentials=True)
    with Store.open(db_url) as store:
        store.create_user("root")
        user = store.user("root")
        caller = Caller(user.account_id, "root", user.id, None, "127.0.0.1")
        store.put_user_policy(
            user,
            "all",
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}],
                }
            ),
        )
        send_diagnostic_interrupt(store, InterruptRequest(caller, iid), backends={"fake": backend})
        assert [c.credentials.password for c in backend.calls if c.credentials] == [SECRET]
        cred.chmod(0o644)
        with pytest.raises(BackendUnavailable) as caught:
            send_diagnostic_interrupt(
                store, InterruptRequest(caller, iid), backends={"fake": backend}
            )
        assert "mode 0644" in str(caught.value)
        assert SECRET not in str(caught.value)
    assert backend.sent == [iid]
    audit = kdiag("audit", "--json")
    assert "mode 0644" in audit
    for text in kdiag.seen:
        assert SECRET not in text


def test_instances_add_help_documents_credentials_references(kdiag):
    text = kdiag("instances", "add", "--help")
    assert "file:/path" in text
    assert "env:PREFIX" in text
    assert "0600" in text
