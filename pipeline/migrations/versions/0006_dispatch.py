"""Per-account posting leases, so two posting runs never post for one account at once, by any launch path

Revision ID: 0006
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from pipeline.schema import UtcDateTime

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_leases",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_account_leases"),
    )


def downgrade() -> None:
    op.drop_table("account_leases")
