"""The test world: settings, an app database, the shared Chromium and a reset sandbox with one account."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from pipeline.browser import BrowserSession, write_secret_file
from pipeline.content import make_draft
from pipeline.db import db_now, get_engine
from pipeline.posting import run_posting
from pipeline.settings import Settings, load_settings
from sandbox.client import SandboxAdmin
from sandbox.dbproxy import FaultProxy


class RecordingAlerts:
    """Collects alerts in memory (the alert channel itself is tested in test_alerts.py)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, key: str, title: str, body: str, severity: str = "error") -> bool:
        self.sent.append((key, title))
        return True


@dataclass
class World:
    settings: Settings
    engine: sa.Engine
    browser: BrowserSession
    sandbox: SandboxAdmin
    alerts: RecordingAlerts
    state_dir: Path

    def login(self, handle: str) -> Path:
        """Issue a fresh sandbox session for `handle` and register it (what `pipeline login` does)."""
        path = write_secret_file(self.state_dir / "sessions" / f"{handle}.json", self.sandbox.create_account(handle))
        queue.add_account(self.engine, handle, str(path))
        self.browser.reset_account(handle)
        return path

    def enqueue(self, handle: str, *parts: str, reply_to: str | None = None,
                media: list[list[Any]] | None = None) -> int:
        """One item, enqueued as the CLI does; `media` (MediaRefs per part) must already be in the store."""
        return queue.enqueue(self.engine, [(make_draft(handle, list(parts), reply_to, media=media), None)])[0]

    def post(self, **kwargs: Any):  # type: ignore[no-untyped-def]
        return run_posting(self.engine, self.settings, self.browser, alerts=self.alerts, **kwargs)

    def truth(self, handle: str = "alice") -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tweets() if t["account"] == handle]

    def make_due(self) -> None:
        """Skip retry backoff: what waiting for it would do, without the wait."""
        with self.engine.begin() as conn:
            now = db_now(conn)
            conn.execute(s.content_items.update().where(s.content_items.c.state == "queued").values(scheduled_at=now))

    def now(self) -> datetime:
        with self.engine.connect() as conn:
            return db_now(conn)


def make_settings(db_url: str, sandbox_url: str, state_dir: Path, **overrides: Any) -> Settings:
    env = {"PIPELINE_DATABASE_URL": db_url, "PIPELINE_X_BASE_URL": sandbox_url, "PIPELINE_STATE_DIR": str(state_dir),
           "PIPELINE_POST_TIMEOUT_S": "3", "PIPELINE_NAV_TIMEOUT_S": "10", "PIPELINE_RECONCILE_SETTLE_S": "0.5",
           "PIPELINE_RECONCILE_VISIBILITY_S": "1"}
    env.update({f"PIPELINE_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env=env)


def make_world(sandbox: SandboxAdmin, db_url: str, state_dir: Path, browser: BrowserSession) -> World:
    w = World(make_settings(db_url, sandbox.url, state_dir), get_engine(db_url), browser, sandbox,
              RecordingAlerts(), state_dir)
    w.login("alice")
    return w


@pytest.fixture
def world(sandbox: SandboxAdmin, db_url: str, tmp_path: Path, browser_session: BrowserSession) -> World:
    return make_world(sandbox, db_url, tmp_path / "state", browser_session)


@pytest.fixture
def proxied(sandbox: SandboxAdmin, pg_url: str, tmp_path: Path,
            browser_session: BrowserSession) -> Iterator[tuple[World, FaultProxy]]:
    """A world whose PostgreSQL sits behind a proxy the test can cut (the outage tests need a server)."""
    from tests.conftest import _truncate

    _truncate(get_engine(pg_url))
    url = sa.make_url(pg_url)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied_url = url.set(port=proxy.port).render_as_string(hide_password=False)
    yield make_world(sandbox, proxied_url, tmp_path / "state", browser_session), proxy
    proxy.close()


