"""The dump catalog (kdiag dumps, issue 13).

``dumps``: one row per crash dump and account, unique by content identity; ``dump_paths``:
every file known to hold one (copies, renames, split-set members), with the stat facts that
let a rescan skip an unchanged file; ``dump_rejects``: files a scan could not index, with
the typed reason.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from kdiag.store.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "dumps",
        sa.Column("id", sa.String(24), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("identity", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("crash_time", UtcDateTime(), nullable=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("compression", sa.String(32), nullable=False),
        sa.Column("arch", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("release", sa.String(128), nullable=True),
        sa.Column("klass", sa.String(32), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("signature_id", sa.String(32), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("incomplete_reason", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("indexed_at", UtcDateTime(), nullable=False),
        _account_fk("dumps"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dumps")),
        sa.UniqueConstraint("account_id", "identity", name="uq_dumps_account_id_identity"),
    )
    op.create_index(op.f("ix_dumps_account_id"), "dumps", ["account_id"])
    op.create_index(op.f("ix_dumps_crash_time"), "dumps", ["crash_time"])
    op.create_index(op.f("ix_dumps_signature_id"), "dumps", ["signature_id"])
    op.create_table(
        "dump_paths",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dump_id", sa.String(24), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("path_key", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compression", sa.String(16), nullable=True),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        _account_fk("dump_paths"),
        sa.ForeignKeyConstraint(
            ["dump_id"],
            ["dumps.id"],
            name=op.f("fk_dump_paths_dump_id_dumps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dump_paths")),
        sa.UniqueConstraint("account_id", "path_key", name="uq_dump_paths_account_id_path_key"),
    )
    op.create_index(op.f("ix_dump_paths_dump_id"), "dump_paths", ["dump_id"])
    op.create_table(
        "dump_rejects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("path_key", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        _account_fk("dump_rejects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dump_rejects")),
        sa.UniqueConstraint("account_id", "path_key", name="uq_dump_rejects_account_id_path_key"),
    )


def downgrade() -> None:
    op.drop_table("dump_rejects")
    op.drop_index(op.f("ix_dump_paths_dump_id"), table_name="dump_paths")
    op.drop_table("dump_paths")
    op.drop_index(op.f("ix_dumps_signature_id"), table_name="dumps")
    op.drop_index(op.f("ix_dumps_crash_time"), table_name="dumps")
    op.drop_index(op.f("ix_dumps_account_id"), table_name="dumps")
    op.drop_table("dumps")
