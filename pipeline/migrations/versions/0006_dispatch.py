"""Per-account posting leases; a trigger-maintained summary so the full-history integrity checks read an index

Revision ID: 0006
Revises: 0003

- `account_leases`: two posting runs never post for one account at once, by any launch path.
- `content_items.tweets_recorded`: tweet rows per item, kept by triggers on `tweets`; a partial index holds
  only posted items with fewer rows than parts, so the missing-id check over the whole history reads it.
- `tweet_text_counts`: tweets per (account, text), kept by the same triggers; a partial index holds only the
  texts posted more than once, so the same-text duplicate check over the whole history reads it.
Triggers (not application code) keep the summary right whoever writes `tweets`: the pipeline, a repair by
hand, a test's seeding SQL.
"""

import sqlalchemy as sa
from alembic import op

from pipeline.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MISSING = sa.text("state = 'posted' AND tweets_recorded < part_count")
REPEATED = sa.text("n > 1")

PG_FUNCTION = """
CREATE FUNCTION tweets_summary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE tweet_text_counts SET n = n - 1 WHERE account = OLD.account AND text = OLD.text;
    UPDATE content_items SET tweets_recorded = tweets_recorded - 1 WHERE id = OLD.item_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO tweet_text_counts (account, text, n) VALUES (NEW.account, NEW.text, 1)
      ON CONFLICT (account, text) DO UPDATE SET n = tweet_text_counts.n + 1;
    UPDATE content_items SET tweets_recorded = tweets_recorded + 1 WHERE id = NEW.item_id;
    RETURN NEW;
  END IF;
  RETURN OLD;
END $$
"""
PG_TRIGGER = ("CREATE TRIGGER tweets_summary AFTER INSERT OR DELETE OR UPDATE OF account, text, item_id "
              "ON tweets FOR EACH ROW EXECUTE FUNCTION tweets_summary()")

_SQLITE_ADD = """
  INSERT OR IGNORE INTO tweet_text_counts (account, text, n) VALUES (NEW.account, NEW.text, 0);
  UPDATE tweet_text_counts SET n = n + 1 WHERE account = NEW.account AND text = NEW.text;
  UPDATE content_items SET tweets_recorded = tweets_recorded + 1 WHERE id = NEW.item_id;
"""
_SQLITE_REMOVE = """
  UPDATE tweet_text_counts SET n = n - 1 WHERE account = OLD.account AND text = OLD.text;
  UPDATE content_items SET tweets_recorded = tweets_recorded - 1 WHERE id = OLD.item_id;
"""
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER tweets_summary_insert AFTER INSERT ON tweets BEGIN {_SQLITE_ADD} END",
    f"CREATE TRIGGER tweets_summary_delete AFTER DELETE ON tweets BEGIN {_SQLITE_REMOVE} END",
    "CREATE TRIGGER tweets_summary_update AFTER UPDATE OF account, text, item_id ON tweets "
    f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
)


def upgrade() -> None:
    op.create_table(
        "account_leases",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_account_leases"),
    )
    op.create_table(
        "tweet_text_counts",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("account", "text", name="pk_tweet_text_counts"),
    )
    with op.batch_alter_table("content_items") as batch:
        batch.add_column(sa.Column("tweets_recorded", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE content_items SET tweets_recorded = "
               "(SELECT count(*) FROM tweets t WHERE t.item_id = content_items.id)")
    op.execute("INSERT INTO tweet_text_counts (account, text, n) SELECT account, text, count(*) FROM tweets "
               "GROUP BY account, text")
    op.create_index("ix_content_items_missing_tweets", "content_items", ["id"],
                    sqlite_where=MISSING, postgresql_where=MISSING)
    op.create_index("ix_tweet_text_counts_repeated", "tweet_text_counts", ["account"],
                    sqlite_where=REPEATED, postgresql_where=REPEATED)
    if op.get_bind().dialect.name == "sqlite":
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
    else:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER tweets_summary_{name}")
    else:
        op.execute("DROP TRIGGER tweets_summary ON tweets")
        op.execute("DROP FUNCTION tweets_summary()")
    op.drop_index("ix_tweet_text_counts_repeated", table_name="tweet_text_counts")
    op.drop_index("ix_content_items_missing_tweets", table_name="content_items")
    with op.batch_alter_table("content_items") as batch:
        batch.drop_column("tweets_recorded")
    op.drop_table("tweet_text_counts")
    op.drop_table("account_leases")
