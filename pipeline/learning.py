"""The learning loop: which topics, formats and hours earn engagement, and Thompson sampling over them.

Input is the *latest* metric snapshot of every posted tweet (a 7-day snapshot supersedes the 1-hour one),
joined with the item's topic and format and the hour it went out in the account's own time zone.

Engagement rate = (likes + retweets + replies + quotes + bookmarks) / views, per group, view-weighted.
Smoothing is a Beta prior centred on the overall rate and worth `prior_posts` posts: a topic with two lucky
posts is pulled toward the average instead of winning outright. Each *post* counts as one trial at the
group's rate (not each view: views of one post are not independent, and counting them would make the
posterior absurdly certain after one viral post).

`thompson_choice` draws one sample per option from its Beta posterior and takes the best, except that with
probability `floor * options` it picks uniformly, so every option keeps at least `floor` of the picks and no
topic starves (a loser can recover when the audience changes).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

DEFAULT_FLOOR = 0.05
DEFAULT_PRIOR_POSTS = 20.0
ENGAGEMENT_COLUMNS = ("likes", "retweets", "replies", "quotes", "bookmarks")
DIMENSIONS = ("topic", "format", "hour")
NONE_LABEL = "(none)"
LATEST_COLUMNS = [
    "tweet_id", "item_id", "account", "captured_at", "age_label", *ENGAGEMENT_COLUMNS, "views",
    "posted_at", "part_index", "kind", "topic", "format", "timezone",
]
TABLE_COLUMNS = [
    "dimension", "value", "posts", "views", "engagements", "rate", "alpha", "beta", "smoothed_rate", "sd",
]

# The latest snapshot per tweet, in one pass per dialect:
# - SQLite: a bare-column MAX() aggregate returns the other columns from the row holding the maximum
#   (documented SQLite behaviour), walking the (tweet_id, captured_at) index in order.
# - PostgreSQL: DISTINCT ON over the same index order.
_JOIN = """
JOIN tweets t ON t.tweet_id = l.tweet_id
JOIN content_items c ON c.id = t.item_id
LEFT JOIN accounts a ON a.handle = t.account
"""
_SELECT = """
l.tweet_id, l.item_id, t.account, l.captured_at, l.age_label,
l.likes, l.retweets, l.replies, l.quotes, l.bookmarks, l.views,
t.posted_at, t.part_index, c.kind, c.topic, c.format, a.timezone
"""
_LATEST_SQL = {
    "sqlite": f"""
WITH l AS (
  SELECT tweet_id, item_id, MAX(captured_at) AS captured_at, age_label,
         likes, retweets, replies, quotes, bookmarks, views
  FROM metric_snapshots GROUP BY tweet_id
)
SELECT {_SELECT} FROM l {_JOIN}
""",
    "postgresql": f"""
WITH l AS (
  SELECT DISTINCT ON (tweet_id) tweet_id, item_id, captured_at, age_label,
         likes, retweets, replies, quotes, bookmarks, views
  FROM metric_snapshots ORDER BY tweet_id, captured_at DESC, id DESC
)
SELECT {_SELECT} FROM l {_JOIN}
""",
}
_LATEST_SQL_GENERIC = f"""
WITH l AS (
  SELECT * FROM (
    SELECT m.*, ROW_NUMBER() OVER (PARTITION BY tweet_id ORDER BY captured_at DESC, id DESC) AS rn
    FROM metric_snapshots m
  ) ranked WHERE rn = 1
)
SELECT {_SELECT} FROM l {_JOIN}
"""


def latest_snapshots(engine: Engine) -> pd.DataFrame:
    """One row per tweet: its latest snapshot, topic, format, kind, `posted_at` (UTC) and `hour` (0-23, the
    account's local hour when it was posted; UTC when the account has no zone)."""
    sql = _LATEST_SQL.get(engine.dialect.name, _LATEST_SQL_GENERIC)
    with engine.connect() as conn:
        # The raw DBAPI cursor: no per-value result processing, which is most of the cost at 1M rows.
        cursor = conn.exec_driver_sql(sql)
        rows = cursor.fetchall()
    df = pd.DataFrame.from_records(rows, columns=LATEST_COLUMNS, coerce_float=False)
    return _finish_latest(df)


def _finish_latest(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("captured_at", "posted_at"):
        df[col] = _utc(df[col])
    for col in (*ENGAGEMENT_COLUMNS, "views", "part_index"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    df["timezone"] = df["timezone"].fillna("UTC")
    df["hour"] = local_hours(df["posted_at"], df["timezone"])
    return df


def _utc(col: pd.Series) -> pd.Series:
    """SQLite hands back 'YYYY-MM-DD HH:MM:SS.ffffff' strings (stored UTC); PostgreSQL aware datetimes."""
    if len(col) and isinstance(col.iloc[0], str):
        return pd.to_datetime(col, format="%Y-%m-%d %H:%M:%S.%f", utc=True, errors="coerce")
    return pd.to_datetime(col, utc=True)


def local_hours(posted_at: pd.Series, timezones: pd.Series) -> pd.Series:
    """Local hour of each UTC instant in its own zone; vectorised per distinct zone."""
    hours = pd.Series(np.zeros(len(posted_at), dtype="int64"), index=posted_at.index)
    if not len(posted_at):
        return hours
    for zone in pd.unique(timezones):
        mask = (timezones == zone).to_numpy()
        try:
            local = posted_at[mask].dt.tz_convert(zone)
        except Exception:  # an unknown zone name: UTC rather than no learning at all
            local = posted_at[mask]
        hours[mask] = local.dt.hour.fillna(0).astype("int64").to_numpy()
    return hours


def performance_table(df: pd.DataFrame, prior_posts: float = DEFAULT_PRIOR_POSTS) -> pd.DataFrame:
    """Engagement rate per topic, per format and per local hour, Beta-smoothed (see the module docstring).

    Long format, one row per (dimension, value): posts, views, engagements, the raw view-weighted `rate`, the
    posterior `alpha`/`beta`, `smoothed_rate` (posterior mean) and its `sd`. Rows without views carry no
    information and are left out. Works on `latest_snapshots` output or any frame with those columns.
    """
    if df.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    views = pd.to_numeric(df["views"], errors="coerce").fillna(0).to_numpy(dtype="float64")
    eng = np.zeros(len(df), dtype="float64")
    for col in ENGAGEMENT_COLUMNS:
        if col in df:
            eng += pd.to_numeric(df[col], errors="coerce").fillna(0).to_numpy(dtype="float64").clip(min=0)
    keep = views > 0
    if not keep.any():
        return pd.DataFrame(columns=TABLE_COLUMNS)
    eng = np.minimum(eng, views)  # a like counted before its view must not push a rate over 1
    if "hour" in df:
        hour = df["hour"]
    else:
        hour = _utc(df["posted_at"]).dt.hour
    work = pd.DataFrame({
        "topic": df["topic"].astype("object").where(df["topic"].notna(), NONE_LABEL).to_numpy()[keep],
        "format": df["format"].astype("object").where(df["format"].notna(), NONE_LABEL).to_numpy()[keep],
        "hour": pd.to_numeric(hour, errors="coerce").fillna(-1).astype("int64").to_numpy()[keep],
        "views": views[keep],
        "engagements": eng[keep],
    })
    overall = work["engagements"].sum() / work["views"].sum()
    a0, b0 = overall * prior_posts, (1.0 - overall) * prior_posts
    frames = []
    for dim in DIMENSIONS:
        g = work.groupby(dim, sort=True).agg(
            posts=("views", "size"), views=("views", "sum"), engagements=("engagements", "sum")
        )
        rate = g["engagements"] / g["views"]
        alpha = a0 + g["posts"] * rate
        beta = b0 + g["posts"] * (1.0 - rate)
        total = alpha + beta
        frames.append(pd.DataFrame({
            "dimension": dim,
            "value": g.index.astype(str),
            "posts": g["posts"].astype("int64").to_numpy(),
            "views": g["views"].astype("int64").to_numpy(),
            "engagements": g["engagements"].astype("int64").to_numpy(),
            "rate": rate.to_numpy(),
            "alpha": alpha.to_numpy(),
            "beta": beta.to_numpy(),
            "smoothed_rate": (alpha / total).to_numpy(),
            "sd": np.sqrt(alpha * beta / (total * total * (total + 1.0))).to_numpy(),
        }))
    table = pd.concat(frames, ignore_index=True)
    table.attrs["prior"] = {"alpha": float(a0), "beta": float(b0), "overall_rate": float(overall),
                            "prior_posts": float(prior_posts)}
    return table


def topic_weights(table: pd.DataFrame, floor: float = DEFAULT_FLOOR) -> dict[str, Any]:
    """Beta posteriors for Thompson sampling, JSON-ready:

        {"topic": {name: {"alpha", "beta", "posts", "mean"}}, "format": {...},
         "prior": {"alpha", "beta"}, "floor": floor}

    Options with no data yet (a new topic) get `prior` from the planner.
    """
    out: dict[str, Any] = {"topic": {}, "format": {}, "floor": float(floor),
                           "prior": {"alpha": 1.0, "beta": 1.0}}
    if table is None or table.empty:
        return out
    prior = table.attrs.get("prior")
    if not prior:  # attrs can be lost through serialisation: the prior is recoverable from the rows
        rows = table[table["dimension"] == "topic"]
        overall = float(rows["engagements"].sum()) / max(float(rows["views"].sum()), 1.0)
        prior = {"alpha": overall * DEFAULT_PRIOR_POSTS, "beta": (1.0 - overall) * DEFAULT_PRIOR_POSTS}
    out["prior"] = {"alpha": float(prior["alpha"]), "beta": float(prior["beta"])}
    for dim in ("topic", "format"):
        rows = table[table["dimension"] == dim]
        for value, alpha, beta, posts, mean in zip(rows["value"], rows["alpha"], rows["beta"], rows["posts"],
                                                   rows["smoothed_rate"], strict=True):
            if value == NONE_LABEL:
                continue  # operator items without a topic are not an option the planner can pick
            out[dim][str(value)] = {"alpha": float(alpha), "beta": float(beta), "posts": int(posts),
                                    "mean": float(mean)}
    return out


def _ab(params: Any) -> tuple[float, float]:
    if isinstance(params, Mapping):
        return float(params["alpha"]), float(params["beta"])
    alpha, beta = params
    return float(alpha), float(beta)


def thompson_choice(weights: Mapping[str, Any], rng: random.Random, floor: float = DEFAULT_FLOOR) -> str:
    """Pick one option: uniformly with probability floor x options (the floor), else the best Beta sample.

    `weights` maps option -> {"alpha", "beta"} (or an (alpha, beta) pair): one dimension of `topic_weights`.
    """
    if not weights:
        raise ValueError("thompson_choice needs at least one option")
    names = sorted(weights)
    if rng.random() < min(1.0, max(0.0, floor) * len(names)):
        return rng.choice(names)
    best, best_sample = names[0], -1.0
    for name in names:
        alpha, beta = _ab(weights[name])
        sample = rng.betavariate(max(alpha, 1e-6), max(beta, 1e-6))
        if sample > best_sample:
            best, best_sample = name, sample
    return best


def sampling_shares(weights: Mapping[str, Any], rng: random.Random, floor: float = DEFAULT_FLOOR,
                    draws: int = 2000) -> dict[str, float]:
    """How often each option would be picked (for the UI and tests): a Monte-Carlo estimate."""
    counts = dict.fromkeys(weights, 0)
    for _ in range(draws):
        counts[thompson_choice(weights, rng, floor)] += 1
    return {k: v / draws for k, v in counts.items()}


def markdown_table(table: pd.DataFrame, bar_width: int = 20) -> str:
    """The table as Markdown for Dagster metadata, one section per dimension, with a bar for the smoothed
    rate so the UI shows a chart without an image."""
    if table is None or table.empty:
        return "_No metrics yet: nothing has been posted and measured._"
    top = float(table["smoothed_rate"].max()) or 1.0
    lines: list[str] = []
    for dim in DIMENSIONS:
        rows = table[table["dimension"] == dim]
        if rows.empty:
            continue
        if dim == "hour":
            rows = rows.assign(_k=pd.to_numeric(rows["value"], errors="coerce")).sort_values("_k")
        else:
            rows = rows.sort_values("smoothed_rate", ascending=False)
        title = {"hour": "Hour (account local time)"}.get(dim, dim.capitalize())
        lines += [f"### {title}", "", f"| {dim} | posts | views | engagements | rate | smoothed | |",
                  "|---|---:|---:|---:|---:|---:|:---|"]
        for r in rows.itertuples(index=False):
            bar = "█" * max(1, round(bar_width * float(r.smoothed_rate) / top)) if r.smoothed_rate > 0 else ""
            lines.append(f"| {r.value} | {r.posts:,} | {r.views:,} | {r.engagements:,} | {r.rate:.2%} "
                         f"| {r.smoothed_rate:.2%} | {bar} |")
        lines.append("")
    prior = table.attrs.get("prior")
    if prior:
        lines.append(f"Smoothing: Beta prior at the overall rate {prior['overall_rate']:.2%}, worth "
                     f"{prior['prior_posts']:g} posts.")
    return "\n".join(lines).rstrip() + "\n"
