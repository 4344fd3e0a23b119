"""The store on SQLite and PostgreSQL: users, keys, policies, instances, audit, migrations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

from kdiag.errors import (
    ConfigError,
    EntityAlreadyExists,
    InvalidInstanceIDMalformed,
    NoSuchEntity,
)
from kdiag.store import AuditEntry, Store
from kdiag.store.ids import INSTANCE_ID
from kdiag.store.migrate import HEAD, MIGRATIONS, current_revision, downgrade, upgrade
from kdiag.store.models import Base

ALLOW = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}],
}


@contextmanager
def engine_for(db_url: str) -> Iterator[Engine]:
    """An engine of the test's own on the store's database (the store's is private)."""
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_open_migrates_to_head_and_is_idempotent(store, db_url):
    with engine_for(db_url) as engine:
        assert current_revision(engine) == HEAD
    store.create_user("alice")
    again = Store.open(db_url)
    try:
        assert [u.name for u in again.list_users()] == ["alice"]
    finally:
        again.close()


def test_migration_matches_models(store, db_url):
    with engine_for(db_url) as engine, engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_default_location_is_private(state_dir):
    with Store.open() as s:
        assert s.dialect == "sqlite"
        s.create_user("bob")
    db = state_dir / "kdiag.db"
    key = state_dir / "kdiag.key"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_kdiag_db_env_is_honoured(state_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KDIAG_DB", str(tmp_path / "elsewhere.db"))
    with Store.open() as s:
        s.create_user("carol")
    assert (tmp_path / "elsewhere.db").exists()
    assert not (state_dir / "kdiag.db").exists()


def test_bad_url_is_a_config_error(state_dir):
    with pytest.raises(ConfigError, match="unsupported database"):
        Store.open("mysql://root@localhost/x")


def test_users(store):
    alice = store.create_user("alice")
    assert alice.id.startswith("AIDA")
    assert alice.arn == f"arn:aws:iam::{store.default_account().id}:user/alice"
    with pytest.raises(EntityAlreadyExists):
        store.create_user("alice")
    with pytest.raises(ConfigError):
        store.create_user("no spaces")
    store.create_user("bob")
    assert [u.name for u in store.list_users()] == ["alice", "bob"]
    assert store.get_user("nobody") is None
    with pytest.raises(NoSuchEntity):
        store.user("nobody")
    with pytest.raises(dataclasses.FrozenInstanceError):
        alice.name = "mallory"  # type: ignore[misc]
    store.delete_user("bob")
    assert [u.name for u in store.list_users()] == ["alice"]


def test_accounts_are_separate(store):
    other = store.create_account("other", account_id="111122223333")
    store.create_user("alice")
    store.create_user("alice", account_id=other.id)
    assert store.get_user("alice", account_id=other.id).account_id == "111122223333"
    assert store.default_account().id != other.id
    with pytest.raises(NoSuchEntity):
        store.create_user("x", account_id="999999999999")


def test_access_keys_are_encrypted_at_rest(store, db_url):
    store.create_user("alice")
    key, secret = store.create_access_key("alice")
    assert key.id.startswith("AKIA")
    assert len(key.id) == 20
    assert len(secret) == 40
    found = store.lookup_access_key(key.id)
    assert found is not None
    got_key, user, got_secret = found
    assert (got_key.id, user.name, got_secret) == (key.id, "alice", secret)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            dumped = json.dumps(
                [list(map(str, r)) for r in conn.execute(text("SELECT * FROM access_keys"))]
            )
    finally:
        engine.dispose()
    assert secret not in dumped
    assert key.id in dumped
    assert secret not in repr(key)


def test_inactive_and_unknown_keys_look_alike(store):
    store.create_user("alice")
    key, _ = store.create_access_key("alice")
    store.set_access_key_status(key.id, "Inactive")
    assert store.lookup_access_key(key.id) is None
    assert store.lookup_access_key("AKIAAAAAAAAAAAAAAAAA") is None
    store.set_access_key_status(key.id, "Active")
    assert store.lookup_access_key(key.id) is not None
    assert [k.id for k in store.list_access_keys("alice")] == [key.id]
    store.delete_access_key(key.id)
    assert store.list_access_keys() == []
    with pytest.raises(NoSuchEntity):
        store.delete_access_key(key.id)


def test_wrong_key_file_cannot_decrypt(store, db_url, tmp_path):
    store.create_user("alice")
    key, _ = store.create_access_key("alice")
    with (
        Store.open(db_url, key_file=tmp_path / "other.key") as other,
        pytest.raises(ConfigError, match="cannot be decrypted"),
    ):
        other.lookup_access_key(key.id)


def test_key_file_with_loose_mode_is_refused(state_dir, tmp_path):
    loose = tmp_path / "loose.key"
    loose.write_bytes(b"x" * 44)
    os.chmod(loose, 0o644)
    with pytest.raises(ConfigError, match="mode 0644"):
        Store.open(f"sqlite:///{tmp_path / 'k.db'}", key_file=loose)


def test_inline_policies(store):
    store.create_user("alice")
    store.put_user_policy("alice", "b-policy", ALLOW)
    store.put_user_policy("alice", "a-policy", json.dumps(ALLOW))
    assert list(store.get_user_policies("alice")) == ["a-policy", "b-policy"]
    assert [json.loads(p) for p in store.get_user_policies("alice").values()] == [ALLOW, ALLOW]
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
    }
    store.put_user_policy("alice", "a-policy", deny)
    assert json.loads(store.get_user_policies("alice")["a-policy"]) == deny
    with pytest.raises(ConfigError):
        store.put_user_policy(
            "alice", "bad", {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}
        )
    with pytest.raises(ConfigError):
        store.put_user_policy("alice", "bad", "{not json")
    assert "bad" not in store.get_user_policies("alice")
    store.delete_user_policy("alice", "a-policy")
    assert list(store.get_user_policies("alice")) == ["b-policy"]
    with pytest.raises(NoSuchEntity):
        store.put_user_policy("nobody", "p", ALLOW)


def test_instances(store):
    inst = store.add_instance(
        backend="fake", target={"address": "x"}, tags={"Owner": "alice", "env": "prod"}
    )
    assert INSTANCE_ID.fullmatch(inst.id)
    assert len(inst.id) == 19
    assert inst.availability_zone == "us-east-1a"
    assert inst.arn == f"arn:aws:ec2:us-east-1:{inst.account_id}:instance/{inst.id}"
    assert store.get_instance(inst.id) == inst
    arm = store.add_instance(
        backend="qmp",
        target={"address": "/run/a.qmp"},
        instance_id="i-0123456789abcdef0",
        region="eu-west-1",
        availability_zone="eu-west-1b",
        arch="aarch64",
        state="stopped",
    )
    assert arm.arch == "arm64"
    with pytest.raises(EntityAlreadyExists):
        store.add_instance(backend="fake", target={}, instance_id="i-0123456789abcdef0")
    with pytest.raises(InvalidInstanceIDMalformed):
        store.add_instance(backend="fake", target={}, instance_id="i-XYZ")
    with pytest.raises(ConfigError):
        store.add_instance(backend="fake", target={}, state="sleeping")
    with pytest.raises(ConfigError):
        store.add_instance(
            backend="fake", target={}, region="us-east-1", availability_zone="eu-west-1a"
        )
    assert [i.id for i in store.list_instances()] == sorted([inst.id, arm.id])
    assert [i.id for i in store.list_instances(filters={"tag:Owner": ["al*"]})] == [inst.id]
    assert store.list_instances(filters={"tag:Owner": ["bob"]}) == []
    assert [i.id for i in store.list_instances(filters={"instance-state-name": ["stopped"]})] == [
        arm.id
    ]
    assert [i.id for i in store.list_instances(filters={"tag-key": ["env"]})] == [inst.id]
    assert [i.id for i in store.list_instances(ids=[arm.id])] == [arm.id]
    assert [i.id for i in store.list_instances(region="eu-west-1")] == [arm.id]
    with pytest.raises(ConfigError):
        store.list_instances(filters={"flavour": ["x"]})
    assert store.set_instance_state(arm.id, "running").state == "running"
    store.remove_instance(arm.id)
    assert store.get_instance(arm.id) is None
    with pytest.raises(NoSuchEntity):
        store.remove_instance(arm.id)
    with pytest.raises(TypeError):
        inst.tags["Owner"] = "mallory"  # type: ignore[index]


def test_audit_rows(store):
    t0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    first = store.record_audit(
        AuditEntry(
            action="SendDiagnosticInterrupt",
            outcome="denied",
            time=t0,
            error_code="UnauthorizedOperation",
            decision="deny",
        )
    )
    pending = store.start_audit(
        AuditEntry(
            action="SendDiagnosticInterrupt",
            outcome="ignored",
            time=t0 + dt.timedelta(hours=1),
            instance_id="i-0123456789abcdef0",
            dry_run=False,
        )
    )
    rows = store.audit_rows()
    assert [r.id for r in rows] == [first, pending]
    assert rows[1].outcome == "pending"
    store.finish_audit(pending, outcome="sent", latency_ms=2.5, message="ok")
    rows = store.audit_rows(since=t0 + dt.timedelta(minutes=30))
    assert [(r.id, r.outcome, r.latency_ms) for r in rows] == [(pending, "sent", 2.5)]
    assert rows[0].time == t0 + dt.timedelta(hours=1)
    assert rows[0].time.tzinfo is not None
    assert [r.id for r in store.audit_rows(limit=1)] == [pending]
    assert store.audit_rows(instance_id="i-0123456789abcdef0")[0].id == pending
    assert rows[0].to_json()["time"] == "2026-01-01T13:00:00Z"
    with pytest.raises(NoSuchEntity):
        store.finish_audit(10_000, outcome="sent")


def test_concurrent_writers(store):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                aid = store.start_audit(
                    AuditEntry(action="SendDiagnosticInterrupt", outcome="x", request_id=f"{n}-{i}")
                )
                store.finish_audit(aid, outcome="sent")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store.audit_rows()
    assert len(rows) == 150
    assert {r.outcome for r in rows} == {"sent"}


def test_head_constant_is_the_newest_migration():
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD]


def test_downgrade_and_upgrade_again(db_url, state_dir):
    with Store.open(db_url) as s, engine_for(db_url) as engine:
        s.create_user("alice")
        downgrade(engine)
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == HEAD
        assert s.list_users() == []
        assert s.default_account().name == "default"


def test_in_memory_sqlite_is_one_database_for_all_threads(state_dir):
    with Store.open("sqlite:///:memory:") as s:
        s.create_user("alice")
        seen: list[list[str]] = []
        t = threading.Thread(target=lambda: seen.append([u.name for u in s.list_users()]))
        t.start()
        t.join()
        assert seen == [["alice"]]


def test_secret_looking_target_settings_are_refused_not_stored(store):
    # Targets hold no secrets (tests/store/test_target_secrets.py tries every way).
    with pytest.raises(ConfigError, match='"password" looks like a secret') as caught:
        store.add_instance(backend="fake", target={"address": "bmc", "password": "hunter2"})
    assert "hunter2" not in str(caught.value)
    assert store.list_instances() == []
