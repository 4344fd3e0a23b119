"""Console sessions: a signed-in browser, kept server-side (kdiag console, issue 15).

The browser holds only a random token in an HttpOnly cookie; the store keeps its SHA-256
(a stolen database does not yield live cookies), the CSRF token of the session's forms,
who signed in with which access key, and two deadlines: an absolute one (``expires_at``)
and an idle one (``last_seen_at`` + ``idle``).  Sign-out revokes the row; a session whose
access key was deactivated or deleted since is refused by :meth:`ConsoleSessions.resume`.

>>> sessions = ConsoleSessions(store)                       # doctest: +SKIP
>>> token, session = sessions.create(user, key_id, "127.0.0.1")  # doctest: +SKIP
>>> sessions.resume(token)                                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from kdiag.store.models import ConsoleSessionRow
from kdiag.store.records import User
from kdiag.store.store import Store

__all__ = ("MAX_TOKEN_CHARS", "ConsoleSession", "ConsoleSessions")

#: A cookie token longer than this is not looked up at all (tokens are 43 characters).
MAX_TOKEN_CHARS = 128


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live session: who it is, and the CSRF token its forms must carry."""

    token_hash: str
    csrf_token: str
    account_id: str
    user_id: str
    user_name: str
    access_key_id: str
    source_ip: str | None
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime


def _record(row: ConsoleSessionRow) -> ConsoleSession:
    return ConsoleSession(
        row.token_hash,
        row.csrf_token,
        row.account_id,
        row.user_id,
        row.user_name,
        row.access_key_id,
        row.source_ip,
        row.created_at,
        row.last_seen_at,
        row.expires_at,
    )


class ConsoleSessions:
    """Create, resume and revoke console sessions in ``store``.

    :param lifetime: the absolute lifetime of a session.
    :param idle: a session unused for this long is over.
    :param clock: the time (tests move it).
    """

    def __init__(
        self,
        store: Store,
        *,
        lifetime: dt.timedelta = dt.timedelta(hours=8),
        idle: dt.timedelta = dt.timedelta(minutes=30),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._store = store
        self.lifetime = lifetime
        self.idle = idle
        self._clock = clock

    def create(
        self, user: User, access_key_id: str, source_ip: str | None
    ) -> tuple[str, ConsoleSession]:
        """A new session for ``user`` (signed in with ``access_key_id``): the cookie's token
        (shown to the browser only, never stored) and the session."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = ConsoleSessionRow(
            token_hash=_hash(token),
            csrf_token=secrets.token_urlsafe(32),
            account_id=user.account_id,
            user_id=user.id,
            user_name=user.name,
            access_key_id=access_key_id,
            source_ip=None if source_ip is None else source_ip[:64],
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.lifetime,
            revoked_at=None,
        )
        with self._store._write() as session:
            session.add(row)
        return token, _record(row)

    def resume(self, token: str | None) -> ConsoleSession | None:
        """The live session of ``token``, its idle deadline moved on; ``None`` when there is
        none: unknown, revoked, expired, idle too long, or its access key no longer active."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        now = self._clock()
        with self._store._read() as session:
            row = session.get(ConsoleSessionRow, _hash(token))
            if (
                row is None
                or row.revoked_at is not None
                or row.expires_at <= now
                or row.last_seen_at + self.idle <= now
            ):
                return None
            found = _record(row)
        key = self._store.lookup_access_key(found.access_key_id)
        if key is None or key[1].id != found.user_id:
            return None
        if now - found.last_seen_at > dt.timedelta(seconds=30):  # one write per half minute
            with self._store._write() as session:
                session.execute(
                    update(ConsoleSessionRow)
                    .where(ConsoleSessionRow.token_hash == found.token_hash)
                    .values(last_seen_at=now)
                )
        return found

    def revoke(self, token: str | None) -> bool:
        """End the session of ``token`` (sign-out); whether there was a live one."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return False
        with self._store._write() as session:
            result = session.execute(
                update(ConsoleSessionRow)
                .where(
                    ConsoleSessionRow.token_hash == _hash(token),
                    ConsoleSessionRow.revoked_at.is_(None),
                )
                .values(revoked_at=self._clock())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult

    def revoke_user(self, user_id: str) -> int:
        """End every session of one user; how many were live."""
        with self._store._write() as session:
            result = session.execute(
                update(ConsoleSessionRow)
                .where(
                    ConsoleSessionRow.user_id == user_id,
                    ConsoleSessionRow.revoked_at.is_(None),
                )
                .values(revoked_at=self._clock())
            )
            return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult

    def purge(self) -> int:
        """Delete the rows of sessions over for more than a day; how many."""
        cutoff = self._clock() - dt.timedelta(days=1)
        with self._store._write() as session:
            result = session.execute(
                delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < cutoff)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult

    def live(self, user_id: str) -> list[ConsoleSession]:
        """The user's sessions not revoked nor past their absolute deadline."""
        now = self._clock()
        with self._store._read() as session:
            rows = session.scalars(
                select(ConsoleSessionRow)
                .where(
                    ConsoleSessionRow.user_id == user_id,
                    ConsoleSessionRow.revoked_at.is_(None),
                    ConsoleSessionRow.expires_at > now,
                )
                .order_by(ConsoleSessionRow.created_at)
            )
            return [_record(r) for r in rows]
