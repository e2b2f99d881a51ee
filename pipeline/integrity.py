"""Cheap, indexed questions about the app database, asked by asset checks, sensors and `pipeline health`.

Every function here is one or two SQL statements driven by an index, so a sensor tick stays in
milliseconds and a check stays under a second with a million posted rows:

- The duplicate and missing-id checks cover the *whole history* by reading summaries the database keeps
  with triggers on `tweets` (migrations 0006, 0008): `tweet_text_counts` (tweets per account, text and media) and
  `content_items.tweets_recorded`, each behind a partial index that holds only the offending rows, so the
  read costs the same at 1M rows as at 1k. Same content is ruled out by `uq_content_items_live_fingerprint`.
  A `lookback_days` window (posts of the last N days, each probed against the whole history) remains for
  the post run's quick look at its own posts.
- Stuck items and over-limit content read only the small in-flight and queued slices of the queue.

Nothing here imports Dagster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline import schema as s
from pipeline.content import ContentError, validate_parts
from pipeline.db import db_now, is_sqlite
from pipeline.media import from_column, verify

items = s.content_items
tweets = s.tweets
MAX_ROWS = 1000  # offending rows fetched per check; the total says "at least" past this
DEFAULT_LOOKBACK_DAYS = 0  # the whole history: the summaries of migration 0006 make it an index read
IN_FLIGHT = (s.CLAIMED, s.POSTING, s.UNKNOWN)

# Indexes these queries rely on beyond the initial schema (migration 0002 creates them).
PROPOSED_INDEXES = {
    "ix_content_items_posted_at": "content_items (posted_at) WHERE state = 'posted'",
    "ix_tweets_text": "tweets USING hash (text) on PostgreSQL, btree (text) on SQLite",
    "ix_content_items_in_flight": "content_items (updated_at) WHERE state IN ('claimed', 'posting', 'unknown')",
}


@dataclass
class Finding:
    """What a check found: `total` offending rows (at least, when `truncated`), a sample, the scope."""

    name: str
    total: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    scope: str = ""
    truncated: bool = False
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.total == 0

    def sample(self, n: int = 20) -> list[dict[str, Any]]:
        return self.rows[:n]


@contextmanager
def _reader(engine: Engine) -> Iterator[Connection]:
    """A read transaction; on PostgreSQL without JIT (its 20-100 ms compile time dwarfs these queries)."""
    with engine.connect() as conn:
        if not is_sqlite(conn):
            conn.exec_driver_sql("SET LOCAL jit = off")
        yield conn
        conn.rollback()


def _since(conn: Connection, lookback_days: float) -> datetime | None:
    return db_now(conn) - timedelta(days=lookback_days) if lookback_days and lookback_days > 0 else None


def _scope(since: datetime | None, lookback_days: float) -> str:
    if since is None:
        return "full history"
    return f"posted since {since.isoformat(timespec='seconds')} ({lookback_days:g} days), compared with the full history"


# --------------------------------------------------------------------------- duplicates


def duplicate_posts(engine: Engine, lookback_days: float = DEFAULT_LOOKBACK_DAYS, limit: int = MAX_ROWS) -> Finding:
    """Posts that exist twice for one account.

    1. same content: two posted items with one (account, fingerprint). The partial unique index
       `uq_content_items_live_fingerprint` makes this impossible for the whole history while it is in force,
       so the check first asks the catalog whether it is (present, unique, valid: one cheap query) and only
       searches the rows when it is not;
    2. same text: a tweet whose exact text and media (`tweets.media_hashes`) the account has posted in another
       tweet row (different items, e.g. a single and a thread part with the same words; X would reject the
       second as 187). The same words with other media are another post (their fingerprints differ too). No constraint
       can forbid this (a deleted tweet may be posted again), so the rows are searched.

    `lookback_days=0` (the default) covers the whole history by reading the summary the database keeps
    (`tweet_text_counts`, migration 0006); a lookback window probes each recent post through an index.
    """
    started = time.perf_counter()
    with _reader(engine) as conn:
        since = _since(conn, lookback_days)
        enforced = live_fingerprint_index_enforced(conn)
        if since is None:
            if not is_sqlite(conn):  # the audit's grouped scans would spill to disk at the default 4 MB
                conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
            rows, truncated = _duplicates_full(conn, limit, content=not enforced)
        else:
            rows, truncated = _duplicates_since(conn, since, limit, content=not enforced)
    scope = _scope(since, lookback_days) + (
        "; same content: ruled out for the whole history by the unique index uq_content_items_live_fingerprint"
        if enforced else "; same content: searched (the unique index uq_content_items_live_fingerprint is MISSING)")
    return Finding("duplicate_posts", len(rows), rows, scope, truncated, _ms(started))


LIVE_FINGERPRINT_INDEX = "uq_content_items_live_fingerprint"


def live_fingerprint_index_enforced(conn: Connection) -> bool:
    """Is the partial unique index on (account, fingerprint) of live items present and valid?"""
    if is_sqlite(conn):
        sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"),
                           {"n": LIVE_FINGERPRINT_INDEX}).scalar()
        return bool(sql) and "UNIQUE" in sql.upper()
    return bool(conn.execute(sa.text(
        "SELECT i.indisunique AND i.indisvalid AND i.indisready FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :n AND i.indrelid = 'content_items'::regclass"
    ), {"n": LIVE_FINGERPRINT_INDEX}).scalar())


def _duplicates_since(conn: Connection, since: datetime, limit: int,
                      content: bool = True) -> tuple[list[dict[str, Any]], bool]:
    rows: list[dict[str, Any]] = []
    found: list[Any] = []
    a, b = items.alias("a"), items.alias("b")
    # A scalar subquery with LIMIT 1 makes PostgreSQL probe uq_content_items_live_fingerprint per recent
    # item instead of hashing the whole table (its estimate favours the hash; the probe is 20x faster).
    twin = (
        sa.select(b.c.id)
        .where(b.c.account == a.c.account, b.c.fingerprint == a.c.fingerprint, b.c.id != a.c.id,
               b.c.state == s.POSTED)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        sa.select(a.c.id, a.c.account, a.c.fingerprint, a.c.posted_at, twin.label("twin"))
        .where(a.c.state == s.POSTED, a.c.posted_at >= since, twin.is_not(None))  # ix_content_items_posted_at
        .order_by(a.c.id).limit(limit)
    )
    if content:
        found = conn.execute(query).all()
    seen: set[frozenset[int]] = set()
    for r in found:
        pair = frozenset((r.id, r.twin))
        if pair not in seen:
            seen.add(pair)
            rows.append(_content_row(r.account, r.id, r.twin, r.fingerprint, r.posted_at))

    t, u = tweets.alias("t"), tweets.alias("u")
    other = sa.exists().where(u.c.text == t.c.text, u.c.account == t.c.account, u.c.media_hashes == t.c.media_hashes,
                              u.c.tweet_id != t.c.tweet_id)
    query = (
        sa.select(t.c.tweet_id, t.c.item_id, t.c.account, t.c.text, t.c.media_hashes, t.c.posted_at)
        .where(t.c.posted_at >= since, other)  # ix_tweets_posted_at, then the hash index ix_tweets_text
        .order_by(t.c.posted_at, t.c.tweet_id).limit(limit)
    )
    text_rows = conn.execute(query).all()
    seen_t: set[frozenset[str]] = set()
    for r in text_rows:
        twin_id = conn.execute(
            sa.select(u.c.tweet_id).where(u.c.text == r.text, u.c.account == r.account,
                                          u.c.media_hashes == r.media_hashes, u.c.tweet_id != r.tweet_id)
            .order_by(u.c.tweet_id).limit(1)
        ).scalar()
        pair = frozenset((r.tweet_id, twin_id or ""))
        if pair not in seen_t:
            seen_t.add(pair)
            rows.append(_text_row(r.account, r.item_id, r.tweet_id, twin_id, r.text, r.posted_at, r.media_hashes))
    return rows, len(found) >= limit or len(text_rows) >= limit


def _duplicates_full(conn: Connection, limit: int, content: bool = True) -> tuple[list[dict[str, Any]], bool]:
    """The whole history from the summaries the database keeps: same text from `tweet_text_counts` (its partial
    index holds only repeated texts); same content, only if its unique index is missing, by a grouped scan."""
    rows: list[dict[str, Any]] = []
    n = sa.func.count()
    found = conn.execute(
        sa.select(items.c.account, items.c.fingerprint, sa.func.min(items.c.id), sa.func.max(items.c.id),
                  sa.func.max(items.c.posted_at))
        .where(items.c.state == s.POSTED)
        .group_by(items.c.account, items.c.fingerprint).having(n > 1).limit(limit)
    ).all() if content else []
    for account, fp, first, last, posted_at in found:
        rows.append(_content_row(account, last, first, fp, posted_at))
    counts = s.tweet_text_counts
    repeated = conn.execute(
        sa.select(counts.c.account, counts.c.text, counts.c.media_hashes)
        .where(counts.c.n > 1)  # ix_tweet_text_counts_repeated
        .order_by(counts.c.account).limit(limit)
    ).all()
    for account, text, media_hashes in repeated:
        pair = conn.execute(  # ix_tweets_text
            sa.select(tweets.c.tweet_id, tweets.c.item_id, tweets.c.posted_at)
            .where(tweets.c.text == text, tweets.c.account == account, tweets.c.media_hashes == media_hashes)
            .order_by(tweets.c.tweet_id).limit(2)
        ).all()
        if len(pair) == 2:
            rows.append(_text_row(account, pair[1].item_id, pair[1].tweet_id, pair[0].tweet_id, text,
                                  pair[1].posted_at, media_hashes))
    return rows, len(found) >= limit or len(repeated) >= limit


def _content_row(account: str, item_id: int, other: int, fp: str, posted_at: datetime | None) -> dict[str, Any]:
    return {"kind": "same content", "account": account, "item_id": item_id, "other": other,
            "detail": f"fingerprint {fp}", "posted_at": _iso(posted_at)}


def _text_row(account: str, item_id: int, tweet_id: str, other: str | None, text: str,
              posted_at: datetime | None, media_hashes: str = "") -> dict[str, Any]:
    files = media_hashes.split(",") if media_hashes else []
    media = f" [+{len(files)} media: {', '.join(h[:12] for h in files)}]" if files else ""
    return {"kind": "same text", "account": account, "item_id": item_id, "other": other,
            "detail": f"tweet {tweet_id}: {_short(text)}{media}", "posted_at": _iso(posted_at)}


# --------------------------------------------------------------------------- missing tweet ids


def missing_tweet_ids(engine: Engine, lookback_days: float = DEFAULT_LOOKBACK_DAYS, limit: int = MAX_ROWS) -> Finding:
    """Posted items with fewer `tweets` rows than parts: a post we claim happened but cannot point to.

    Windowed: recent posted items (ix_content_items_posted_at), each counted through
    uq_tweets_item_id_part_index. Full history (`lookback_days=0`, the default): the trigger-kept
    `tweets_recorded` count, through a partial index that holds only the offending items."""
    started = time.perf_counter()
    with _reader(engine) as conn:
        since = _since(conn, lookback_days)
        if since is not None:
            recorded: Any = (
                sa.select(sa.func.count()).select_from(tweets).where(tweets.c.item_id == items.c.id)
                .scalar_subquery()
            )
            query = sa.select(items.c.id, items.c.account, items.c.kind, items.c.part_count, items.c.posted_at,
                              recorded.label("recorded")).where(items.c.posted_at >= since)
        else:  # the whole history: the partial index ix_content_items_missing_tweets holds exactly these items
            recorded = items.c.tweets_recorded
            query = sa.select(items.c.id, items.c.account, items.c.kind, items.c.part_count, items.c.posted_at,
                              recorded.label("recorded"))
        query = query.where(items.c.state == s.POSTED, recorded < items.c.part_count)
        found = conn.execute(query.order_by(items.c.id).limit(limit)).all()
    rows = [{"item_id": r.id, "account": r.account, "kind": r.kind, "parts": r.part_count,
             "tweets_recorded": r.recorded, "posted_at": _iso(r.posted_at)} for r in found]
    return Finding("missing_tweet_ids", len(rows), rows, _scope(since, lookback_days), len(rows) >= limit,
                   _ms(started))


# --------------------------------------------------------------------------- stuck items


def stuck_items(engine: Engine, lease_s: float, limit: int = MAX_ROWS) -> Finding:
    """The one definition of "stuck" (the asset check, the stuck-work sensor and `pipeline health` all call it):
    `claimed`/`posting` items whose lease expired more than one more lease ago (the worker is gone and no
    posting run, every 5 min, has taken them over), and `unknown` items no reconciliation touched for two leases."""
    grace_s = lease_s
    started = time.perf_counter()
    with _reader(engine) as conn:
        now = db_now(conn)
        expired = now - timedelta(seconds=grace_s)
        untouched = now - timedelta(seconds=lease_s + grace_s)
        query = (
            sa.select(items.c.id, items.c.account, items.c.state, items.c.updated_at, items.c.lease_expires_at,
                      items.c.error_class, items.c.last_error)
            .where(items.c.state.in_(IN_FLIGHT))  # matches the partial index ix_content_items_in_flight
            .where(sa.or_(
                sa.and_(items.c.state.in_([s.CLAIMED, s.POSTING]),
                        sa.or_(items.c.lease_expires_at.is_(None), items.c.lease_expires_at < expired)),
                sa.and_(items.c.state == s.UNKNOWN, items.c.updated_at < untouched),
            ))
            .order_by(items.c.updated_at, items.c.id)
            .limit(limit)
        )
        found = conn.execute(query).all()
    rows = []
    for r in found:
        since = r.lease_expires_at if r.state != s.UNKNOWN and r.lease_expires_at else r.updated_at
        rows.append({"item_id": r.id, "account": r.account, "state": r.state,
                     "stuck_for_min": round((now - since).total_seconds() / 60, 1) if since else None,
                     "error_class": r.error_class, "last_error": _short(r.last_error or "", 80)})
    scope = f"claimed/posting past the lease by {grace_s:g}s, unknown untouched for {lease_s + grace_s:g}s"
    return Finding("stuck_items", len(rows), rows, scope, len(rows) >= limit, _ms(started))


# --------------------------------------------------------------------------- content over the limits


def over_limit_content(engine: Engine, limit: int = MAX_ROWS) -> Finding:
    """Queued or claimed items X would reject for length (280 weighted characters) or thread size (2-25).

    SQL keeps only candidates (more than 25 parts, or JSON longer than 140 characters, which every part
    over 280 weighted characters must be since no character weighs more than 2); Python then measures
    them with the twitter-text rules in `pipeline.content`."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    candidates = 0
    with _reader(engine) as conn:
        query = sa.select(items.c.id, items.c.account, items.c.state, items.c.parts, items.c.part_count).where(
            items.c.state.in_([s.QUEUED, s.CLAIMED]),
            sa.or_(items.c.part_count > 25, items.c.part_count < 1,
                   sa.func.length(sa.cast(items.c.parts, sa.Text)) > 140),
        ).order_by(items.c.id)
        for r in conn.execute(query):
            candidates += 1
            problem = _content_problem(r.parts)
            if problem:
                rows.append({"item_id": r.id, "account": r.account, "state": r.state, "parts": r.part_count,
                             "problem": problem})
                if len(rows) >= limit:
                    break
    finding = Finding("over_limit_content", len(rows), rows, f"queued and claimed items ({candidates} measured)",
                      len(rows) >= limit, _ms(started))
    return finding


def _content_problem(parts: Any) -> str | None:
    try:
        validate_parts(list(parts) if isinstance(parts, list | tuple) else parts)
    except ContentError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- media


MEDIA_STATES = (s.QUEUED, s.CLAIMED, s.POSTING, s.UNKNOWN, s.PENDING_APPROVAL)  # items that may still post


def missing_media(engine: Engine, state_dir: str | Path, limit: int = MAX_ROWS) -> Finding:
    """Items that may still be posted whose media file is missing from the store or no longer matches its
    hash: posting them would send other bytes than were checked, or fail halfway through a thread.

    SQL keeps only rows whose media JSON names a file (text-only items are skipped); each named file is
    hashed once per run, however many items share it."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    problems: dict[str, str | None] = {}
    checked = 0
    with _reader(engine) as conn:
        query = sa.select(items.c.id, items.c.account, items.c.state, items.c.media).where(
            items.c.state.in_(list(MEDIA_STATES)), items.c.media.is_not(None),
            sa.cast(items.c.media, sa.Text).like('%"sha256"%'),
        ).order_by(items.c.id)
        candidates = conn.execute(query).all()
    for r in candidates:
        checked += 1
        for part, refs in enumerate(from_column(r.media, len(r.media)), start=1):
            for ref in refs:
                if ref.sha256 not in problems:
                    problems[ref.sha256] = verify(state_dir, ref)
                if problems[ref.sha256]:
                    rows.append({"item_id": r.id, "account": r.account, "state": r.state, "part": part,
                                 "sha256": ref.sha256, "problem": problems[ref.sha256]})
        if len(rows) >= limit:
            break
    return Finding("missing_media", len({row["item_id"] for row in rows}), rows,
                   f"items that may still post ({checked} with media, {len(problems)} files hashed)",
                   len(rows) >= limit, _ms(started))


# --------------------------------------------------------------------------- breakers


def open_breakers(engine: Engine, older_than_s: float = 0.0) -> list[dict[str, Any]]:
    """Breakers not closed whose current opening is older than `older_than_s` (one row per account)."""
    with _reader(engine) as conn:
        now = db_now(conn)
        query = sa.select(s.breaker_state).where(s.breaker_state.c.state != "closed")
        if older_than_s > 0:
            query = query.where(s.breaker_state.c.opened_at < now - timedelta(seconds=older_than_s))
        found = conn.execute(query.order_by(s.breaker_state.c.account)).all()
    out = []
    for r in found:
        m = r._mapping
        out.append({"account": m["account"], "state": m["state"], "reason": m["reason"],
                    "opened_at": _iso(m["opened_at"]), "open_until": _iso(m["open_until"]),
                    "open_for_min": round((now - m["opened_at"]).total_seconds() / 60, 1) if m["opened_at"] else None,
                    "forced": m["state"] == "forced_open" or (m["state"] == "open" and m["open_until"] is None)})
    return out


def breaker_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {state: n for state, n in conn.execute(
            sa.select(s.breaker_state.c.state, sa.func.count()).group_by(s.breaker_state.c.state))}


# --------------------------------------------------------------------------- the queue ahead


@dataclass
class Shortfall:
    account: str
    buffer: int
    target: int


def queue_shortfall(engine: Engine, settings: Any, now: datetime | None = None) -> list[Shortfall]:
    """Accounts holding fewer than `plan_min_items` in their planning buffer.

    The buffer is the planner's own measure (`pipeline.planning._account_state`): queued items due within
    `plan_window_min`, plus queued items the planner placed wherever they landed (caps and quiet hours can
    push them past the window; counting them keeps the sensor from asking for plans all night). Here it is
    ONE grouped query over the queued slice of the queue (ix_content_items_account_state), so a sensor tick
    stays in milliseconds whatever the number of accounts or posted rows."""
    target = int(settings.plan_min_items)
    with _reader(engine) as conn:
        now = now or db_now(conn)
        horizon = now + timedelta(minutes=float(settings.plan_window_min))
        counts = sa.func.count(items.c.id).filter(
            sa.or_(items.c.scheduled_at <= horizon, items.c.source == "planner"))
        rows = conn.execute(
            sa.select(s.accounts.c.handle, counts)
            .select_from(s.accounts.outerjoin(items, sa.and_(items.c.account == s.accounts.c.handle,
                                                             items.c.state == s.QUEUED)))
            .group_by(s.accounts.c.handle)
            .order_by(s.accounts.c.handle)
        ).all()
    return [Shortfall(handle, int(n), target) for handle, n in rows if n < target]


def accounts_without_queue(engine: Engine) -> list[str]:
    """Registered accounts with nothing queued at all (they will go quiet)."""
    with _reader(engine) as conn:
        has_queue = sa.exists().where(items.c.account == s.accounts.c.handle, items.c.state == s.QUEUED)
        return [r[0] for r in conn.execute(
            sa.select(s.accounts.c.handle).where(~has_queue).order_by(s.accounts.c.handle))]


# --------------------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def markdown(rows: list[dict[str, Any]], limit: int = 20) -> str:
    """A Markdown table of the first `limit` rows (asset-check and alert metadata)."""
    if not rows:
        return "_none_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows[:limit]:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in cols) + " |")
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more")
    return "\n".join(lines)
