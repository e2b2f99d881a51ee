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

import io
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.bandit import DEFAULT_FLOOR

DEFAULT_PRIOR_POSTS = 20.0
ENGAGEMENT_COLUMNS = ("likes", "retweets", "replies", "quotes", "bookmarks")
DIMENSIONS = ("topic", "format", "hour")
NONE_LABEL = "(none)"
TABLE_COLUMNS = [
    "dimension", "value", "posts", "views", "engagements", "rate", "alpha", "beta", "smoothed_rate", "sd",
]

# The latest snapshot per tweet is marked when it is recorded (`metric_snapshots.is_latest`, at most one per
# tweet by a partial unique index), so this is a plain join over ~1/3 of the snapshot rows on both databases.
# PostgreSQL sends its timestamps as epoch microseconds (cheap to print and to parse); SQLite stores UTC text.
_LATEST_SQL = """
SELECT t.tweet_id, t.item_id, t.account, {captured_at}, m.age_label,
       m.likes, m.retweets, m.replies, m.quotes, m.bookmarks, m.views,
       {posted_at}, c.topic, c.format
FROM metric_snapshots m
JOIN tweets t ON t.tweet_id = m.tweet_id
JOIN content_items c ON c.id = t.item_id
WHERE m.is_latest
"""
_PG_EPOCH_US = "(extract(epoch FROM {}) * 1000000)::bigint"
_LATEST_SQL_PG = _LATEST_SQL.format(captured_at=_PG_EPOCH_US.format("m.captured_at"),
                                    posted_at=_PG_EPOCH_US.format("t.posted_at"))
_LATEST_SQL_TEXT = _LATEST_SQL.format(captured_at="m.captured_at", posted_at="t.posted_at")
# Only what learning needs: at 1M snapshots every extra column costs ~0.1 s (SQLite decode + a Python object).
_FETCHED = ["tweet_id", "item_id", "account", "captured_at", "age_label", *ENGAGEMENT_COLUMNS, "views",
            "posted_at", "topic", "format"]
_INTS = ["item_id", *ENGAGEMENT_COLUMNS, "views"]
_TIMES = ["captured_at", "posted_at"]
_ROW_DTYPE = np.dtype([(name, "i8" if name in _INTS else "O") for name in _FETCHED])


def latest_snapshots(engine: Engine) -> pd.DataFrame:
    """One row per tweet: its latest snapshot (counts, `captured_at`, `age_label`), the item's `topic` and
    `format`, `posted_at` (UTC), the account's `timezone` and `hour` (0-23: the account's local hour when the
    tweet went out). A thread's parts share `item_id`.

    Reads through the raw DBAPI connection: at 1M snapshots the per-value cost of result processing is most
    of the time, and on SQLite a plain autocommit SELECT is a WAL read that never takes the write lock (the
    app's transactions begin IMMEDIATE), so the posting job is not blocked while this runs.
    """
    with engine.connect() as conn:
        timezones = dict(conn.execute(sa.select(s.accounts.c.handle, s.accounts.c.timezone)).all())
    if engine.dialect.name == "postgresql":
        df = _read_postgres(engine)
    else:
        df = _read_rows(engine, _LATEST_SQL_TEXT)
    return _finish_latest(df, timezones)


def _read_rows(engine: Engine, sql: str) -> pd.DataFrame:
    raw = engine.raw_connection()
    try:
        sqlite = engine.dialect.name == "sqlite"
        cursor = raw.cursor()
        try:
            if sqlite:  # memory-mapped reads for this one large scan; switched off again below
                cursor.execute("PRAGMA mmap_size=1073741824")
            cursor.execute(sql)
            rows = cursor.fetchall()
            if sqlite:
                cursor.execute("PRAGMA mmap_size=0")
        finally:
            cursor.close()
    finally:
        raw.close()
    # One C-level pass from tuples into typed columns (faster than DataFrame.from_records' inference).
    table = np.array(rows, dtype=_ROW_DTYPE) if rows else np.empty(0, dtype=_ROW_DTYPE)
    del rows
    return pd.DataFrame({name: table[name] for name in _FETCHED})


def _read_postgres(engine: Engine) -> pd.DataFrame:
    """COPY ... TO STDOUT (CSV) and pandas' C parser: the fastest bulk path of either PostgreSQL driver."""
    raw = engine.raw_connection()
    buf = io.StringIO()
    copy_sql = f"COPY ({_LATEST_SQL_PG}) TO STDOUT WITH (FORMAT csv)"
    try:
        cursor = raw.cursor()
        if engine.dialect.driver == "psycopg":  # psycopg 3: COPY is a context that yields blocks
            with cursor.copy(copy_sql) as copy:
                for block in copy:
                    buf.write(bytes(block).decode())
        else:
            cursor.copy_expert(copy_sql, buf)
        cursor.close()
        raw.commit()
    finally:
        raw.close()
    buf.seek(0)
    if not buf.getvalue():
        return pd.DataFrame(columns=_FETCHED)
    dtypes = {c: "str" for c in _FETCHED if c not in _INTS and c not in _TIMES}
    return pd.read_csv(buf, names=_FETCHED, header=None, dtype=dtypes, keep_default_na=False,
                       na_values={"topic": [""], "format": [""]})


def _finish_latest(df: pd.DataFrame, timezones: dict[str, str]) -> pd.DataFrame:
    for col in _TIMES:
        df[col] = _utc(df[col])
    for col in _INTS:
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    df["timezone"] = df["account"].map(timezones).fillna("UTC") if len(df) else pd.Series(dtype="object")
    df["hour"] = local_hours(df["posted_at"], df["timezone"])
    return df


def _utc(col: pd.Series) -> pd.Series:
    """SQLite hands back 'YYYY-MM-DD HH:MM:SS.ffffff' strings (stored UTC); PostgreSQL's COPY epoch microseconds."""
    if pd.api.types.is_integer_dtype(col.dtype):
        return pd.to_datetime(col, unit="us", utc=True)
    if len(col) and isinstance(col.iloc[0], str):
        parsed = pd.to_datetime(col, format="%Y-%m-%d %H:%M:%S.%f", utc=True, errors="coerce")
        if parsed.isna().sum() > col.isna().sum():  # another driver's text form: slower, general parser
            parsed = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
        return parsed
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
    information and are left out. With an `item_id` column, a thread's parts count as one post. Works on
    `latest_snapshots` output or any frame with those columns.
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
    if "item_id" in df:
        work["item_id"] = df["item_id"].to_numpy()[keep]
        if work["item_id"].duplicated().any():
            # A thread is one post: engagement on all its parts over the reach of its best part (its head,
            # normally). Counting each part as a post would inflate threads' sample size.
            work = work.groupby("item_id", sort=False).agg(
                topic=("topic", "first"), format=("format", "first"), hour=("hour", "first"),
                views=("views", "max"), engagements=("engagements", "sum"),
            )
            work["engagements"] = np.minimum(work["engagements"], work["views"])
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
