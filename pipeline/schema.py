"""The app database, in SQLAlchemy Core. Alembic migrations (pipeline/migrations) create it.

Double-posting is made impossible at the database level, not only in code:
- one *live* content item per (account, fingerprint): a partial unique index;
- one row per tweet id, and one per (item, part): the `tweets` table.
Every timestamp is timezone-aware UTC (`timestamptz` on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UtcDateTime(TypeDecorator):
    """timestamptz on PostgreSQL; on SQLite an ISO string that always reads back as aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the pipeline stores only timezone-aware UTC times")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):  # type: ignore[override]
        if value is None:
            return None
        from datetime import UTC

        if value.tzinfo is None:  # SQLite drops the offset; every stored value is UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Item states (DESIGN.md section 3).
QUEUED, CLAIMED, POSTING, POSTED, UNKNOWN = "queued", "claimed", "posting", "posted", "unknown"
FAILED, CANCELLED, NEEDS_REVIEW = "failed", "cancelled", "needs_review"
PENDING_APPROVAL = "pending_approval"  # planned, waiting for `pipeline approve` (PIPELINE_REQUIRE_APPROVAL)
STATES = (QUEUED, CLAIMED, POSTING, POSTED, UNKNOWN, FAILED, CANCELLED, NEEDS_REVIEW, PENDING_APPROVAL)
# Items in these states no longer hold their fingerprint: the same text may be enqueued again.
DEAD_STATES = (FAILED, CANCELLED)
KINDS = ("single", "thread", "reply")

_dead = "state NOT IN ('failed', 'cancelled')"
# The live-fingerprint index's predicate, verbatim: SQLite uses a partial index only for a query that repeats
# its WHERE literally (a bound `state NOT IN (?, ?)` makes it scan the account's whole history).
LIVE_PREDICATE = _dead
_due = "state = 'queued'"
_posted = "state = 'posted'"
_missing = "state = 'posted' AND tweets_recorded < part_count"
_in_flight = "state IN ('claimed', 'posting', 'unknown')"

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("handle", sa.String(64), primary_key=True),
    sa.Column("storage_state_path", sa.Text, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
)

content_items = sa.Table(
    "content_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), sa.ForeignKey("accounts.handle"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("parts", sa.JSON, nullable=False),  # list[str]; a single is one part
    sa.Column("part_count", sa.Integer, nullable=False),
    sa.Column("reply_to", sa.String(32)),
    sa.Column("topic", sa.String(64)),
    sa.Column("format", sa.String(32)),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default=QUEUED),
    sa.Column("scheduled_at", UtcDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # tries started (intents written)
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),  # failed tries since the last confirmed part (toward max_attempts)
    sa.Column("unknown_checks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_checked_at", UtcDateTime),
    sa.Column("error_class", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("source", sa.String(32), nullable=False, server_default="operator"),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("posted_at", UtcDateTime),
    # Tweet rows of this item, kept by database triggers on `tweets` (migration 0006): the missing-id check.
    sa.Column("tweets_recorded", sa.Integer, nullable=False, server_default="0"),
    # Per part, a list of MediaRef JSON (pipeline/media.py); NULL on rows from before media (migration 0007).
    sa.Column("media", sa.JSON),
    sa.CheckConstraint("kind IN ('single', 'thread', 'reply')", name="kind"),
    sa.CheckConstraint(
        "state IN ('queued', 'claimed', 'posting', 'posted', 'unknown', 'failed', 'cancelled', 'needs_review', "
        "'pending_approval')",
        name="state",
    ),
    sa.Index(
        "uq_content_items_live_fingerprint",
        "account",
        "fingerprint",
        unique=True,
        sqlite_where=sa.text(_dead),
        postgresql_where=sa.text(_dead),
    ),
    # The claim query's index: only queued rows, per account by due time (stays small at 1M posted rows).
    sa.Index("ix_content_items_due", "account", "scheduled_at", sqlite_where=sa.text(_due),
             postgresql_where=sa.text(_due)),
    sa.Index("ix_content_items_account_state", "account", "state"),
    # Integrity checks and sensors: recent posts, and the small in-flight slice (pipeline/integrity.py).
    sa.Index("ix_content_items_posted_at", "posted_at", sqlite_where=sa.text(_posted),
             postgresql_where=sa.text(_posted)),
    sa.Index("ix_content_items_in_flight", "updated_at", sqlite_where=sa.text(_in_flight),
             postgresql_where=sa.text(_in_flight)),
    # Only posted items with fewer tweet rows than parts: the full-history missing-id check reads this.
    sa.Index("ix_content_items_missing_tweets", "id", sqlite_where=sa.text(_missing),
             postgresql_where=sa.text(_missing)),
)

tweets = sa.Table(
    "tweets",
    metadata,
    sa.Column("tweet_id", sa.String(32), primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("content_items.id"), nullable=False),
    sa.Column("part_index", sa.Integer, nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("posted_at", UtcDateTime, nullable=False),
    sa.Column("recorded_via", sa.String(16), nullable=False, server_default="response"),
    # the post's media as one canonical string (pipeline.media.media_key; '' for none, migration 0008): the same
    # text with another image is another post, not a duplicate
    sa.Column("media_hashes", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("item_id", "part_index"),
    sa.Index("ix_tweets_posted_at", "posted_at"),
    sa.Index("ix_tweets_text", "text", postgresql_using="hash"),  # duplicate-text probes
)

post_attempts = sa.Table(
    "post_attempts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # uuid4, also written to the journal
    sa.Column("item_id", sa.Integer, sa.ForeignKey("content_items.id"), nullable=False),
    sa.Column("part_index", sa.Integer, nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("worker", sa.String(128), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    # pending (intent committed, browser acting) | posted | unknown | failed | retry | reconciled
    sa.Column("outcome", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("error_class", sa.String(32)),
    sa.Column("error", sa.Text),
    sa.Column("tweet_id", sa.String(32)),
    sa.Index("ix_post_attempts_item", "item_id", "part_index"),
)

# What an operator decided about an item (`pipeline resolve`, `pipeline approve`), with when and why.
resolutions = sa.Table(
    "resolutions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("content_items.id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # tweet_id | requeue | cancel | approve
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("tweet_ids", sa.JSON),
    sa.Column("reason", sa.Text),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("ix_resolutions_item_id", "item_id"),
)

metric_snapshots = sa.Table(
    "metric_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tweet_id", sa.String(32), sa.ForeignKey("tweets.tweet_id"), nullable=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("captured_at", UtcDateTime, nullable=False),
    sa.Column("age_label", sa.String(8), nullable=False),
    sa.Column("likes", sa.Integer, nullable=False),
    sa.Column("retweets", sa.Integer, nullable=False),
    sa.Column("replies", sa.Integer, nullable=False),
    sa.Column("quotes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bookmarks", sa.Integer, nullable=False),
    sa.Column("views", sa.Integer, nullable=False),
    # The newest snapshot of its tweet (by captured_at): learning reads only these rows, ~1/3 of the table,
    # instead of finding the newest per tweet on every run. At most one per tweet, enforced below.
    sa.Column("is_latest", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("tweet_id", "age_label"),
    sa.Index("ix_metric_snapshots_tweet_captured", "tweet_id", "captured_at"),
    sa.Index("uq_metric_snapshots_latest", "tweet_id", unique=True, sqlite_where=sa.text("is_latest"),
             postgresql_where=sa.text("is_latest")),
)

breaker_state = sa.Table(
    "breaker_state",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="closed"),
    sa.Column("reason", sa.Text),
    sa.Column("opened_at", UtcDateTime),
    sa.Column("open_until", UtcDateTime),  # NULL while forced open: only a reset or a session check closes it
    sa.Column("trips", sa.Integer, nullable=False, server_default="0"),  # consecutive opens: the break grows
    sa.Column("probe_deadline", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
)

breaker_events = sa.Table(
    "breaker_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("error_class", sa.String(32)),  # NULL for a success
    sa.Column("weight", sa.Float, nullable=False),
    sa.Index("ix_breaker_events_account_at", "account", "at"),
)

breaker_transitions = sa.Table(
    "breaker_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("delivered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("delivery_error", sa.Text),
    sa.Index("ix_alerts_key_created", "key", "created_at"),
)

# What the pipeline's own jobs did, so `pipeline health` can tell a plan that stopped from a quiet one.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(32), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("ok", sa.Boolean),
    sa.Column("produced", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_job_runs_job_finished", "job", "finished_at"),
)

# Drafts consumed by the drafts generator, so no draft is ever used twice.
used_drafts = sa.Table(
    "used_drafts",
    metadata,
    sa.Column("draft_key", sa.String(64), primary_key=True),
    sa.Column("used_at", UtcDateTime, nullable=False),
)

# Tokens spent by the LLM generator per UTC day (its daily budget).
llm_spend = sa.Table(
    "llm_spend",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),
)

# One posting run per account at a time, whatever launched it (sensor, UI, `dagster job execute`, a backfill):
# the run holds this row's lease while it posts for the account (pipeline/dispatch.py).
account_leases = sa.Table(
    "account_leases",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

# Tweets per (account, exact text, media), kept by database triggers on `tweets` (migrations 0006, 0008); the
# partial index holds only posts made more than once, so the full-history same-text duplicate check reads only those.
tweet_text_counts = sa.Table(
    "tweet_text_counts",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("text", sa.Text, primary_key=True),
    sa.Column("media_hashes", sa.Text, primary_key=True, server_default=""),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Index("ix_tweet_text_counts_repeated", "account", sqlite_where=sa.text("n > 1"),
             postgresql_where=sa.text("n > 1")),
)
