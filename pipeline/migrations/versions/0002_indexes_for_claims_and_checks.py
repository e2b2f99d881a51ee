"""Per-account due index for claims; indexes for the integrity checks and sensors

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DUE = sa.text("state = 'queued'")
POSTED = sa.text("state = 'posted'")
IN_FLIGHT = sa.text("state IN ('claimed', 'posting', 'unknown')")


def upgrade() -> None:
    op.drop_index("ix_content_items_due", table_name="content_items")
    op.create_index("ix_content_items_due", "content_items", ["account", "scheduled_at"],
                    sqlite_where=DUE, postgresql_where=DUE)
    op.create_index("ix_content_items_posted_at", "content_items", ["posted_at"],
                    sqlite_where=POSTED, postgresql_where=POSTED)
    op.create_index("ix_content_items_in_flight", "content_items", ["updated_at"],
                    sqlite_where=IN_FLIGHT, postgresql_where=IN_FLIGHT)
    op.create_index("ix_tweets_text", "tweets", ["text"], postgresql_using="hash")


def downgrade() -> None:
    op.drop_index("ix_tweets_text", table_name="tweets")
    op.drop_index("ix_content_items_in_flight", table_name="content_items")
    op.drop_index("ix_content_items_posted_at", table_name="content_items")
    op.drop_index("ix_content_items_due", table_name="content_items")
    op.create_index("ix_content_items_due", "content_items", ["scheduled_at"], sqlite_where=DUE, postgresql_where=DUE)
