"""Console sessions in the store (SQLite and PostgreSQL): the token is never stored, and a
session ends by sign-out, by its deadlines, and when its access key stops being active."""

import datetime as dt
import hashlib

from sqlalchemy import select

from kdiag.store.models import ConsoleSessionRow
from kdiag.store.sessions import MAX_TOKEN_CHARS, ConsoleSessions


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)

    def __call__(self):
        return self.now


def _user(store, name="alice"):
    user = store.create_user(name)
    key, _secret = store.create_access_key(user)
    return user, key


def test_only_the_tokens_hash_is_stored(store):
    user, key = _user(store)
    token, session = ConsoleSessions(store).create(user, key.id, "127.0.0.1")
    with store._read() as db:
        rows = db.scalars(select(ConsoleSessionRow)).all()
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert all(token not in (r.token_hash, r.csrf_token) for r in rows)
    assert session.csrf_token != token
    assert len(token) >= 43


def test_resume_sign_out_and_unknown_tokens(store):
    user, key = _user(store)
    sessions = ConsoleSessions(store)
    token, _session = sessions.create(user, key.id, None)
    assert sessions.resume(token).user_name == "alice"
    assert sessions.resume(token + "x") is None
    assert sessions.resume("") is None
    assert sessions.resume("a" * (MAX_TOKEN_CHARS + 1)) is None
    assert sessions.revoke(token) is True
    assert sessions.resume(token) is None
    assert sessions.revoke(token) is False


def test_deadlines_absolute_and_idle(store):
    user, key = _user(store)
    clock = Clock()
    sessions = ConsoleSessions(
        store, lifetime=dt.timedelta(hours=2), idle=dt.timedelta(minutes=30), clock=clock
    )
    token, _ = sessions.create(user, key.id, None)
    for _ in range(3):  # used every 25 minutes: the idle deadline moves on
        clock.now += dt.timedelta(minutes=25)
        assert sessions.resume(token) is not None
    clock.now += dt.timedelta(minutes=31)  # idle too long
    assert sessions.resume(token) is None
    token, _ = sessions.create(user, key.id, None)
    for _ in range(4):
        clock.now += dt.timedelta(minutes=29)
        assert sessions.resume(token) is not None
    clock.now += dt.timedelta(minutes=5)  # 2 h 1 min after creation
    assert sessions.resume(token) is None


def test_a_deactivated_or_deleted_key_ends_its_sessions(store):
    user, key = _user(store)
    sessions = ConsoleSessions(store)
    token, _ = sessions.create(user, key.id, None)
    store.set_access_key_status(key.id, "Inactive")
    assert sessions.resume(token) is None
    store.set_access_key_status(key.id, "Active")
    assert sessions.resume(token) is not None
    store.delete_access_key(key.id)
    assert sessions.resume(token) is None


def test_revoke_user_and_purge(store):
    user, key = _user(store)
    bob, bob_key = _user(store, "bob")
    clock = Clock()
    sessions = ConsoleSessions(store, clock=clock)
    tokens = [sessions.create(user, key.id, None)[0] for _ in range(3)]
    bob_token, _ = sessions.create(bob, bob_key.id, None)
    assert len(sessions.live(user.id)) == 3
    assert sessions.revoke_user(user.id) == 3
    assert all(sessions.resume(t) is None for t in tokens)
    assert sessions.resume(bob_token) is not None
    clock.now += dt.timedelta(days=2)
    assert sessions.purge() == 4
