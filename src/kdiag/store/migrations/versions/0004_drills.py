"""Drill runs and their steps (kdiag drill, issue 13).

One row per drill: the instance, when it ran, its verdict and diagnosis, the timed steps and
the whole report as JSON, and the dumps it found (the guest's own and a host-side one).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from kdiag.store.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("instance_id", sa.String(19), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("diagnosis", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("dump_path", sa.Text(), nullable=True),
        sa.Column("host_dump_path", sa.Text(), nullable=True),
        sa.Column("dump_id", sa.String(80), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_drills_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drills")),
    )
    op.create_index(op.f("ix_drills_account_id"), "drills", ["account_id"])
    op.create_index(op.f("ix_drills_instance_id"), "drills", ["instance_id"])
    op.create_index(op.f("ix_drills_started_at"), "drills", ["started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_drills_started_at"), table_name="drills")
    op.drop_index(op.f("ix_drills_instance_id"), table_name="drills")
    op.drop_index(op.f("ix_drills_account_id"), table_name="drills")
    op.drop_table("drills")
