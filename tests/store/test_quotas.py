"""IAM's quotas and the key and policy operations the CLI offers, on SQLite and PostgreSQL.

Two access keys per user (active or not); all of a user's inline policies together at most
2,048 characters, whitespace not counted; both hold under concurrent writers.
"""

from __future__ import annotations

import json
import threading

import pytest

from kdiag.errors import ConfigError, LimitExceeded, NoSuchEntity, PolicyError
from kdiag.policy import USER_POLICY_SIZE_LIMIT, policy_size
from kdiag.store import Store
from kdiag.store.identity import ACCESS_KEYS_PER_USER


def sized_policy(size: int) -> str:
    """A compact valid policy of exactly ``size`` non-whitespace characters."""
    head = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:'
    tail = '","Resource":"*"}}'
    text = head + "A" * (size - len(head) - len(tail)) + tail
    assert policy_size(text) == size
    return text


def test_a_third_access_key_is_refused(store):
    store.create_user("alice")
    first, _ = store.create_access_key("alice")
    store.create_access_key("alice")
    store.set_access_key_status(first.id, "Inactive")  # inactive keys count too, as in IAM
    with pytest.raises(LimitExceeded, match="already has 2 access keys") as info:
        store.create_access_key("alice")
    assert (info.value.code, info.value.exit_code) == ("LimitExceeded", 2)
    assert len(store.list_access_keys("alice")) == ACCESS_KEYS_PER_USER
    store.delete_access_key(first.id)
    store.create_access_key("alice")
    store.create_user("bob")  # the quota is per user
    store.create_access_key("bob")


def test_concurrent_key_creation_stays_within_the_quota(db_url):
    with Store.open(db_url) as setup:
        setup.create_user("alice")
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        with Store.open(db_url) as store:
            barrier.wait()
            try:
                store.create_access_key("alice")
                outcomes.append("created")
            except LimitExceeded:
                outcomes.append("refused")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] * 2 + ["refused"] * 4
    with Store.open(db_url) as store:
        assert len(store.list_access_keys("alice")) == 2


def test_inline_policy_size_is_counted_per_user_without_whitespace(store):
    store.create_user("alice")
    store.put_user_policy("alice", "big", sized_policy(USER_POLICY_SIZE_LIMIT))
    pretty = json.dumps(json.loads(sized_policy(USER_POLICY_SIZE_LIMIT)), indent=8)
    store.put_user_policy("alice", "big", pretty)  # replacing: only the new text counts
    with pytest.raises(LimitExceeded, match="would total 2,049 characters") as info:
        store.put_user_policy("alice", "big", sized_policy(USER_POLICY_SIZE_LIMIT + 1))
    assert "2,048" in str(info.value)
    with pytest.raises(LimitExceeded, match="would total 2,148"):
        store.put_user_policy("alice", "second", sized_policy(100))
    assert list(store.get_user_policies("alice")) == ["big"]
    store.put_user_policy("alice", "big", sized_policy(1948))
    store.put_user_policy("alice", "second", sized_policy(100))  # 1,948 + 100 = 2,048
    store.create_user("bob")
    store.put_user_policy("bob", "big", sized_policy(USER_POLICY_SIZE_LIMIT))


def test_a_malformed_policy_is_refused_before_the_quota(store):
    store.create_user("alice")
    with pytest.raises(PolicyError, match="nested more than"):
        store.put_user_policy("alice", "deep", "[" * 60_000 + "]" * 60_000)
    with pytest.raises(PolicyError):
        store.put_user_policy("alice", "deep", '{"a":' * 50 + "1" + "}" * 50)


def test_get_user_policy(store):
    store.create_user("alice")
    text = sized_policy(200)
    store.put_user_policy("alice", "p", text)
    assert store.get_user_policy("alice", "p") == text
    with pytest.raises(NoSuchEntity, match="has no policy 'q'"):
        store.get_user_policy("alice", "q")
    with pytest.raises(NoSuchEntity, match="no user named 'bob'"):
        store.get_user_policy("bob", "p")


def test_key_status_and_deletion_check_the_owner(store):
    store.create_user("alice")
    store.create_user("bob")
    key, _ = store.create_access_key("alice")
    with pytest.raises(NoSuchEntity, match=f"no access key {key.id} of user 'bob'"):
        store.set_access_key_status(key.id, "Inactive", user="bob")
    assert store.lookup_access_key(key.id) is not None
    store.set_access_key_status(key.id, "Inactive", user="alice")
    assert store.lookup_access_key(key.id) is None
    assert [k.status for k in store.list_access_keys("alice")] == ["Inactive"]
    with pytest.raises(NoSuchEntity):
        store.set_access_key_status("AKIAAAAAAAAAAAAAAAAA", "Active")
    with pytest.raises(NoSuchEntity, match="of user 'bob'"):
        store.delete_access_key(key.id, user="bob")
    store.delete_access_key(key.id, user="alice")
    assert store.list_access_keys("alice") == []


@pytest.mark.parametrize(
    ("where", "message"),
    [("missing/dir/k.key", "No such file or directory"), ("a-directory", "is a directory")],
)
def test_an_unusable_key_file_is_a_config_error(tmp_path, where, message):
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(ConfigError, match=message):
        Store.open(f"sqlite:///{tmp_path / 'k.db'}", key_file=tmp_path / where)
