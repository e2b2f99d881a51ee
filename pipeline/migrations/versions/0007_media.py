"""Media per part of an item (images, GIFs, videos kept in the content-addressed store)

Revision ID: 0007
Revises: 0006

`content_items.media`: a JSON list with one list of MediaRef JSON per part (pipeline/media.py). Rows from
before media keep NULL, which reads as "no media": their text-only fingerprints are unchanged and stay valid.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("content_items") as batch:
        batch.add_column(sa.Column("media", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("content_items") as batch:
        batch.drop_column("media")
