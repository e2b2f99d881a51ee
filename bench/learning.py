"""content_performance over 1M metric snapshots (goal < 3 s) and plan_slots for 10k slots (goal < 1 s).

    .venv/bin/python bench/learning.py [--snapshots 1000000] [--slots 10000] [--repeat 3] [--postgres]

What is measured (median of --repeat runs, wall clock):
- sql_load: `learning.latest_snapshots(engine)` on a real SQLite file (WAL, the app's own engine and migrated
  schema): the snapshots marked latest (metric_snapshots.is_latest), the join with tweets/content_items, the fetch, and
  the DataFrame with parsed UTC times and account-local hours. With --postgres the same on a throwaway
  PostgreSQL database (loaded with COPY).
- pandas_step: `performance_table` + `topic_weights` + `markdown_table` on that frame.
- content_performance: the two together, i.e. what the Dagster asset does. The goal applies to this.
- pandas_1m_in_memory: `performance_table` straight over a 1M-row in-memory DataFrame (every snapshot, no
  dedupe), to show the pandas step alone scales to the raw row count.
- plan_slots: 10k slots for one account with the default cadence (2/hour, 24/day, 20 min apart), quiet hours
  23-7 in Europe/London (so the run crosses DST changes) and 100 existing items.

The synthetic data: snapshots at ages 1h, 24h and 7d (the default PIPELINE_METRICS_AGES), so 1M snapshots
are ~333k tweets; inserted in capture-time order, as the metrics job writes them, not grouped by tweet.
Prints a JSON object and a Markdown table; writes bench/results/learning.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is sys.path[0]; a bench module named like a stdlib one (bench/queue.py) would then
# shadow it for pandas' own imports. Import from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline import learning  # noqa: E402
from pipeline.db import dispose_engines, get_engine  # noqa: E402
from pipeline.migrate import upgrade  # noqa: E402
from pipeline.planning import SlotRules, parse_quiet_hours, plan_slots  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "learning.json"
GOALS = {"content_performance_s": 3.0, "plan_slots_s": 1.0}
TOPICS = ["python", "data-engineering", "devops", "career", "open-source"]
FORMATS = ["tip", "question", "opinion", "story", "how-to"]
ACCOUNTS = [("bench_uk", "Europe/London"), ("bench_ny", "America/New_York"), ("bench_utc", "UTC")]
AGES = [("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7))]
START = datetime(2025, 1, 1, tzinfo=UTC)


def _ts(values: np.ndarray) -> list[str]:
    """Microseconds since the epoch -> the text UtcDateTime stores on SQLite."""
    return pd.to_datetime(values, unit="us").strftime("%Y-%m-%d %H:%M:%S.%f").tolist()


def synthetic(n_snapshots: int, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Items, tweets and snapshots as frames (vectorised: building 1M rows must not dominate the bench)."""
    rng = np.random.default_rng(seed)
    n_tweets = -(-n_snapshots // len(AGES))
    start_us = int(START.timestamp() * 1e6)
    posted = start_us + np.sort(rng.integers(0, 365 * 86_400, n_tweets)) * 1_000_000
    topic = rng.integers(0, len(TOPICS), n_tweets)
    fmt = rng.integers(0, len(FORMATS), n_tweets)
    account = rng.integers(0, len(ACCOUNTS), n_tweets)
    ids = np.arange(1, n_tweets + 1)
    items = pd.DataFrame({
        "id": ids, "account": [ACCOUNTS[a][0] for a in account], "topic": [TOPICS[t] for t in topic],
        "format": [FORMATS[f] for f in fmt], "posted_us": posted,
    })
    tweets = pd.DataFrame({"tweet_id": (1_800_000_000_000_000_000 + ids).astype(str), "item_id": ids,
                           "account": items["account"], "posted_us": posted})
    # Snapshots: each tweet at each age, engagement depending on topic so the table has a real signal.
    base_rate = np.array([0.05, 0.03, 0.03, 0.02, 0.04])[topic]
    frames = []
    for n, (label, age) in enumerate(AGES):
        views = rng.integers(50, 5000, n_tweets) * (n + 1)
        likes = rng.binomial(views, base_rate)
        frames.append(pd.DataFrame({
            "tweet_id": tweets["tweet_id"], "item_id": ids, "account": items["account"],
            "captured_us": posted + int(age.total_seconds() * 1e6) + rng.integers(0, 600, n_tweets) * 1_000_000,
            "age_label": label, "likes": likes, "retweets": likes // 10, "replies": likes // 20,
            "quotes": likes // 50, "bookmarks": likes // 15, "views": views,
        }))
    snaps = pd.concat(frames, ignore_index=True).sort_values("captured_us", kind="stable").head(n_snapshots)
    snaps["is_latest"] = ~snaps.duplicated("tweet_id", keep="last")  # what metrics.record_snapshot keeps
    return {"items": items, "tweets": tweets, "snapshots": snaps.reset_index(drop=True)}


def load_sqlite(path: Path, data: dict[str, pd.DataFrame]) -> None:
    upgrade(get_engine(f"sqlite:///{path}"))
    dispose_engines()
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute("PRAGMA synchronous=OFF")
    items, tweets, snaps = data["items"], data["tweets"], data["snapshots"]
    created = _ts(START.timestamp() * 1e6 + np.zeros(1, dtype="int64"))[0]
    with con:
        con.executemany("INSERT INTO accounts (handle, storage_state_path, timezone, created_at) VALUES (?, '', ?, ?)",
                        [(h, tz, created) for h, tz in ACCOUNTS])
        posted = _ts(items["posted_us"].to_numpy())
        con.executemany(
            "INSERT INTO content_items (id, account, kind, parts, part_count, topic, format, fingerprint, state, "
            "scheduled_at, attempts, failures, unknown_checks, source, created_at, updated_at, posted_at) "
            "VALUES (?, ?, 'single', '[\"x\"]', 1, ?, ?, ?, 'posted', ?, 1, 0, 0, 'planner', ?, ?, ?)",
            zip(items["id"].tolist(), items["account"], items["topic"], items["format"],
                (f"fp{i}" for i in items["id"].tolist()), posted, posted, posted, posted, strict=True),
        )
        con.executemany(
            "INSERT INTO tweets (tweet_id, item_id, part_index, account, text, posted_at, recorded_via) "
            "VALUES (?, ?, 0, ?, 'x', ?, 'response')",
            zip(tweets["tweet_id"], tweets["item_id"].tolist(), tweets["account"], posted, strict=True),
        )
        con.executemany(
            "INSERT INTO metric_snapshots (tweet_id, item_id, account, captured_at, age_label, likes, retweets, "
            "replies, quotes, bookmarks, views, is_latest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            zip(snaps["tweet_id"], snaps["item_id"].tolist(), snaps["account"], _ts(snaps["captured_us"].to_numpy()),
                snaps["age_label"], snaps["likes"].tolist(), snaps["retweets"].tolist(), snaps["replies"].tolist(),
                snaps["quotes"].tolist(), snaps["bookmarks"].tolist(), snaps["views"].tolist(),
                snaps["is_latest"].astype(int).tolist(), strict=True),
        )
    con.execute("ANALYZE")
    con.close()


def load_postgres(url: str, data: dict[str, pd.DataFrame]) -> None:
    engine = get_engine(url)
    upgrade(engine)
    items, tweets, snaps = data["items"], data["tweets"], data["snapshots"]

    def iso(us: pd.Series) -> pd.Series:
        return pd.to_datetime(us, unit="us", utc=True).dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")

    copies = [
        ("accounts (handle, storage_state_path, timezone, created_at)",
         pd.DataFrame([(h, "/nonexistent", tz, "2025-01-01 00:00:00+00") for h, tz in ACCOUNTS])),
        ("content_items (id, account, kind, parts, part_count, topic, format, fingerprint, state, scheduled_at, "
         "source, created_at, updated_at, posted_at)",
         pd.DataFrame({"id": items["id"], "account": items["account"], "kind": "single", "parts": '["x"]',
                       "part_count": 1, "topic": items["topic"], "format": items["format"],
                       "fingerprint": "fp" + items["id"].astype(str), "state": "posted",
                       "scheduled_at": iso(items["posted_us"]), "source": "planner",
                       "created_at": iso(items["posted_us"]), "updated_at": iso(items["posted_us"]),
                       "posted_at": iso(items["posted_us"])})),
        ("tweets (tweet_id, item_id, part_index, account, text, posted_at)",
         pd.DataFrame({"tweet_id": tweets["tweet_id"], "item_id": tweets["item_id"], "part_index": 0,
                       "account": tweets["account"], "text": "x", "posted_at": iso(tweets["posted_us"])})),
        ("metric_snapshots (tweet_id, item_id, account, captured_at, age_label, likes, retweets, replies, quotes, "
         "bookmarks, views, is_latest)",
         snaps.assign(captured_at=iso(snaps["captured_us"]))[[
             "tweet_id", "item_id", "account", "captured_at", "age_label", "likes", "retweets", "replies", "quotes",
             "bookmarks", "views", "is_latest"]]),
    ]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for target, frame in copies:
            buf = io.StringIO()
            frame.to_csv(buf, index=False, header=False)
            buf.seek(0)
            cur.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv)", buf)
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


CPU: dict[str, float] = {}  # median process CPU seconds per measurement: robust to a machine shared with others


def timed(fn: Callable[[], Any], repeat: int, name: str = "") -> tuple[float, Any]:
    """Median wall time over `repeat` runs, and the last result (CPU time kept in CPU[name])."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if name:
        CPU[name] = round(statistics.median(cpu), 3)
    return statistics.median(times), result


# The baseline: the same read, but finding each tweet's newest snapshot at read time (what learning did before
# metric_snapshots.is_latest): a correlated subquery per tweet on SQLite, DISTINCT ON over every snapshot on
# PostgreSQL. Same columns, same client path; only the FROM differs.
_SEARCH_FROM = {
    "sqlite": "FROM tweets t JOIN metric_snapshots m ON m.id = (SELECT s.id FROM metric_snapshots s "
              "WHERE s.tweet_id = t.tweet_id ORDER BY s.captured_at DESC, s.id DESC LIMIT 1) "
              "JOIN content_items c ON c.id = t.item_id",
    "postgresql": "FROM (SELECT DISTINCT ON (tweet_id) * FROM metric_snapshots ORDER BY tweet_id, captured_at DESC, "
                  "id DESC) m JOIN tweets t ON t.tweet_id = m.tweet_id JOIN content_items c ON c.id = t.item_id",
}


def _searching(marked_sql: str, dialect: str) -> str:
    return marked_sql[: marked_sql.index("FROM metric_snapshots m")] + _SEARCH_FROM[dialect]


def content_performance_searching(engine: Any) -> Any:
    """content_performance with the read-time search instead of the marked rows."""
    name = "_LATEST_SQL_PG" if engine.dialect.name == "postgresql" else "_LATEST_SQL_TEXT"
    marked = getattr(learning, name)
    setattr(learning, name, _searching(marked, engine.dialect.name))
    try:
        return learning.markdown_table(learning.performance_table(learning.latest_snapshots(engine)))
    finally:
        setattr(learning, name, marked)


def bench_content_performance(engine: Any, repeat: int) -> dict[str, Any]:
    load_s, df = timed(lambda: learning.latest_snapshots(engine), repeat, "sql_load")

    def pandas_step() -> Any:
        table = learning.performance_table(df)
        learning.topic_weights(table)
        learning.markdown_table(table)
        return table

    pandas_s, table = timed(pandas_step, repeat, "pandas_step")
    total_s, _ = timed(lambda: learning.markdown_table(learning.performance_table(learning.latest_snapshots(engine))),
                       repeat, "content_performance")
    baseline_s, baseline_md = timed(lambda: content_performance_searching(engine), repeat, "baseline_search")
    assert baseline_md == learning.markdown_table(table), "the baseline must compute the same table"
    top = table[table["dimension"] == "topic"].sort_values("smoothed_rate", ascending=False)
    return {"sql_load_s": round(load_s, 3), "pandas_step_s": round(pandas_s, 3),
            "content_performance_s": round(total_s, 3),
            "baseline_search_latest_s": round(baseline_s, 3),
            "cpu_s": {k: CPU[k] for k in ("sql_load", "pandas_step", "content_performance", "baseline_search")},
            "tweets": int(len(df)), "best_topic": str(top.iloc[0]["value"])}


def bench_plan_slots(n: int, repeat: int) -> dict[str, Any]:
    rules = SlotRules(quiet_hours=parse_quiet_hours("23-7"))
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    rng = random.Random(5)
    existing = [now + timedelta(minutes=rng.randint(-1440, 3 * 1440)) for _ in range(100)]
    seconds, slots = timed(lambda: plan_slots(existing, now, n, rules, "Europe/London", random.Random(1)), repeat,
                           "plan_slots")
    return {"plan_slots_s": round(seconds, 3), "cpu_s": CPU["plan_slots"], "slots": len(slots),
            "span_days": round((slots[-1] - slots[0]).total_seconds() / 86_400, 1)}


def markdown(result: dict[str, Any]) -> str:
    rows = [("SQLite: latest_snapshots (SQL load + DataFrame)", result["sqlite"]["sql_load_s"], None),
            ("SQLite: pandas step (table, weights, Markdown)", result["sqlite"]["pandas_step_s"], None),
            ("SQLite: content_performance end to end", result["sqlite"]["content_performance_s"],
             GOALS["content_performance_s"]),
            ("SQLite baseline: same, newest snapshot searched at read time",
             result["sqlite"]["baseline_search_latest_s"], None)]
    if "postgres" in result:
        rows += [("PostgreSQL: latest_snapshots (SQL load + DataFrame)", result["postgres"]["sql_load_s"], None),
                 ("PostgreSQL: pandas step", result["postgres"]["pandas_step_s"], None),
                 ("PostgreSQL: content_performance end to end", result["postgres"]["content_performance_s"],
                  GOALS["content_performance_s"]),
                 ("PostgreSQL baseline: same, newest snapshot searched at read time",
                  result["postgres"]["baseline_search_latest_s"], None)]
    rows += [(f"In memory: performance_table over {result['snapshots']:,} rows", result["pandas_1m_in_memory_s"], None),
             (f"plan_slots: {result['plan']['slots']:,} slots", result["plan"]["plan_slots_s"], GOALS["plan_slots_s"])]
    out = ["| measurement | wall s | goal | ok |", "|---|---:|---:|:---:|"]
    for name, seconds, goal in rows:
        ok = "" if goal is None else ("yes" if seconds < goal else "NO")
        out.append(f"| {name} | {seconds:.3f} | {'' if goal is None else f'< {goal:g}'} | {ok} |")
    out.append(f"\nMedian of {result['repeat']} runs; load average {result['load_average']} (CPUs: "
               f"{result['machine']['cpus']}), so wall times include waiting for other processes' CPU.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=1_000_000)
    parser.add_argument("--slots", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also run on a throwaway PostgreSQL database")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = synthetic(args.snapshots)
    result: dict[str, Any] = {
        "benchmark": "learning", "snapshots": int(len(data["snapshots"])), "tweets": int(len(data["tweets"])),
        "repeat": args.repeat, "statistic": "median wall seconds",
        "machine": {"python": platform.python_version(), "pandas": pd.__version__, "platform": platform.platform(),
                    "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count()},
        "goals": GOALS,
    }
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        path = Path(tmp) / "bench.db"
        load_sqlite(path, data)
        result["sqlite_build_s"] = round(time.perf_counter() - t0, 1)
        result["sqlite"] = bench_content_performance(get_engine(f"sqlite:///{path}"), args.repeat)
        dispose_engines()
    if args.postgres:
        from tests import pg

        admin = pg.admin_url()
        url = pg.create_database(admin, prefix="bench_learning")
        try:
            load_postgres(url, data)
            result["postgres"] = bench_content_performance(get_engine(url), args.repeat)
        finally:
            dispose_engines()
            pg.drop_database(admin, url)

    frame = data["snapshots"].merge(data["items"][["id", "topic", "format", "posted_us"]], left_on="item_id",
                                    right_on="id")
    frame["hour"] = pd.to_datetime(frame["posted_us"], unit="us").dt.hour
    seconds, _ = timed(lambda: learning.performance_table(frame), args.repeat, "pandas_1m")
    result["pandas_1m_in_memory_s"] = round(seconds, 3)
    result["pandas_1m_in_memory_cpu_s"] = CPU["pandas_1m"]
    result["plan"] = bench_plan_slots(args.slots, args.repeat)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    checks = [result["sqlite"]["content_performance_s"] < GOALS["content_performance_s"],
              result["plan"]["plan_slots_s"] < GOALS["plan_slots_s"]]
    if "postgres" in result:
        checks.append(result["postgres"]["content_performance_s"] < GOALS["content_performance_s"])
    result["ok"] = all(checks)

    print(json.dumps(result, indent=2))
    print()
    print(markdown(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
