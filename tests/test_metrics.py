"""Metrics collection reads the sandbox's status pages in Chromium; counts must match its ground truth."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from pipeline import schema as s
from pipeline.metrics import collect_metrics, parse_ages
from pipeline.settings import load_settings
from tests.fixtures_world import World

COUNTED = ("likes", "retweets", "replies", "bookmarks", "views")


def test_parse_ages() -> None:
    assert [label for label, _ in parse_ages("7d, 1h,24h")] == ["1h", "24h", "7d"]
    assert parse_ages("90m")[0][1] == timedelta(minutes=90)


def test_snapshots_match_the_ground_truth_and_are_taken_once_per_age(world: World, tmp_path: Path) -> None:
    for n in range(3):
        world.enqueue("alice", f"Measured post {n}")
    world.post()
    world.sandbox.set_clock(3 * 3600)  # three hours later on X: engagement has grown
    settings = load_settings(env={
                                  "PIPELINE_DATABASE_URL": world.settings.database_url,
                                  "PIPELINE_X_BASE_URL": world.settings.x_base_url,
                                  "PIPELINE_STATE_DIR": str(world.state_dir), "PIPELINE_METRICS_AGES": "0s,1h"})
    before = {t["id"]: t for t in world.truth()}
    report = collect_metrics(world.engine, settings, world.browser)
    after = {t["id"]: t for t in world.truth()}
    assert report.snapshots == 3 and report.errors == {}
    with world.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(s.metric_snapshots))]
    assert {r["tweet_id"] for r in rows} == set(before)
    for r in rows:
        for metric in COUNTED:
            assert before[r["tweet_id"]][metric] <= r[metric] <= after[r["tweet_id"]][metric], metric
    assert sum(r["views"] for r in rows) > 0
    again = collect_metrics(world.engine, settings, world.browser)
    assert again.snapshots == 0  # the same age is never snapshotted twice


def test_partition_day_limits_collection(world: World) -> None:
    world.enqueue("alice", "Posted today")
    world.post()
    settings = load_settings(env={"PIPELINE_DATABASE_URL": world.settings.database_url,
                                  "PIPELINE_X_BASE_URL": world.settings.x_base_url,
                                  "PIPELINE_STATE_DIR": str(world.state_dir), "PIPELINE_METRICS_AGES": "0s"})
    today = world.now().date()
    assert collect_metrics(world.engine, settings, world.browser, day=today - timedelta(days=1)).snapshots == 0
    assert collect_metrics(world.engine, settings, world.browser, day=today).snapshots == 1
