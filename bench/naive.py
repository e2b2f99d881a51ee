"""A MODEL of the predecessor's posting strategy: the chaos harness's baseline. Never use it to post.

This is not the predecessor's code (that was TypeScript, twelve classes); it is the smallest Python that
behaves the way seed/root-cause-analysis.md says it did, so `bench/chaos.py` can run it under the same
fault schedule as the pipeline and put both sets of numbers side by side:

- post, THEN save: every part of the item is posted through the same `XWebClient` the pipeline uses, and
  only afterwards are the tweet ids written to the model's own table (`naive_items`);
- any failure -> retry the post: a timeout after the click, a 5xx, a rate limit, an expired session and a
  failed database save all look alike; the whole item (a thread from its first part) is posted again, up
  up to PIPELINE_MAX_ATTEMPTS times (the pipeline's own limit, so both sides get the same tries), then the
  item is marked `failed` with the last error;
- one breaker for all posting (pybreaker's defaults): 5 consecutive failures of any kind open it for 60 s;
  the first call after that is a trial whose failure re-opens it. The model keeps the breaker in its table
  so that every worker process shares it (the predecessor was one long-lived process);
- due-ness on the app clock with an exclusive bound (`scheduled_at < now`), the predecessor's grace-window
  query; items stuck in `posting` (a worker died) are put back to `pending` after `lease_s` and posted again.

Run by the harness as `python -m bench.chaos _worker --side baseline`; reads the same PIPELINE_* settings as
the pipeline (database URL, sandbox URL, state dir, timeouts) so both sides see identical conditions.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

APPLICATION_NAME = "naive-baseline"
BREAKER_FAILURES = 5
BREAKER_OPEN_S = 60
RETRY_PAUSE_S = 0.5
TERMINAL_STATES = ("failed",)
ACTIVE_STATES = ("pending", "posting")

log = logging.getLogger("bench.naive")

SCHEMA_SQL = (
    """CREATE TABLE IF NOT EXISTS naive_items (
        id integer PRIMARY KEY, account text NOT NULL, parts jsonb NOT NULL,
        state text NOT NULL DEFAULT 'pending', scheduled_at timestamptz NOT NULL, tweet_ids jsonb,
        attempts integer NOT NULL DEFAULT 0, last_error text, updated_at timestamptz NOT NULL DEFAULT now(),
        media jsonb)""",
    "CREATE TABLE IF NOT EXISTS naive_breaker (id integer PRIMARY KEY, failures integer NOT NULL DEFAULT 0, "
    "open_until timestamptz)",
    "INSERT INTO naive_breaker (id) VALUES (1) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS naive_accounts (handle text PRIMARY KEY, session_path text NOT NULL)",
)


def engine_for(url: str) -> Engine:
    from pipeline.db import get_engine

    return get_engine(url, application_name=APPLICATION_NAME)


def create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in SCHEMA_SQL:
            conn.exec_driver_sql(statement)


def add_account(engine: Engine, handle: str, session_path: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO naive_accounts (handle, session_path) VALUES (:h, :p) "
                             "ON CONFLICT (handle) DO UPDATE SET session_path = excluded.session_path"),
                     {"h": handle, "p": session_path})


def enqueue(engine: Engine, entries: list[tuple[int, str, list[str], float | None]],
            media: dict[int, list[list[tuple[Path, str | None]]]] | None = None) -> None:
    """(id, account, parts, offset_s) rows; offset None means exactly the database's now(). `media`: per item id,
    per part (file, alt): the same files the pipeline side enqueues, posted from where the harness wrote them
    (the predecessor kept no store of its own)."""
    from pipeline.media import probe

    with engine.begin() as conn:
        for item_id, account, parts, offset in entries:
            files = [[{"path": str(path), "ref": {**probe(path).as_json(), "alt": alt}} for path, alt in part]
                     for part in (media or {}).get(item_id, [])]
            conn.execute(sa.text(
                "INSERT INTO naive_items (id, account, parts, scheduled_at, media) "
                "VALUES (:id, :a, CAST(:p AS jsonb), now() + make_interval(secs => :o), CAST(:m AS jsonb))"),
                {"id": item_id, "a": account, "p": json.dumps(parts), "o": offset or 0.0,
                 "m": json.dumps(files) if files else None})


def snapshot(engine: Engine) -> list[dict[str, Any]]:
    """Every item as the checker wants it: id, account, parts, state, tweet_ids, reason."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, account, parts, state, tweet_ids, last_error FROM naive_items ORDER BY id")).mappings().all()
    return [{"id": r["id"], "account": r["account"], "parts": list(r["parts"]), "state": r["state"],
             "tweet_ids": list(r["tweet_ids"] or []), "reason": r["last_error"]} for r in rows]


# --------------------------------------------------------------------------------------------- the breaker


class SharedBreaker:
    """pybreaker's defaults, shared through the table. Database errors are ignored (the predecessor's
    breaker lived in memory and never failed)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def allowed(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return bool(conn.execute(sa.text(
                    "SELECT open_until IS NULL OR open_until <= now() FROM naive_breaker WHERE id = 1")).scalar())
        except sa.exc.SQLAlchemyError:
            return True

    def failure(self) -> None:
        self._write("UPDATE naive_breaker SET failures = failures + 1, open_until = CASE WHEN failures + 1 >= "
                    f"{BREAKER_FAILURES} THEN now() + interval '{BREAKER_OPEN_S} seconds' ELSE open_until END "
                    "WHERE id = 1")

    def success(self) -> None:
        self._write("UPDATE naive_breaker SET failures = 0, open_until = NULL WHERE id = 1")

    def _write(self, sql: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(sql)
        except sa.exc.SQLAlchemyError:
            pass


# --------------------------------------------------------------------------------------------- the worker


def _app_now() -> datetime:
    return datetime.now(UTC)  # the app clock, as the predecessor used it


def recover_stuck(engine: Engine, lease_s: float) -> int:
    """The predecessor's 'reset stuck posts': anything in `posting` for too long is pending again."""
    with engine.begin() as conn:
        return conn.execute(sa.text(
            "UPDATE naive_items SET state = 'pending', updated_at = now() "
            "WHERE state = 'posting' AND updated_at < now() - make_interval(secs => :s)"), {"s": lease_s}).rowcount


def claim(engine: Engine, account: str) -> dict[str, Any] | None:
    with engine.begin() as conn:
        row = conn.execute(sa.text(
            "UPDATE naive_items SET state = 'posting', attempts = attempts + 1, updated_at = now() "
            "WHERE id = (SELECT id FROM naive_items WHERE account = :a AND state = 'pending' AND scheduled_at < :now "
            "ORDER BY scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, parts, media"),
            {"a": account, "now": _app_now()}).mappings().first()
    return dict(row) if row else None


def _set(engine: Engine, item_id: int, **values: Any) -> None:
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE naive_items SET {assignments}, updated_at = now() WHERE id = :id"),
                     {"id": item_id, **values})


def _part_media(item: dict[str, Any], part: int) -> list[tuple[Path, Any]]:
    """The part's files as the X client takes them: (path, MediaRef)."""
    from pipeline.media import MediaRef

    per_part = item.get("media") or []
    files = per_part[part] if part < len(per_part) else []
    return [(Path(f["path"]), MediaRef.from_json(f["ref"])) for f in files]


def post_item(engine: Engine, breaker: SharedBreaker, client: Any, item: dict[str, Any], tries: int) -> bool:
    """Post, then save; any failure retries the post. Returns False when the breaker stops all posting."""
    last: Exception | None = None
    for _ in range(tries):
        if not breaker.allowed():
            try:
                _set(engine, item["id"], state="pending")
            except sa.exc.SQLAlchemyError:
                pass  # stays `posting`; recover_stuck puts it back later
            return False
        try:
            ids: list[str] = []
            previous: str | None = None
            for number, part in enumerate(item["parts"]):
                previous = client.post(part, in_reply_to=previous, media=_part_media(item, number))
                ids.append(previous)
            _set(engine, item["id"], state="posted", tweet_ids=json.dumps(ids), last_error=None)
            breaker.success()
            return True
        except Exception as exc:  # noqa: BLE001 - the model's point: every failure is the same failure
            last = exc
            breaker.failure()
            log.warning("naive: item %s failed (%s); retrying the post", item["id"], str(exc)[:200])
            time.sleep(RETRY_PAUSE_S)
    try:
        _set(engine, item["id"], state="failed", last_error=f"{type(last).__name__}: {str(last)[:500]}")
    except sa.exc.SQLAlchemyError:
        pass
    return True


def run_worker(accounts: list[str] | None = None) -> dict[str, int]:
    """One worker run over the given accounts (all registered ones by default)."""
    from pipeline.browser import BrowserSession
    from pipeline.settings import load_settings
    from pipeline.xweb import XWebClient

    settings = load_settings()
    engine = engine_for(settings.database_url)
    breaker = SharedBreaker(engine)
    stats = {"posted": 0, "recovered": recover_stuck(engine, settings.lease_s)}
    with engine.connect() as conn:
        registered = dict(conn.execute(sa.text("SELECT handle, session_path FROM naive_accounts ORDER BY handle")).all())
    with BrowserSession(executable=settings.browser_executable, headless=True,
                        nav_timeout_s=settings.nav_timeout_s) as browser:
        for handle in accounts or list(registered):
            page = browser.page(handle, Path(registered[handle]))
            client = XWebClient(page, settings.x_base_url, handle, settings.nav_timeout_s, settings.post_timeout_s,
                                settings.reconcile_timeout_s)
            for _ in range(settings.run_budget):
                if not breaker.allowed():
                    return stats
                item = claim(engine, handle)
                if item is None:
                    break
                if not post_item(engine, breaker, client, item, settings.max_attempts):
                    return stats
                stats["posted"] += 1
    return stats
