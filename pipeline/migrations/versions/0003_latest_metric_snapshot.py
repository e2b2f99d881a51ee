"""Mark each tweet's newest metric snapshot, so learning reads those rows instead of searching for them

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LATEST = sa.text("is_latest")


def upgrade() -> None:
    with op.batch_alter_table("metric_snapshots") as batch:
        batch.add_column(sa.Column("is_latest", sa.Boolean, nullable=False, server_default=sa.false()))
    # The newest per tweet by (captured_at, id): the same order pipeline.metrics.record_snapshot keeps.
    op.execute("""
        UPDATE metric_snapshots SET is_latest = true WHERE id IN (
          SELECT (SELECT s.id FROM metric_snapshots s WHERE s.tweet_id = t.tweet_id
                  ORDER BY s.captured_at DESC, s.id DESC LIMIT 1)
          FROM (SELECT DISTINCT tweet_id FROM metric_snapshots) t)
    """)
    op.create_index("uq_metric_snapshots_latest", "metric_snapshots", ["tweet_id"], unique=True,
                    sqlite_where=LATEST, postgresql_where=LATEST)


def downgrade() -> None:
    op.drop_index("uq_metric_snapshots_latest", table_name="metric_snapshots")
    with op.batch_alter_table("metric_snapshots") as batch:
        batch.drop_column("is_latest")
