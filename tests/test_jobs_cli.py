"""The jobs as an operator or the daemon runs them: `dagster job execute` in a subprocess, against the
sandbox in real Chromium, with SQLite and with PostgreSQL (dagster-postgres) instance storage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from pipeline.browser import BrowserSession
from pipeline.db import db_now, get_engine
from pipeline.migrate import upgrade
from sandbox.client import SandboxAdmin
from tests import pg
from tests.conftest import _truncate
from tests.fixtures_world import World, make_world

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, sandbox: SandboxAdmin, browser_session: BrowserSession,
          pg_admin_url: str) -> Iterator[tuple[World, dict[str, str]]]:
    """App database and Dagster instance storage both on SQLite, or both on PostgreSQL."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    created = None
    if request.param == "sqlite":
        app_url = f"sqlite:///{tmp_path / 'app.db'}"
        upgrade(get_engine(app_url))
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        extra: dict[str, str] = {}
    else:
        app_url = request.getfixturevalue("pg_url")
        _truncate(get_engine(app_url))
        shutil.copy(ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
        created = pg.create_database(pg_admin_url, "pipeline_test_dagster")
        url = sa.make_url(created)
        extra = {"DAGSTER_PG_HOST": url.host or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
                 "DAGSTER_PG_USER": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
                 "DAGSTER_PG_DB": url.database or ""}
    world = make_world(sandbox, app_url, tmp_path / "state", browser_session)
    env = {**os.environ, **extra, "DAGSTER_HOME": str(home), "PIPELINE_DATABASE_URL": app_url,
           "PIPELINE_X_BASE_URL": sandbox.url, "PIPELINE_STATE_DIR": str(world.state_dir)}
    yield world, env
    if created:
        pg.drop_database(pg_admin_url, created)


def dagster(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAGSTER, *args, "-m", "pipeline.definitions"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a fresh venv and several Dagster processes: minutes on a busy 2-core machine
def test_post_job_posts_due_items_and_a_past_partition_backfills(stack: tuple[World, dict[str, str]]) -> None:
    world, dagster_env = stack
    ids = [world.enqueue("alice", "Posted by dagster job execute"), world.enqueue("alice", "One", "Two")]
    out = dagster(dagster_env, "job", "execute", "-j", "post_job")
    assert out.returncode == 0, out.stderr[-3000:]
    items = [queue.get_item(world.engine, i) for i in ids]
    truth = {t["id"]: t["text"] for t in world.truth()}
    assert [i.state for i in items] == ["posted", "posted"]
    assert sorted(truth) == sorted(items[0].tweet_ids + items[1].tweet_ids)

    # Backfill one past day: pretend these posts went out two days ago, then run that day's partition.
    engine = get_engine(world.settings.database_url)
    with engine.begin() as conn:
        past = db_now(conn) - timedelta(days=2)
        conn.execute(s.tweets.update().values(posted_at=past))
    day = past.date().isoformat()
    out = dagster(dagster_env, "job", "execute", "-j", "metrics_job", "--tags", json.dumps({"dagster/partition": day}))
    assert out.returncode == 0, out.stderr[-3000:]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.metric_snapshots.c.tweet_id, s.metric_snapshots.c.age_label)).all()
    assert {r.tweet_id for r in rows} == set(truth) and {r.age_label for r in rows} == {"24h"}
