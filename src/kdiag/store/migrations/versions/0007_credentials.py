"""Sealed named credentials (kdiag credentials, issue 12).

Reserved in the revision chain so that the areas built in parallel each own one step; a step
whose tables are not written yet changes nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
