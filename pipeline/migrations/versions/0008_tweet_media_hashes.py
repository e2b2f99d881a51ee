"""The same text with other media is another post: key the same-text summary by the post's media too

Revision ID: 0008
Revises: 0007

- `tweets.media_hashes`: the post's media as one canonical string (pipeline/media.py `media_key`: the SHA-256s
  in attach order, comma-separated; '' for none). Backfilled from each row's item (`content_items.media`, part
  `part_index`); rows from before media get ''.
- `tweet_text_counts` is keyed by (account, text, media_hashes), so the same words posted with another image
  (a legitimate second post: its fingerprint differs) no longer read as a duplicate. The table is rebuilt from
  `tweets` and the triggers of 0006 are replaced by ones that carry the new key (same names).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REPEATED = sa.text("n > 1")


def _pg_function(keys: tuple[str, ...]) -> str:
    match_old = " AND ".join(f"{k} = OLD.{k}" for k in keys)
    return f"""
CREATE FUNCTION tweets_summary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE tweet_text_counts SET n = n - 1 WHERE {match_old};
    UPDATE content_items SET tweets_recorded = tweets_recorded - 1 WHERE id = OLD.item_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO tweet_text_counts ({", ".join(keys)}, n) VALUES ({", ".join(f"NEW.{k}" for k in keys)}, 1)
      ON CONFLICT ({", ".join(keys)}) DO UPDATE SET n = tweet_text_counts.n + 1;
    UPDATE content_items SET tweets_recorded = tweets_recorded + 1 WHERE id = NEW.item_id;
    RETURN NEW;
  END IF;
  RETURN OLD;
END $$
"""


def _pg_trigger(keys: tuple[str, ...]) -> str:
    watched = ", ".join(dict.fromkeys((*keys, "item_id")))
    return (f"CREATE TRIGGER tweets_summary AFTER INSERT OR DELETE OR UPDATE OF {watched} "
            "ON tweets FOR EACH ROW EXECUTE FUNCTION tweets_summary()")


def _sqlite_triggers(keys: tuple[str, ...]) -> tuple[str, ...]:
    match_new = " AND ".join(f"{k} = NEW.{k}" for k in keys)
    match_old = " AND ".join(f"{k} = OLD.{k}" for k in keys)
    add = f"""
  INSERT OR IGNORE INTO tweet_text_counts ({", ".join(keys)}, n) VALUES ({", ".join(f"NEW.{k}" for k in keys)}, 0);
  UPDATE tweet_text_counts SET n = n + 1 WHERE {match_new};
  UPDATE content_items SET tweets_recorded = tweets_recorded + 1 WHERE id = NEW.item_id;
"""
    remove = f"""
  UPDATE tweet_text_counts SET n = n - 1 WHERE {match_old};
  UPDATE content_items SET tweets_recorded = tweets_recorded - 1 WHERE id = OLD.item_id;
"""
    watched = ", ".join(dict.fromkeys((*keys, "item_id")))
    return (
        f"CREATE TRIGGER tweets_summary_insert AFTER INSERT ON tweets BEGIN {add} END",
        f"CREATE TRIGGER tweets_summary_delete AFTER DELETE ON tweets BEGIN {remove} END",
        f"CREATE TRIGGER tweets_summary_update AFTER UPDATE OF {watched} ON tweets BEGIN {remove} {add} END",
    )


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER tweets_summary_{name}")
    else:
        op.execute("DROP TRIGGER tweets_summary ON tweets")
        op.execute("DROP FUNCTION tweets_summary()")


def _create_triggers(keys: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in _sqlite_triggers(keys):
            op.execute(trigger)
    else:
        op.execute(_pg_function(keys))
        op.execute(_pg_trigger(keys))


def _rebuild_counts(keys: tuple[str, ...]) -> None:
    """tweet_text_counts keyed by `keys`, filled from `tweets` in one grouped pass."""
    op.drop_index("ix_tweet_text_counts_repeated", table_name="tweet_text_counts")
    op.drop_table("tweet_text_counts")
    columns: list[Any] = [sa.Column("account", sa.String(64), nullable=False),
                          sa.Column("text", sa.Text, nullable=False)]
    if "media_hashes" in keys:
        columns.append(sa.Column("media_hashes", sa.Text, nullable=False, server_default=""))
    op.create_table("tweet_text_counts", *columns, sa.Column("n", sa.Integer, nullable=False),
                    sa.PrimaryKeyConstraint(*keys, name="pk_tweet_text_counts"))
    listed = ", ".join(keys)
    op.execute(f"INSERT INTO tweet_text_counts ({listed}, n) SELECT {listed}, count(*) FROM tweets GROUP BY {listed}")
    op.create_index("ix_tweet_text_counts_repeated", "tweet_text_counts", ["account"],
                    sqlite_where=REPEATED, postgresql_where=REPEATED)


def _backfill_media_hashes() -> None:
    """Each tweet row's media key from its item's media column (part `part_index`); only items with media."""
    conn = op.get_bind()
    items = sa.table("content_items", sa.column("id", sa.Integer), sa.column("media", sa.JSON))
    tweets = sa.table("tweets", sa.column("tweet_id", sa.String), sa.column("item_id", sa.Integer),
                      sa.column("part_index", sa.Integer), sa.column("media_hashes", sa.Text))
    rows = conn.execute(sa.select(tweets.c.tweet_id, tweets.c.part_index, items.c.media)
                        .select_from(tweets.join(items, items.c.id == tweets.c.item_id))
                        .where(items.c.media.is_not(None))).all()
    for tweet_id, part, media in rows:
        refs = media[part] if isinstance(media, list) and part < len(media) else []
        key = ",".join(str(r["sha256"]) for r in refs or [])
        if key:
            conn.execute(tweets.update().where(tweets.c.tweet_id == tweet_id).values(media_hashes=key))


def upgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table("tweets") as batch:
        batch.add_column(sa.Column("media_hashes", sa.Text, nullable=False, server_default=""))
    _backfill_media_hashes()
    keys = ("account", "text", "media_hashes")
    _rebuild_counts(keys)
    _create_triggers(keys)


def downgrade() -> None:
    _drop_triggers()
    keys = ("account", "text")
    with op.batch_alter_table("tweets") as batch:
        batch.drop_column("media_hashes")
    _rebuild_counts(keys)
    _create_triggers(keys)
