"""The audit log: one row per request, intent committed before delivery."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sqlalchemy import bindparam, insert, select, update

from kdiag.backends.credentials import masked_settings
from kdiag.errors import NoSuchEntity
from kdiag.store._base import StoreBase
from kdiag.store.models import AuditRow
from kdiag.store.records import AuditEntry

__all__ = (
    "MAX_AUDIT_TEXT",
    "MAX_BACKEND_TIMEOUT",
    "PENDING_STALE_AFTER",
    "UNCONFIRMED_CODE",
    "AuditLog",
)

#: The error code of a row whose delivery is unconfirmed (``kdiag.errors.DeliveryUnconfirmed``).
UNCONFIRMED_CODE = "DeliveryUnconfirmed"
_RECONCILED = (
    "the service stopped between recording the intent and recording the outcome; "
    "the NMI may or may not have been delivered"
)

#: The longest timeout any backend's target settings accept, in seconds (openstack's; the
#: others allow 300).  A delivery makes at most two bounded backend calls after the row's
#: time (``state``, then ``send_nmi``).
MAX_BACKEND_TIMEOUT = 600.0
#: Seconds after its time when a ``pending`` row can no longer belong to a request in
#: flight anywhere (any host, any replica): two backend calls at their longest, plus a
#: generous margin for the store writes around them (each bounded by the driver's own
#: timeouts) and a slow host.  Only older rows are reconciled, so one host's restart
#: never marks another host's in-flight request ``unknown``.
PENDING_STALE_AFTER = 2 * MAX_BACKEND_TIMEOUT + 600.0

#: The most characters of an audit row's message or reason kept; longer ones are cut,
#: marked with an ellipsis.  Every other text column is cut to its own width, so no caller
#: (an unauthenticated one included) can write a large row, and PostgreSQL never refuses one.
MAX_AUDIT_TEXT = 2048


def _masked(text: str | None) -> str | None:
    """An error message with any URL password or key material masked (defence in depth:
    targets hold no secrets, but a backend's message might quote one it was given)."""
    return None if text is None else str(masked_settings(text))


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "\u2026"


# Built once: these run twice per interrupt, and building a statement costs more than
# running it (SQLAlchemy's cache key is then computed once, not per call).
_TABLE = AuditRow.metadata.tables["audit_log"]
_INSERT = insert(_TABLE).returning(_TABLE.c.id)
_FINISH = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("audit_id"))
    .values(
        outcome=bindparam("outcome"),
        error_code=bindparam("error_code"),
        message=bindparam("message"),
        latency_ms=bindparam("latency_ms"),
    )
)


class AuditLog(StoreBase):
    """Append, complete and read audit rows."""

    # --- audit log ---------------------------------------------------------------------------

    @staticmethod
    def _audit(row: AuditRow) -> AuditEntry:
        return AuditEntry(
            id=row.id,
            time=row.time,
            request_id=row.request_id,
            principal=row.principal,
            access_key_id=row.access_key_id,
            source_ip=row.source_ip,
            action=row.action,
            instance_id=row.instance_id,
            region=row.region,
            decision=row.decision,
            reason=row.reason,
            outcome=row.outcome,
            error_code=row.error_code,
            message=row.message,
            latency_ms=row.latency_ms,
            dry_run=row.dry_run,
            backend=row.backend,
        )

    def record_audit(self, entry: AuditEntry, *, durable: bool = False) -> int:
        """Store one audit row (committed when this returns: it survives the process being
        killed; with ``durable``, a power loss too); its id."""
        values = {
            "time": entry.time,
            "request_id": _clip(entry.request_id, 64),
            "principal": _clip(entry.principal, 256),
            "access_key_id": _clip(entry.access_key_id, 32),
            "source_ip": _clip(entry.source_ip, 64),
            "action": _clip(entry.action, 64),
            "instance_id": _clip(entry.instance_id, 80),
            "region": _clip(entry.region, 32),
            "decision": _clip(entry.decision, 16),
            "reason": _clip(entry.reason, MAX_AUDIT_TEXT),
            "outcome": entry.outcome,
            "error_code": _clip(entry.error_code, 64),
            "message": _clip(_masked(entry.message), MAX_AUDIT_TEXT),
            "latency_ms": entry.latency_ms,
            "dry_run": entry.dry_run,
            "backend": _clip(entry.backend, 64),
        }
        with (self._durable_writer if durable else self._writer).begin() as conn:
            return int(conn.execute(_INSERT, values).scalar_one())

    def start_audit(self, entry: AuditEntry) -> int:
        """Record the intent (outcome ``pending``), committed durably (fsynced) before
        anything is sent."""
        return self.record_audit(replace(entry, outcome="pending"), durable=True)

    def finish_audit(
        self,
        audit_id: int,
        *,
        outcome: str,
        error_code: str | None = None,
        message: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Complete a row that :meth:`start_audit` opened."""
        with self._writer.begin() as conn:
            result = conn.execute(
                _FINISH,
                {
                    "audit_id": audit_id,
                    "outcome": outcome,
                    "error_code": error_code,
                    "message": _clip(_masked(message), MAX_AUDIT_TEXT),
                    "latency_ms": latency_ms,
                },
            )
            if result.rowcount == 0:
                raise NoSuchEntity(f"no audit row {audit_id}")

    def reconcile_pending(
        self,
        *,
        older_than: float = PENDING_STALE_AFTER,
        now: dt.datetime | None = None,
    ) -> list[int]:
        """Mark ``pending`` rows older than ``older_than`` seconds ``unknown`` (error
        ``DeliveryUnconfirmed``) and return their ids, oldest first.

        A row pending longer than any request can stay in flight
        (:data:`PENDING_STALE_AFTER`) was left by a process that died between intent and
        outcome.  Younger rows may belong to a request another replica or host is still
        serving, so they are left alone (a later sweep takes them).  Never ``sent`` or
        ``failed``: there is no evidence either way.  Safe to run from every replica at
        once: each row changes at most once.
        """
        if older_than < 0:
            raise ValueError("older_than must not be negative")
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=older_than)
        with self._writer.begin() as conn:
            # one statement: a row finished meanwhile (outcome no longer pending) is untouched
            # and not reported
            ids = conn.execute(
                update(_TABLE)
                .where(_TABLE.c.outcome == "pending", _TABLE.c.time < cutoff)
                .values(outcome="unknown", error_code=UNCONFIRMED_CODE, message=_RECONCILED)
                .returning(_TABLE.c.id)
            ).scalars()
            return sorted(int(i) for i in ids)

    def audit_rows(
        self,
        since: dt.datetime | None = None,
        limit: int | None = None,
        *,
        instance_id: str | None = None,
        request_id: str | None = None,
        principal_prefix: str | None = None,
    ) -> list[AuditEntry]:
        """Audit rows, oldest first; ``limit`` keeps the newest ``limit`` of them.

        ``principal_prefix`` keeps only the rows whose principal starts with it (e.g.
        ``arn:aws:iam::<account>:``: one tenant's requests); rows with no principal (the
        request never authenticated) are then left out too.
        """
        with self._read() as session:
            query = select(AuditRow).order_by(AuditRow.id.desc())
            if principal_prefix is not None:
                query = query.where(
                    AuditRow.principal.startswith(principal_prefix, autoescape=True)
                )
            if since is not None:
                query = query.where(AuditRow.time >= since)
            if instance_id is not None:
                query = query.where(AuditRow.instance_id == instance_id)
            if request_id is not None:
                query = query.where(AuditRow.request_id == request_id)
            if limit is not None:
                query = query.limit(limit)
            rows = [self._audit(r) for r in session.scalars(query)]
        rows.reverse()
        return rows
