"""The SigV4 replay ledger and shared throttle state (serve hardening, issue 11).

Reserved in the revision chain so that the areas built in parallel each own one step; a step
whose tables are not written yet changes nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
