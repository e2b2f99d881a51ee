"""The learning loop: latest snapshots from the database, Beta smoothing, Thompson sampling with a floor."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline import queue as q
from pipeline import schema as s
from pipeline.bandit import sampling_shares, thompson_choice
from pipeline.learning import (
    latest_snapshots,
    markdown_table,
    performance_table,
    topic_weights,
)
from pipeline.metrics import record_snapshot

T0 = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 19:30 in New York; London changes to BST hours later


def _post(conn: sa.Connection, item_id: int, account: str, topic: str | None, fmt: str | None, tweet_id: str,
          posted_at: datetime) -> None:
    conn.execute(s.content_items.insert().values(
        id=item_id, account=account, kind="single", parts=[f"post {item_id}"], part_count=1, topic=topic,
        format=fmt, fingerprint=f"fp{item_id}", state=s.POSTED, scheduled_at=posted_at, posted_at=posted_at,
        created_at=posted_at, updated_at=posted_at, source="planner",
    ))
    conn.execute(s.tweets.insert().values(tweet_id=tweet_id, item_id=item_id, part_index=0, account=account,
                                          text=f"post {item_id}", posted_at=posted_at))


def _snap(conn: sa.Connection, tweet_id: str, item_id: int, account: str, at: datetime, label: str,
          likes: int, views: int, **more: int) -> None:
    record_snapshot(conn, tweet_id, item_id, account, label, at, {"likes": likes, "views": views, **more})


def test_latest_snapshots_takes_the_newest_per_tweet_with_topic_and_local_hour(engine: sa.Engine) -> None:
    q.add_account(engine, "ny", "/nonexistent/ny.json", timezone="America/New_York")
    q.add_account(engine, "utc", "/nonexistent/utc.json")
    with engine.begin() as conn:
        _post(conn, 1, "ny", "python", "tip", "1001", T0)
        _post(conn, 2, "utc", "devops", "story", "1002", T0 + timedelta(hours=2))
        _post(conn, 3, "utc", None, None, "1003", T0)
        # Inserted out of order on purpose: "latest" is by captured_at, not by insertion.
        _snap(conn, "1001", 1, "ny", T0 + timedelta(days=1), "24h", likes=30, views=1000, retweets=5)
        _snap(conn, "1001", 1, "ny", T0 + timedelta(hours=1), "1h", likes=3, views=100)
        _snap(conn, "1002", 2, "utc", T0 + timedelta(hours=3), "1h", likes=1, views=50, replies=1, quotes=1,
              bookmarks=2)
        _snap(conn, "1003", 3, "utc", T0 + timedelta(hours=1), "1h", likes=0, views=0)
    df = latest_snapshots(engine).set_index("tweet_id")
    assert len(df) == 3
    assert df.loc["1001", "age_label"] == "24h" and df.loc["1001", "likes"] == 30 and df.loc["1001", "retweets"] == 5
    assert df.loc["1001", "topic"] == "python" and df.loc["1001", "format"] == "tip"
    assert df.loc["1001", "hour"] == 19  # posted 23:30 UTC = 19:30 EDT
    assert df.loc["1002", "hour"] == 1 and df.loc["1002", "bookmarks"] == 2
    assert df.loc["1001", "captured_at"] == pd.Timestamp(T0 + timedelta(days=1))
    assert str(df["posted_at"].dt.tz) == "UTC"

    table = performance_table(df.reset_index())
    topic = table[table["dimension"] == "topic"].set_index("value")
    assert topic.loc["python", "engagements"] == 35 and topic.loc["python", "views"] == 1000
    assert topic.loc["devops", "engagements"] == 5 and topic.loc["devops", "views"] == 50
    assert "(none)" not in topic.index  # no views: no information
    assert set(table["dimension"]) == {"topic", "format", "hour"}


def test_latest_snapshots_on_an_empty_database(engine: sa.Engine) -> None:
    df = latest_snapshots(engine)
    assert df.empty and "hour" in df
    table = performance_table(df)
    assert table.empty
    assert topic_weights(table)["topic"] == {}
    assert "No metrics yet" in markdown_table(table)


def _frame(rows: list[tuple[str, str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["topic", "format", "hour", "likes", "views"]).assign(
        retweets=0, replies=0, quotes=0, bookmarks=0)


def test_bayesian_smoothing_pulls_small_samples_toward_the_overall_rate() -> None:
    rows = [("big", "tip", 9, 30, 1000)] * 200  # 3% over 200 posts
    rows += [("lucky", "tip", 9, 40, 100)] * 2  # 40% over 2 posts
    table = performance_table(_frame(rows), prior_posts=20)
    topic = table[table["dimension"] == "topic"].set_index("value")
    assert topic.loc["lucky", "rate"] == pytest.approx(0.4)
    assert topic.loc["lucky", "smoothed_rate"] < 0.1  # two posts do not make a winner
    assert topic.loc["big", "smoothed_rate"] == pytest.approx(0.03, abs=0.002)
    assert topic.loc["lucky", "sd"] > topic.loc["big", "sd"]
    weights = topic_weights(table, floor=0.1)
    assert weights["floor"] == 0.1 and weights["topic"]["big"]["posts"] == 200
    assert weights["prior"]["alpha"] == pytest.approx(table.attrs["prior"]["alpha"])
    # The prior is recoverable when DataFrame attrs are lost (serialised tables).
    stripped = table.copy()
    stripped.attrs = {}
    assert topic_weights(stripped)["prior"]["alpha"] == pytest.approx(weights["prior"]["alpha"], rel=1e-6)


def test_engagement_counts_every_kind_and_is_capped_by_views() -> None:
    df = pd.DataFrame([
        {"topic": "a", "format": "f", "hour": 1, "likes": 1, "retweets": 2, "replies": 3, "quotes": 4, "bookmarks": 5,
         "views": 100},
        {"topic": "b", "format": "f", "hour": 1, "likes": 50, "retweets": 0, "replies": 0, "quotes": 0, "bookmarks": 0,
         "views": 10},
    ])
    topic = performance_table(df).query("dimension == 'topic'").set_index("value")
    assert topic.loc["a", "engagements"] == 15 and topic.loc["a", "rate"] == pytest.approx(0.15)
    assert topic.loc["b", "rate"] == 1.0


def test_thompson_floor_keeps_every_option_alive() -> None:
    weights = {"winner": {"alpha": 5000, "beta": 5000}, "loser": (1, 10_000), "other": (1, 10_000)}
    shares = sampling_shares(weights, random.Random(0), floor=0.1, draws=6000)
    assert shares["loser"] == pytest.approx(0.1, abs=0.02) and shares["other"] == pytest.approx(0.1, abs=0.02)
    assert shares["winner"] > 0.75
    assert thompson_choice({"only": (1, 1)}, random.Random(0), 0.05) == "only"
    with pytest.raises(ValueError):
        thompson_choice({}, random.Random(0))


def test_learning_loop_shifts_toward_the_winning_topic_and_never_starves_the_rest() -> None:
    """Closed loop: sample topics, "post" them with true engagement rates, learn, sample again."""
    rng = random.Random(42)
    np_rng = np.random.default_rng(42)
    true_rate = {"python": 0.08, "devops": 0.03, "career": 0.03, "open-source": 0.03, "data-engineering": 0.03}
    topics = sorted(true_rate)
    floor = 0.05
    history: list[dict] = []
    shares_per_iteration: list[dict[str, float]] = []
    weights: dict | None = None
    for _ in range(8):
        arms = {t: (weights["topic"].get(t, weights["prior"]) if weights else (1.0, 1.0)) for t in topics}
        shares = sampling_shares(arms, rng, floor=floor, draws=3000)
        shares_per_iteration.append(shares)
        for _post_n in range(60):  # one plan-and-measure cycle
            topic = thompson_choice(arms, rng, floor)
            views = int(np_rng.integers(200, 2000))
            likes = int(np_rng.binomial(views, true_rate[topic]))
            history.append({"topic": topic, "format": "tip", "hour": 9, "likes": likes, "retweets": 0, "replies": 0,
                            "quotes": 0, "bookmarks": 0, "views": views})
        weights = topic_weights(performance_table(pd.DataFrame(history)), floor=floor)

    first, last = shares_per_iteration[0]["python"], shares_per_iteration[-1]["python"]
    assert first == pytest.approx(0.2, abs=0.05)  # no data: uniform
    assert last > 0.55 and last > first + 0.3
    wins = [s["python"] for s in shares_per_iteration]
    assert all(b >= a - 0.03 for a, b in zip(wins, wins[1:], strict=False)), wins  # it rises steadily
    for shares in shares_per_iteration:
        for topic in topics:
            assert shares[topic] >= floor - 0.015, f"{topic} starved: {shares[topic]:.3f}"
    assert weights is not None and weights["topic"]["python"]["mean"] > weights["topic"]["devops"]["mean"]


def test_markdown_table_shows_every_dimension_with_bars() -> None:
    rows = [("python", "tip", 9, 50, 1000), ("devops", "story", 14, 20, 1000)] * 5
    md = markdown_table(performance_table(_frame(rows)))
    assert "### Topic" in md and "### Format" in md and "### Hour (account local time)" in md
    assert "| python |" in md and "| 14 |" in md and "█" in md
    lines = [line for line in md.splitlines() if line.startswith("| python") or line.startswith("| devops")]
    assert lines[0].startswith("| python")  # sorted by smoothed rate, best first


def test_a_thread_counts_as_one_post() -> None:
    df = pd.DataFrame([
        {"item_id": 1, "topic": "t", "format": "how-to", "hour": 3, "likes": 10, "views": 1000},  # head
        {"item_id": 1, "topic": "t", "format": "how-to", "hour": 3, "likes": 4, "views": 300},  # part 2
        {"item_id": 2, "topic": "t", "format": "tip", "hour": 3, "likes": 5, "views": 100},
    ]).assign(retweets=0, replies=0, quotes=0, bookmarks=0)
    fmt = performance_table(df).query("dimension == 'format'").set_index("value")
    assert fmt.loc["how-to", "posts"] == 1 and fmt.loc["how-to", "views"] == 1000
    assert fmt.loc["how-to", "engagements"] == 14
