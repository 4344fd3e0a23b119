"""Drill runs and their steps (kdiag drill, issue 13).

Reserved in the revision chain so that the areas built in parallel each own one step; a step
whose tables are not written yet changes nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
