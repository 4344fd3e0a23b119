"""Fleet runs and the hosts' answers: facts and verdicts (kdiag fleet, issue 14).

``fleet_runs``: one row per ``kdiag fleet`` run over an inventory; ``fleet_hosts``: one row
per host answer in a run, with the collector's facts, the checks and the failing ids.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from kdiag.store.models import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("inventory", sa.String(1024), nullable=False),
        sa.Column("limit_pattern", sa.String(1024), nullable=True),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.Column("hosts", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_fleet_runs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_runs")),
    )
    op.create_index(op.f("ix_fleet_runs_account_id"), "fleet_runs", ["account_id"])
    op.create_table(
        "fleet_hosts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failing", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["fleet_runs.id"],
            name=op.f("fk_fleet_hosts_run_id_fleet_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_fleet_hosts_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_hosts")),
    )
    op.create_index(op.f("ix_fleet_hosts_run_id"), "fleet_hosts", ["run_id"])
    op.create_index(op.f("ix_fleet_hosts_account_id"), "fleet_hosts", ["account_id"])
    op.create_index(op.f("ix_fleet_hosts_host"), "fleet_hosts", ["host"])


def downgrade() -> None:
    op.drop_table("fleet_hosts")
    op.drop_table("fleet_runs")
