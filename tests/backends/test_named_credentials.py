"""Named credentials (``kdiag credentials``, ``"credentials": "name:NAME"``): sealed in the
database, resolved by the backend at delivery time through the instance's account, and never
shown: not in the database in clear, not in a log, an error, an audit row or a listing."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from kdiag.backends.base import Target
from kdiag.backends.credentials import CredentialsRef
from kdiag.backends.fake import FakeBackend
from kdiag.cli import main as cli_main
from kdiag.errors import BackendUnavailable, ConfigError, NoSuchEntity
from kdiag.interrupts import Caller, InterruptRequest, send_diagnostic_interrupt
from kdiag.store import Store
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir", "store")

PASSWORD = "Vq3-hunter2-n4med-s3cr3t"
ROTATED = "Zx9-second-n4med-s3cr3t"
KDIAG = str(Path(sys.executable).with_name("kdiag"))


def every_stored_value(db_url: str) -> str:
    """Every row of every table, as text: what someone reading the database sees."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            return "\n".join(
                repr(row)
                for table in tables
                for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            )
    finally:
        engine.dispose()


def test_set_list_replace_delete(store):
    stored, created = store.set_credentials("bmc-1", username="admin", password=PASSWORD)
    assert created
    assert (stored.name, stored.username) == ("bmc-1", "admin")
    again, created = store.set_credentials("bmc-1", username="root", password=ROTATED)
    assert not created
    assert again.created_at == stored.created_at
    assert again.updated_at >= stored.updated_at
    store.set_credentials("a-first", username="ops", password=PASSWORD)
    listed = store.list_credentials()
    assert [(c.name, c.username) for c in listed] == [("a-first", "ops"), ("bmc-1", "root")]
    assert PASSWORD not in repr(listed)
    assert ROTATED not in repr(listed)
    assert PASSWORD not in json.dumps([c.to_json() for c in listed])
    opened = store.open_credentials("bmc-1")
    assert (opened.username, opened.password) == ("root", ROTATED)
    assert ROTATED not in repr(opened)
    store.delete_credentials("bmc-1")
    with pytest.raises(NoSuchEntity, match="no credentials named 'bmc-1'"):
        store.delete_credentials("bmc-1")
    with pytest.raises(NoSuchEntity):
        store.open_credentials("bmc-1")
    assert [c.name for c in store.list_credentials()] == ["a-first"]


def test_the_password_is_sealed_at_rest(store, db_url):
    store.set_credentials("bmc-1", username="admin", password=PASSWORD)
    dumped = every_stored_value(db_url)
    assert "admin" in dumped  # the oracle sees the rows ...
    assert PASSWORD not in dumped  # ... and no password in clear
    assert "gAAAA" in dumped  # a Fernet token instead
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        for part in path.parent.glob(path.name + "*"):  # the file, its WAL and shm
            assert PASSWORD.encode() not in part.read_bytes(), part


def test_another_key_file_cannot_unseal(store, db_url, tmp_path):
    store.set_credentials("bmc-1", username="admin", password=PASSWORD)
    other = Store.open(db_url, key_file=tmp_path / "other.key")
    try:
        with pytest.raises(ConfigError, match="cannot be decrypted") as caught:
            other.open_credentials("bmc-1")
        assert PASSWORD not in str(caught.value)
    finally:
        other.close()


@pytest.mark.parametrize(
    ("name", "username", "password"),
    [
        ("", "admin", PASSWORD),
        ("has space", "admin", PASSWORD),
        ("file:/etc/x", "admin", PASSWORD),
        ("-leading-dash", "admin", PASSWORD),
        ("n" * 65, "admin", PASSWORD),
        ("ok", "", PASSWORD),
        ("ok", "ad\nmin", PASSWORD),
        ("ok", "u" * 257, PASSWORD),
        ("ok", "admin", ""),
        ("ok", "admin", "p" * 1025),
        ("ok", "admin", "nul\x00byte"),
    ],
)
def test_bad_input_is_refused_without_quoting_the_password(store, name, username, password):
    with pytest.raises(ConfigError) as caught:
        store.set_credentials(name, username=username, password=password)
    assert password == "" or password not in str(caught.value)
    assert store.list_credentials() == []


def test_a_target_names_stored_credentials_of_its_own_account(store):
    store.set_credentials("bmc-1", username="admin", password=PASSWORD)
    with pytest.raises(ConfigError, match="names no stored credentials") as caught:
        store.add_instance(backend="fake", target={"credentials": "name:bmc-2"})
    assert "bmc-2" not in str(caught.value)
    inst = store.add_instance(backend="fake", target={"credentials": "name:bmc-1"})
    assert inst.target == {"credentials": "name:bmc-1"}
    # Another account neither registers against them nor opens them.
    other = store.create_account("tenant-b")
    with pytest.raises(ConfigError, match="names no stored credentials"):
        store.add_instance(
            backend="fake", target={"credentials": "name:bmc-1"}, account_id=other.id
        )
    with pytest.raises(NoSuchEntity):
        store.credentials_vault(other.id).open_credentials("bmc-1")
    assert store.credentials_vault(inst.account_id).open_credentials("bmc-1").password == PASSWORD


def test_delete_is_refused_while_an_instance_names_them(store):
    store.set_credentials("bmc-1", username="admin", password=PASSWORD)
    inst = store.add_instance(backend="fake", target={"credentials": "name:bmc-1"})
    with pytest.raises(ConfigError, match=f"named by 1 instance.*{inst.id}"):
        store.delete_credentials("bmc-1")
    store.delete_credentials("bmc-1", force=True)
    assert store.list_credentials() == []


@pytest.mark.parametrize("bare", ["bmc-1", "name:", "name:has space", "name:" + "n" * 65])
def test_a_reference_needs_its_prefix_and_a_valid_name(bare):
    with pytest.raises(ConfigError, match='"name:NAME"') as caught:
        CredentialsRef.parse(bare)
    assert bare == "name:" or bare not in str(caught.value)


def test_without_a_vault_a_named_reference_does_not_resolve():
    ref = CredentialsRef.parse("name:bmc-1")
    assert (ref.kind, ref.location, str(ref)) == ("name", "bmc-1", "name:bmc-1")
    with pytest.raises(ConfigError, match="kept in kdiag's database"):
        ref.resolve()
    backend = FakeBackend(require_credentials=True)
    with pytest.raises(BackendUnavailable, match="kept in kdiag's database"):
        backend.send_nmi(Target("i-0123456789abcdef0", {"credentials": "name:bmc-1"}))
    assert backend.sent == []


ALLOW_ALL = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}],
    }
)


def _send(store: Store, backend: FakeBackend, instance_id: str):
    user = store.get_user("root") or store.create_user("root")
    store.put_user_policy(user, "all", ALLOW_ALL)
    caller = Caller(user.account_id, "root", user.id, None, "127.0.0.1")
    return send_diagnostic_interrupt(
        store, InterruptRequest(caller, instance_id), backends={"fake": backend}
    )


def test_delivery_unseals_them_at_delivery_time_and_shows_them_nowhere(store, db_url, caplog):
    caplog.set_level(logging.DEBUG)
    store.set_credentials("bmc-1", username="admin", password=PASSWORD)
    inst = store.add_instance(backend="fake", target={"credentials": "name:bmc-1"})
    backend = FakeBackend(require_credentials=True)
    _send(store, backend, inst.id)
    store.set_credentials("bmc-1", username="admin", password=ROTATED)  # rotated
    _send(store, backend, inst.id)
    used = [c.credentials for c in backend.calls if c.verb == "send_nmi"]
    assert [(c.username, c.password) for c in used if c] == [
        ("admin", PASSWORD),
        ("admin", ROTATED),
    ]
    # Deleted while named (forced): the next delivery fails, naming the reference only.
    store.delete_credentials("bmc-1", force=True)
    with pytest.raises(BackendUnavailable, match="no credentials named 'bmc-1'") as caught:
        _send(store, backend, inst.id)
    rows = store.audit_rows()
    assert [r.outcome for r in rows][-3:] == ["sent", "sent", "failed"]
    shown = " ".join(
        [str(caught.value), repr(rows), caplog.text, repr(store.list_instances())]
        + [json.dumps(i.to_json()) for i in store.list_instances()]
        + [every_stored_value(db_url)]
    )
    for secret in (PASSWORD, ROTATED):
        assert secret not in shown


def run_cli(db: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [KDIAG, *args, "--db", db],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def kdiag(state_dir, tmp_path, capsys, monkeypatch):
    """``kdiag ARGS`` in this process, standard input from bytes; (exit code, output)."""
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    def run(*args: str, stdin: bytes = b"") -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        rc = cli_main.run([*args, "--db", db])
        out, err = capsys.readouterr()
        return rc, out + err

    run.db = db  # type: ignore[attr-defined]
    return run


SET = ("credentials", "set", "bmc-1", "--username", "admin", "--password-stdin")


@pytest.mark.parametrize(
    ("stdin", "why"),
    [
        (b"", "standard input is empty"),
        (b"\n", "standard input is empty"),
        (b"one\ntwo\n", "single line"),
        (b"x" * 5000, "more than 4096 bytes"),
        (b"\xff\xfe\n", "not UTF-8"),
    ],
)
def test_the_cli_refuses_bad_standard_input(kdiag, stdin, why):
    rc, out = kdiag(*SET, stdin=stdin)
    assert rc == 2
    assert why in out
    assert "Traceback" not in out
    assert kdiag("credentials", "list", "--json") == (0, '{\n  "Credentials": []\n}\n')


def test_the_cli_reads_the_password_from_stdin_only(kdiag):
    rc, out = kdiag(*SET[:-1], stdin=PASSWORD.encode())
    assert rc == 2
    assert "--password-stdin" in out
    # Through a real pipe, as a shell runs it.
    first = run_cli(kdiag.db, *SET, stdin=PASSWORD.encode() + b"\n")
    assert (first.returncode, first.stdout) == (0, b"stored credentials bmc-1\n"), first.stderr
    assert kdiag(*SET, stdin=ROTATED.encode() + b"\r\n") == (0, "replaced credentials bmc-1\n")
    listed = run_cli(kdiag.db, "credentials", "list", "--json")
    assert [(c["Name"], c["Username"]) for c in json.loads(listed.stdout)["Credentials"]] == [
        ("bmc-1", "admin")
    ]
    outputs = [listed.stdout.decode(), first.stderr.decode()]
    rc, table = kdiag("credentials", "list", "--output", "table")
    assert "bmc-1" in table
    assert "admin" in table
    target = '{"credentials":"name:bmc-1"}'
    rc, out = kdiag("instances", "add", "--backend", "fake", "--target", target)
    assert rc == 0, out
    rc, instances = kdiag("instances", "list", "--json")
    assert '"credentials": "name:bmc-1"' in instances
    rc, refused = kdiag("credentials", "delete", "bmc-1")
    assert rc == 2
    assert "named by 1 instance" in refused
    assert kdiag("credentials", "delete", "bmc-1", "--force") == (0, "")
    rc, unknown = kdiag("credentials", "delete", "bmc-1")
    assert rc == 2
    assert "(NoSuchEntity)" in unknown
    for shown in [*outputs, table, instances, refused, unknown]:
        assert PASSWORD not in shown
        assert ROTATED not in shown
