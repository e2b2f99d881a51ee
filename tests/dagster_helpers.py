"""Helpers for the Dagster-layer tests: a real webhook server, SQL seeding, real Dagster instances."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import sqlalchemy as sa

from pipeline import schema as s
from pipeline.content import fingerprint
from pipeline.db import db_now


class Webhook:
    """A Slack-compatible webhook on 127.0.0.1:<free port>, recording every JSON body it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "json": json.loads(body or b"{}"),
                                      "content_type": self.headers.get("Content-Type")})
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/T000/B000/secret-token-xyz"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def texts(self) -> list[str]:
        return [r["json"].get("text", "") for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve_webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@contextmanager
def temp_instance() -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance with SQLite storage in a temporary directory."""
    with dg.instance_for_test() as inst:
        yield inst


# --------------------------------------------------------------------------- seeding with SQL


def add_account(engine: sa.Engine, handle: str = "alice", timezone: str = "UTC") -> None:
    with engine.begin() as conn:
        conn.execute(s.accounts.insert().values(handle=handle, storage_state_path=f"/tmp/{handle}.json",
                                                timezone=timezone, created_at=db_now(conn)))


def add_item(engine: sa.Engine, account: str, parts: list[str], state: str = s.QUEUED, *,
             scheduled_at: datetime | None = None, posted_at: datetime | None = None,
             updated_at: datetime | None = None, lease_expires_at: datetime | None = None,
             fp: str | None = None, source: str = "operator", tweets: int | None = None,
             tweet_prefix: str = "") -> int:
    """Insert one content item (and, for posted items, `tweets` tweet rows: default one per part)."""
    with engine.begin() as conn:
        now = db_now(conn)
        item_id = conn.execute(s.content_items.insert().values(
            account=account, kind="thread" if len(parts) > 1 else "single", parts=parts, part_count=len(parts),
            fingerprint=fp or fingerprint(parts), state=state, scheduled_at=scheduled_at or now,
            posted_at=posted_at or (now if state == s.POSTED else None), lease_expires_at=lease_expires_at,
            lease_owner="worker-1" if lease_expires_at else None, source=source,
            created_at=now, updated_at=updated_at or now,
        )).inserted_primary_key[0]
        n = (len(parts) if state == s.POSTED else 0) if tweets is None else tweets
        for i in range(n):
            conn.execute(s.tweets.insert().values(
                tweet_id=f"{tweet_prefix}{item_id}{i:02d}", item_id=item_id, part_index=i, account=account,
                text=parts[i], posted_at=posted_at or now,
            ))
    return int(item_id)


def set_breaker(engine: sa.Engine, account: str, state: str, opened_ago: timedelta | None,
                open_until_in: timedelta | None = timedelta(hours=1), reason: str = "rate_limited") -> None:
    with engine.begin() as conn:
        now = db_now(conn)
        conn.execute(s.breaker_state.delete().where(s.breaker_state.c.account == account))
        conn.execute(s.breaker_state.insert().values(
            account=account, state=state, reason=reason,
            opened_at=now - opened_ago if opened_ago is not None else None,
            open_until=now + open_until_in if open_until_in is not None else None, updated_at=now,
        ))


def alert_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(s.alerts).order_by(s.alerts.c.id))]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
