"""The human loop: a `pending_approval` item state and the `resolutions` table (who did what to an item, why)

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from pipeline.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_STATES = "'queued', 'claimed', 'posting', 'posted', 'unknown', 'failed', 'cancelled', 'needs_review'"
NEW_STATES = OLD_STATES + ", 'pending_approval'"
# SQLite rebuilds the table to change a CHECK (pipeline.migrate turns FKs off meanwhile); these partial indexes are recreated with their WHERE clauses.
PARTIAL = (
    ("uq_content_items_live_fingerprint", ["account", "fingerprint"], True, "state NOT IN ('failed', 'cancelled')"),
    ("ix_content_items_due", ["account", "scheduled_at"], False, "state = 'queued'"),
    ("ix_content_items_posted_at", ["posted_at"], False, "state = 'posted'"),
    ("ix_content_items_in_flight", ["updated_at"], False, "state IN ('claimed', 'posting', 'unknown')"),
)


def _states(allowed: str) -> None:
    with op.batch_alter_table("content_items", recreate="auto") as batch:
        batch.drop_constraint("state", type_="check")
        batch.create_check_constraint("state", sa.text(f"state IN ({allowed})"))
    if op.get_bind().dialect.name == "sqlite":
        for name, columns, unique, where in PARTIAL:
            op.execute(f"DROP INDEX IF EXISTS {name}")
            op.create_index(name, "content_items", columns, unique=unique, sqlite_where=sa.text(where))


def upgrade() -> None:
    _states(NEW_STATES)
    op.create_table(
        "resolutions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("content_items.id", name="fk_resolutions_item_id_content_items"),
                  nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("tweet_ids", sa.JSON),
        sa.Column("reason", sa.Text),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_resolutions_item_id", "resolutions", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_resolutions_item_id", table_name="resolutions")
    op.drop_table("resolutions")
    op.execute("UPDATE content_items SET state = 'queued' WHERE state = 'pending_approval'")
    _states(OLD_STATES)
