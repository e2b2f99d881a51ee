"""Migrations on a real SQLite file and a real PostgreSQL database: the schema they build is the one the code
declares, and the data migration of 0003 marks the right rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pipeline import db as dbmod
from pipeline.migrate import current_revision, head_revision, upgrade
from pipeline.schema import metadata
from tests import pg


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str) -> Iterator[sa.Engine]:
    """A database with no schema at all (the shared test databases are already migrated)."""
    if request.param == "sqlite":
        yield dbmod.get_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        return
    url = pg.create_database(pg_admin_url, prefix="pipeline_migrations")
    try:
        yield dbmod.get_engine(url)
    finally:
        dbmod.dispose_engines()
        pg.drop_database(pg_admin_url, url)


def test_migrations_build_exactly_the_declared_schema(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    with empty_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_0003_marks_the_newest_snapshot_of_each_tweet(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine, "0002")
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO accounts (handle, storage_state_path, created_at) "
                             "VALUES ('a', '/nonexistent', CURRENT_TIMESTAMP)")
        for item_id, tweet_id in ((1, "1001"), (2, "1002")):
            conn.exec_driver_sql(
                "INSERT INTO content_items (id, account, kind, parts, part_count, fingerprint, state, scheduled_at, "
                "source, created_at, updated_at) VALUES "
                f"({item_id}, 'a', 'single', '[\"x{item_id}\"]', 1, 'fp{item_id}', 'posted', CURRENT_TIMESTAMP, "
                "'operator', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
            conn.exec_driver_sql("INSERT INTO tweets (tweet_id, item_id, part_index, account, text, posted_at) "
                                 f"VALUES ('{tweet_id}', {item_id}, 0, 'a', 'x{item_id}', CURRENT_TIMESTAMP)")
        # Inserted out of capture order: the newest is the 24h snapshot of 1001, inserted first.
        for snap_id, tweet_id, item_id, label, captured in (
            (1, "1001", 1, "24h", "2026-03-02 10:00:00"), (2, "1001", 1, "1h", "2026-03-01 11:00:00"),
            (3, "1002", 2, "1h", "2026-03-01 12:00:00"),
        ):
            conn.exec_driver_sql(
                "INSERT INTO metric_snapshots (id, tweet_id, item_id, account, captured_at, age_label, likes, "
                f"retweets, replies, quotes, bookmarks, views) VALUES ({snap_id}, '{tweet_id}', {item_id}, 'a', "
                f"'{captured}', '{label}', 1, 0, 0, 0, 0, 10)")
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        latest = conn.exec_driver_sql("SELECT id FROM metric_snapshots WHERE is_latest ORDER BY id").scalars().all()
    assert latest == [1, 3]
    with pytest.raises(sa.exc.IntegrityError), empty_engine.begin() as conn:  # never two latest rows per tweet
        conn.exec_driver_sql("UPDATE metric_snapshots SET is_latest = true WHERE id = 2")


def test_0004_lowers_every_handle_and_refuses_a_case_clash(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine, "0003")
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO accounts (handle, storage_state_path, created_at) "
                             "VALUES ('Alice', '/s/Alice.json', CURRENT_TIMESTAMP)")
        conn.exec_driver_sql(
            "INSERT INTO content_items (id, account, kind, parts, part_count, fingerprint, state, scheduled_at, "
            "source, created_at, updated_at) VALUES (1, 'Alice', 'single', '[\"x\"]', 1, 'fp', 'queued', "
            "CURRENT_TIMESTAMP, 'operator', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO breaker_state (account, state, trips) VALUES ('Alice', 'closed', 0)")
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT handle, storage_state_path FROM accounts").all() == [
            ("alice", "/s/Alice.json")]
        assert conn.exec_driver_sql("SELECT account FROM content_items").scalars().all() == ["alice"]
        assert conn.exec_driver_sql("SELECT account FROM breaker_state").scalars().all() == ["alice"]


def test_0004_stops_naming_handles_that_differ_only_in_case(empty_engine: sa.Engine) -> None:
    upgrade(empty_engine, "0003")
    with empty_engine.begin() as conn:
        for handle in ("Bob", "bob"):
            conn.exec_driver_sql("INSERT INTO accounts (handle, storage_state_path, created_at) "
                                 f"VALUES ('{handle}', '/s', CURRENT_TIMESTAMP)")
    with pytest.raises(Exception, match="bob are registered in more than one letter case"):
        upgrade(empty_engine)
    assert current_revision(empty_engine) == "0003"
