"""Fleet hosts, collected facts and verdicts (kdiag fleet, issue 14).

Reserved in the revision chain so that the areas built in parallel each own one step; a step
whose tables are not written yet changes nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
