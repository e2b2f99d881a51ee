"""Engagement snapshots of our own posts, read through the X web client (the core behind `tweet_metrics`).

Each tweet is snapshotted when it crosses an age (default 1 h, 24 h, 7 d), at most `metrics_per_run`
per run, skipping tweets snapshotted in the last 30 minutes. Because every post has its tweet id (the
posting protocol guarantees it), the learning loop finally gets the data the predecessor lost.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import queue
from pipeline import schema as s
from pipeline.breaker import Breaker
from pipeline.browser import BrowserSession
from pipeline.db import db_now, transaction
from pipeline.failures import XError, classify
from pipeline.logs import log_event
from pipeline.settings import Settings
from pipeline.xweb import XWebClient

log = logging.getLogger("pipeline.metrics")
RECENT = timedelta(minutes=30)
_AGE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ages(spec: str) -> list[tuple[str, timedelta]]:
    """'1h,24h,7d' -> [('1h', 1 h), ('24h', 24 h), ('7d', 7 d)], ascending."""
    ages = []
    for raw in spec.split(","):
        match = _AGE.match(raw)
        if not match:
            raise ValueError(f"PIPELINE_METRICS_AGES: {raw!r} is not an age like 1h, 24h or 7d")
        ages.append((raw.strip(), timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])))
    return sorted(ages, key=lambda a: a[1])


@dataclass
class MetricsReport:
    snapshots: int = 0
    skipped: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Due:
    tweet_id: str
    item_id: int
    account: str
    label: str


def due_snapshots(engine: Engine, ages: list[tuple[str, timedelta]], day: date | None, limit: int) -> tuple[list[Due], int]:
    """Tweets that crossed an age without a snapshot for it (oldest crossing first), and how many were
    skipped as snapshotted recently. `day` restricts to tweets posted that UTC day (a partition)."""
    with engine.connect() as conn:
        now = db_now(conn)
        query = sa.select(s.tweets.c.tweet_id, s.tweets.c.item_id, s.tweets.c.account, s.tweets.c.posted_at)
        if day is not None:
            start = datetime.combine(day, time(), UTC)
            query = query.where(s.tweets.c.posted_at >= start, s.tweets.c.posted_at < start + timedelta(days=1))
        else:
            query = query.where(s.tweets.c.posted_at >= now - ages[-1][1] - timedelta(days=1))
        tweets = conn.execute(query.order_by(s.tweets.c.posted_at)).all()
        taken: dict[str, set[str]] = {}
        last: dict[str, datetime] = {}
        ids = [t.tweet_id for t in tweets]
        for chunk in range(0, len(ids), 500):
            rows = conn.execute(
                sa.select(s.metric_snapshots.c.tweet_id, s.metric_snapshots.c.age_label, s.metric_snapshots.c.captured_at)
                .where(s.metric_snapshots.c.tweet_id.in_(ids[chunk:chunk + 500]))
            )
            for tweet_id, label, captured in rows:
                taken.setdefault(tweet_id, set()).add(label)
                last[tweet_id] = max(captured, last.get(tweet_id, captured))
    due: list[Due] = []
    skipped = 0
    for t in tweets:
        crossed = [label for label, age in ages if t.posted_at + age <= now]
        if not crossed or crossed[-1] in taken.get(t.tweet_id, set()):
            continue
        if t.tweet_id in last and now - last[t.tweet_id] < RECENT:
            skipped += 1
            continue
        due.append(Due(t.tweet_id, t.item_id, t.account, crossed[-1]))  # the latest age crossed
    return due[:limit], skipped + max(0, len(due) - limit)


SNAPSHOT_COUNTS = ("likes", "retweets", "replies", "quotes", "bookmarks", "views")


def collect_metrics(engine: Engine, settings: Settings, browser: BrowserSession, day: date | None = None,
                    alerts: Any = None) -> MetricsReport:
    """Snapshot engagement for due tweets, per account, skipping accounts whose breaker is forced open."""
    report = MetricsReport()
    due, report.skipped = due_snapshots(engine, parse_ages(settings.metrics_ages), day, settings.metrics_per_run)
    blocked = {r["account"] for r in Breaker(engine).status() if r["state"] == "forced_open"}
    clients: dict[str, XWebClient] = {}
    for d in due:
        if d.account in blocked:
            report.skipped += 1
            continue
        try:
            client = clients.get(d.account)
            if client is None:
                account = queue.get_account(engine, d.account)
                page = browser.page(d.account, account["storage_state_path"])
                client = clients[d.account] = XWebClient(page, settings.x_base_url, d.account, settings.nav_timeout_s)
            counts = client.engagement(d.tweet_id)
        except (XError, FileNotFoundError, ValueError) as exc:
            cls = str(classify(exc))
            report.errors[cls] = report.errors.get(cls, 0) + 1
            log_event(log, "metrics_error", logging.WARNING, account=d.account, tweet_id=d.tweet_id, error_class=cls,
                      error=str(exc))
            if cls == "auth":
                blocked.add(d.account)
            continue
        with transaction(engine) as conn:
            if record_snapshot(conn, d.tweet_id, d.item_id, d.account, d.label, db_now(conn), asdict(counts)):
                report.snapshots += 1
        log_event(log, "metrics_snapshot", account=d.account, tweet_id=d.tweet_id, label=d.label)
    return report


def record_snapshot(conn: sa.Connection, tweet_id: str, item_id: int, account: str, label: str,
                    captured_at: datetime, counts: Mapping[str, int]) -> bool:
    """Store one snapshot (once per tweet and age) and keep `is_latest` on the tweet's newest by captured_at,
    so learning reads those rows directly. Returns False when that age was already recorded. The database
    refuses a second latest row per tweet (a partial unique index), so a race fails loudly, never silently."""
    m = s.metric_snapshots.c
    if conn.execute(sa.select(m.id).where(m.tweet_id == tweet_id, m.age_label == label)).first() is not None:
        return False
    current = conn.execute(sa.select(m.id, m.captured_at).where(m.tweet_id == tweet_id, m.is_latest)).first()
    newest = current is None or captured_at >= current.captured_at
    if newest and current is not None:
        conn.execute(s.metric_snapshots.update().where(m.id == current.id).values(is_latest=False))
    conn.execute(s.metric_snapshots.insert().values(
        tweet_id=tweet_id, item_id=item_id, account=account, captured_at=captured_at, age_label=label,
        is_latest=newest, **{k: int(counts.get(k, 0)) for k in SNAPSHOT_COUNTS},
    ))
    return True

