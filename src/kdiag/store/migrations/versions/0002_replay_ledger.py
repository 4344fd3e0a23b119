"""The SigV4 replay ledger and shared throttle state (serve hardening, issue 11).

``replay_ledger``: every signature the service accepted, until the signature expires, with
the answer its first request got; ``throttle_buckets``: the per-principal token buckets.
Both are shared by every replica of ``kdiag serve`` on one database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_ledger",
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("access_key_id", sa.String(32), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("presigned", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_replay_ledger")),
    )
    op.create_index(op.f("ix_replay_ledger_expires_at"), "replay_ledger", ["expires_at"])
    op.create_index(
        "ix_replay_ledger_key_presigned",
        "replay_ledger",
        ["access_key_id", "presigned", "expires_at"],
    )
    op.create_index(
        "ix_replay_ledger_principal_presigned",
        "replay_ledger",
        ["principal", "presigned", "expires_at"],
    )
    op.create_table(
        "throttle_buckets",
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("granted_to", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_throttle_buckets")),
    )


def downgrade() -> None:
    op.drop_table("throttle_buckets")
    op.drop_index("ix_replay_ledger_principal_presigned", table_name="replay_ledger")
    op.drop_index("ix_replay_ledger_key_presigned", table_name="replay_ledger")
    op.drop_index(op.f("ix_replay_ledger_expires_at"), table_name="replay_ledger")
    op.drop_table("replay_ledger")
