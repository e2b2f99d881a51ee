"""Migrations on a real SQLite file and a real PostgreSQL database: the schema they build is the one the code
declares, and the data migration of 0003 marks the right rows."""

from __future__ import annotations

import json
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


def _downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    from pipeline.migrate import _config

    cfg = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _counts(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        cols = [c["name"] for c in sa.inspect(conn).get_columns("tweet_text_counts")]
        listed = ", ".join(c for c in ("account", "text", "media_hashes") if c in cols)
        return [tuple(r) for r in conn.exec_driver_sql(
            f"SELECT {listed}, n FROM tweet_text_counts WHERE n > 0 ORDER BY {listed}").all()]


def test_0008_keys_the_same_text_summary_by_media_and_backfills_every_row(empty_engine: sa.Engine) -> None:
    from pipeline import integrity

    a, b = "a" * 64, "b" * 64
    ref = '{"sha256": "%s", "kind": "image", "mime": "image/png", "bytes": 10, "alt": null}'
    upgrade(empty_engine, "0007")
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO accounts (handle, storage_state_path, created_at) "
                             "VALUES ('a', '/nonexistent', CURRENT_TIMESTAMP)")
        # 1 and 3: the same words and image (a real duplicate); 2: the same words, no media (rows from before
        # media: NULL); 4: a thread whose second part carries two images
        for item_id, parts, media in (
            (1, ["same"], f"[[{ref % a}]]"), (2, ["same"], None), (3, ["same"], f"[[{ref % a}]]"),
            (4, ["first", "same"], f"[[], [{ref % b}, {ref % a}]]"),
        ):
            conn.execute(sa.text(
                "INSERT INTO content_items (id, account, kind, parts, part_count, fingerprint, state, scheduled_at, "
                "source, created_at, updated_at, media) VALUES (:id, 'a', 'single', :parts, :n, :fp, 'posted', "
                "CURRENT_TIMESTAMP, 'operator', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :media)"),
                {"id": item_id, "parts": json.dumps(parts), "n": len(parts), "fp": f"fp{item_id}", "media": media})
            for part, text in enumerate(parts):
                conn.exec_driver_sql("INSERT INTO tweets (tweet_id, item_id, part_index, account, text, posted_at) "
                                     f"VALUES ('{item_id}00{part}', {item_id}, {part}, 'a', '{text}', CURRENT_TIMESTAMP)")
    assert ("a", "same", 4) in _counts(empty_engine)  # keyed by text only: four "duplicates"
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        hashes = dict(conn.exec_driver_sql("SELECT tweet_id, media_hashes FROM tweets").all())
    assert hashes == {"1000": a, "2000": "", "3000": a, "4000": "", "4001": f"{b},{a}"}
    assert _counts(empty_engine) == [("a", "first", "", 1), ("a", "same", "", 1), ("a", "same", a, 2),
                                     ("a", "same", f"{b},{a}", 1)]
    found = integrity.duplicate_posts(empty_engine)
    assert [(r["item_id"], r["other"]) for r in found.rows] == [(3, "1000")]  # only the same image twice
    assert found.rows[0]["detail"] == f"tweet 3000: same [+1 media: {a[:12]}]"
    assert integrity.duplicate_posts(empty_engine, lookback_days=1).total == 1  # the windowed probe agrees
    # the triggers keep the new key: a row's media changed by hand moves it to the other count
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE tweets SET media_hashes = '{a}' WHERE tweet_id = '2000'")
    assert ("a", "same", "", 1) not in _counts(empty_engine) and ("a", "same", a, 3) in _counts(empty_engine)
    assert integrity.duplicate_posts(empty_engine).total == 1
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tweets WHERE tweet_id IN ('2000', '3000')")
    assert integrity.duplicate_posts(empty_engine).ok
    _downgrade(empty_engine, "0007")  # and back: the text-only key, rebuilt from the rows
    assert _counts(empty_engine) == [("a", "first", 1), ("a", "same", 2)]
    upgrade(empty_engine)
    assert _counts(empty_engine) == [("a", "first", "", 1), ("a", "same", a, 1), ("a", "same", f"{b},{a}", 1)]
