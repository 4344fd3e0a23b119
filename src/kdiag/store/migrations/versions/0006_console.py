"""Console sessions (kdiag console, issue 15).

Reserved in the revision chain so that the areas built in parallel each own one step; a step
whose tables are not written yet changes nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
