"""The replay ledger and the shared token buckets of ``kdiag serve`` (issue 11).

Both live in the database, so every replica of the service (``--workers N``, or several hosts
on one PostgreSQL) sees the same ones, and a restart forgets nothing:

* ``replay_ledger``: one row per accepted SigV4 signature, kept until the signature itself
  expires (``X-Amz-Expires`` for a presigned URL, the clock-skew window for a signed
  header), holding the answer (status, content type, body) its first request got.  A
  repeated signature is answered with that answer and does nothing again; while the first
  request still runs, the row has no status yet.
* ``throttle_buckets``: one token bucket per principal, updated by one atomic statement.

A claim (:meth:`Ledger.claim_signature`) is one write transaction: look the signature up,
take a token from the caller's bucket, check the caller's presigned quota, insert the row.
A throttled or over-quota request leaves nothing behind, so a client may resend it as
signed.  Presigned signatures live up to 7 days, so each access key and each principal may
hold only so many unexpired ones (:data:`MAX_PRESIGNED_PER_KEY`,
:data:`MAX_PRESIGNED_PER_PRINCIPAL`); header-signed ones live at most twice the skew window
and each costs a token of the principal's bucket, so the throttle bounds them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import ReturningInsert

from kdiag.errors import RequestLimitExceeded
from kdiag.store._base import StoreBase
from kdiag.store.models import LedgerRow, ThrottleBucketRow

__all__ = (
    "MAX_PRESIGNED_PER_KEY",
    "MAX_PRESIGNED_PER_PRINCIPAL",
    "MAX_RECORDED_BODY",
    "Bucket",
    "Claim",
    "Ledger",
    "LedgerEntry",
    "RecordedAnswer",
)

#: Unexpired presigned signatures one access key may hold in the ledger.
MAX_PRESIGNED_PER_KEY = 1000
#: ... and one principal, over all its keys.
MAX_PRESIGNED_PER_PRINCIPAL = 2000
#: The largest answer kept (before compression); a larger one (only reads answer that much)
#: is recorded without its body, and its signature's repeats run the read again.
MAX_RECORDED_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """The answer a signature's first request got."""

    request_id: str
    status: int
    content_type: str
    #: None: too large to keep (:data:`MAX_RECORDED_BODY`)
    body: bytes | None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A signature in the ledger: its first request and, once it has ended, its answer."""

    signature: str
    request_id: str
    claimed_at: float
    answer: RecordedAnswer | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A verified signature a request wants to act on."""

    signature: str
    access_key_id: str
    principal: str
    presigned: bool
    #: seconds since the epoch
    expires_at: float
    request_id: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """One take from the token bucket ``key``: ``burst`` tokens, ``rate`` more a second,
    ``now`` on the throttle's clock."""

    key: str
    rate: float
    burst: int
    now: float


_LEDGER = LedgerRow.metadata.tables["replay_ledger"]
_BUCKETS = ThrottleBucketRow.metadata.tables["throttle_buckets"]
_SELECT = select(
    _LEDGER.c.signature,
    _LEDGER.c.request_id,
    _LEDGER.c.claimed_at,
    _LEDGER.c.status,
    _LEDGER.c.content_type,
    _LEDGER.c.body,
).where(_LEDGER.c.signature == bindparam("signature"))
_INSERT = insert(_LEDGER)
_ANSWER = (
    update(_LEDGER)
    .where(_LEDGER.c.signature == bindparam("sig"), _LEDGER.c.status.is_(None))
    .values(
        status=bindparam("status"),
        content_type=bindparam("content_type"),
        body=bindparam("body"),
    )
)


def _presigned_count(column: Any) -> Any:
    return (
        select(func.count())
        .select_from(_LEDGER)
        .where(
            column == bindparam("who"),
            _LEDGER.c.presigned.is_(True),
            _LEDGER.c.expires_at > bindparam("now", type_=Float),
        )
    )


_PRESIGNED_BY_KEY = _presigned_count(_LEDGER.c.access_key_id)
_PRESIGNED_BY_PRINCIPAL = _presigned_count(_LEDGER.c.principal)


def _take_statement(dialect: str) -> ReturningInsert[Any]:
    """One atomic take: refill ``tokens`` for the time since ``updated_at`` (never more than
    ``burst``, never less for a clock that went back), and take one if there is one.  The
    row's ``granted_to`` names the last request that got a token: the taker reads it back
    to learn whether that was itself."""
    now = bindparam("now", type_=Float)
    rate = bindparam("rate", type_=Float)
    burst = bindparam("burst", type_=Float)
    elapsed = case((now > _BUCKETS.c.updated_at, now - _BUCKETS.c.updated_at), else_=0.0)
    refilled = _BUCKETS.c.tokens + elapsed * rate
    capped = case((refilled > burst, burst), else_=refilled)
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = maker(_BUCKETS).values(
        key=bindparam("key"),
        tokens=bindparam("first", type_=Float),
        updated_at=now,
        granted_to=bindparam("request_id"),
    )
    return statement.on_conflict_do_update(
        index_elements=[_BUCKETS.c.key],
        set_={
            "tokens": case((capped >= 1.0, capped - 1.0), else_=capped),
            "updated_at": now,
            "granted_to": case(
                (capped >= 1.0, bindparam("request_id")), else_=_BUCKETS.c.granted_to
            ),
        },
    ).returning(_BUCKETS.c.granted_to)


_TAKE = {dialect: _take_statement(dialect) for dialect in ("sqlite", "postgresql")}


def _entry(row: Any) -> LedgerEntry:
    answer = None
    if row.status is not None:
        body = None if row.body is None else zlib.decompress(row.body)
        answer = RecordedAnswer(row.request_id, int(row.status), row.content_type or "", body)
    return LedgerEntry(row.signature, row.request_id, float(row.claimed_at), answer)


class Ledger(StoreBase):
    """The replay ledger and the token buckets."""

    def _take(self, conn: Connection, bucket: Bucket, request_id: str) -> bool:
        granted = conn.execute(
            _TAKE[self._engine.dialect.name],
            {
                "key": bucket.key[:256],
                "first": float(bucket.burst) - 1.0,
                "now": bucket.now,
                "rate": bucket.rate,
                "burst": float(bucket.burst),
                "request_id": request_id[:64],
            },
        ).scalar_one()
        return bool(granted == request_id[:64])

    def take_token(self, bucket: Bucket, request_id: str) -> bool:
        """Take one token from ``bucket`` for ``request_id``; whether there was one."""
        with self._writer.begin() as conn:
            return self._take(conn, bucket, request_id)

    def claim_signature(
        self, claim: Claim, *, now: float, bucket: Bucket | None = None
    ) -> LedgerEntry | None:
        """Claim ``claim.signature`` for its request: None when claimed (the caller then
        owes :meth:`record_answer`), else the entry of the request that claimed it first.

        :raises RequestLimitExceeded: ``bucket`` is empty, or the caller holds too many
            unexpired presigned signatures; nothing is claimed then.
        """
        try:
            with self._writer.begin() as conn:
                found = conn.execute(_SELECT, {"signature": claim.signature}).first()
                if found is not None:
                    return _entry(found)
                if bucket is not None and not self._take(conn, bucket, claim.request_id):
                    raise RequestLimitExceeded("Request limit exceeded.")
                if claim.presigned:
                    self._check_presigned_quota(conn, claim, now)
                conn.execute(
                    _INSERT,
                    {
                        "signature": claim.signature,
                        "access_key_id": claim.access_key_id[:32],
                        "principal": claim.principal[:256],
                        "presigned": claim.presigned,
                        "expires_at": claim.expires_at,
                        "claimed_at": now,
                        "request_id": claim.request_id[:64],
                        "status": None,
                        "content_type": None,
                        "body": None,
                    },
                )
        except IntegrityError:
            # Another replica inserted it between our look-up and our insert (PostgreSQL;
            # SQLite's BEGIN IMMEDIATE serializes claims); ours was rolled back, token too.
            entry = self.ledger_entry(claim.signature)
            if entry is None:
                raise
            return entry
        return None

    @staticmethod
    def _check_presigned_quota(conn: Connection, claim: Claim, now: float) -> None:
        by_key = conn.execute(_PRESIGNED_BY_KEY, {"who": claim.access_key_id, "now": now})
        if by_key.scalar_one() >= MAX_PRESIGNED_PER_KEY:
            raise RequestLimitExceeded(
                f"access key {claim.access_key_id} holds {MAX_PRESIGNED_PER_KEY} unexpired "
                "presigned requests; wait for some to expire, or sign with a header"
            )
        by_principal = conn.execute(_PRESIGNED_BY_PRINCIPAL, {"who": claim.principal, "now": now})
        if by_principal.scalar_one() >= MAX_PRESIGNED_PER_PRINCIPAL:
            raise RequestLimitExceeded(
                f"this principal holds {MAX_PRESIGNED_PER_PRINCIPAL} unexpired presigned "
                "requests; wait for some to expire, or sign with a header"
            )

    def record_answer(self, signature: str, status: int, content_type: str, body: bytes) -> None:
        """Keep the answer of ``signature``'s first request (once: a second call is a no-op).
        A body over :data:`MAX_RECORDED_BODY` is not kept."""
        kept = zlib.compress(body, 1) if len(body) <= MAX_RECORDED_BODY else None
        with self._writer.begin() as conn:
            conn.execute(
                _ANSWER,
                {
                    "sig": signature,
                    "status": status,
                    "content_type": content_type[:64],
                    "body": kept,
                },
            )

    def ledger_entry(self, signature: str) -> LedgerEntry | None:
        """The ledger's row for ``signature``, or None."""
        with self._engine.connect() as conn:
            found = conn.execute(_SELECT, {"signature": signature}).first()
        return None if found is None else _entry(found)

    def prune_ledger(self, now: float, *, idle_before: float | None = None) -> int:
        """Delete the rows of signatures expired by ``now`` and, with ``idle_before`` (on
        the throttle's clock), the buckets untouched since then (full again, so they carry
        nothing); how many ledger rows went."""
        with self._writer.begin() as conn:
            gone = conn.execute(delete(_LEDGER).where(_LEDGER.c.expires_at < now)).rowcount
            if idle_before is not None:
                conn.execute(delete(_BUCKETS).where(_BUCKETS.c.updated_at < idle_before))
        return int(gone or 0)
