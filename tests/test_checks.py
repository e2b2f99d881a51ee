"""Asset checks on a real Dagster instance over real databases (SQLite and PostgreSQL), rows seeded with SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.checks import (
    WindowConfig,
    content_within_limits,
    no_duplicate_posts,
    no_missing_tweet_ids,
    no_stuck_items,
    queued_media_intact,
)
from assets.content import generated_content
from assets.posting import posted_tweets
from pipeline import schema as s
from pipeline.db import db_now
from resources import Alerts, Browser, Database, Generator
from tests.dagster_helpers import add_account, add_item, temp_instance


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with temp_instance() as inst:
        yield inst


ALL_CHECKS = [no_duplicate_posts, no_missing_tweet_ids, queued_media_intact, no_stuck_items, content_within_limits]


def _resources(db_url: str) -> dict:
    database = Database(url=db_url)
    return {"database": database, "browser": Browser(), "generator": Generator(database=database),
            "alerts": Alerts(database=database)}


def run_checks(db_url: str, instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    """Execute every check as a checks-only run on the instance (the assets are not materialised)."""
    job = dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks(*ALL_CHECKS))
    defs = dg.Definitions(assets=[generated_content, posted_tweets], asset_checks=ALL_CHECKS, jobs=[job],
                          resources=_resources(db_url))
    result = defs.resolve_job_def("checks_only").execute_in_process(instance=instance, raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {next(iter(c.check_specs)).name for c in ALL_CHECKS}
    return evaluations


def meta(evaluation: dg.AssetCheckEvaluation, key: str):
    return evaluation.metadata[key].value


def seed_clean(engine: sa.Engine) -> None:
    add_account(engine, "alice")
    add_account(engine, "bob")
    add_item(engine, "alice", ["A first post"], s.POSTED)
    add_item(engine, "alice", ["Thread part one", "Thread part two", "Thread part three"], s.POSTED)
    add_item(engine, "bob", ["A first post"], s.POSTED)  # same text, other account: fine
    add_item(engine, "alice", ["Next one"], s.QUEUED)
    add_item(engine, "alice", ["界" * 140], s.QUEUED)  # 280 weighted characters: exactly the limit


def test_clean_data_passes_every_check(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance) -> None:
    seed_clean(engine)
    evaluations = run_checks(db_url, instance)
    assert all(e.passed for e in evaluations.values()), {k: e.description for k, e in evaluations.items()}
    assert meta(evaluations["no_duplicate_posts"], "duplicates_found") == 0
    assert "ruled out for the whole history by the unique index" in meta(evaluations["no_duplicate_posts"], "scope")
    assert meta(evaluations["no_missing_tweet_ids"], "items_missing_ids") == 0
    assert evaluations["no_duplicate_posts"].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations["no_stuck_items"].severity == dg.AssetCheckSeverity.WARN


def test_duplicate_text_fails_with_the_rows(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance) -> None:
    seed_clean(engine)
    single = add_item(engine, "alice", ["Same words twice"], s.POSTED)
    thread = add_item(engine, "alice", ["Same words twice", "and a second part"], s.POSTED)
    evaluation = run_checks(db_url, instance)["no_duplicate_posts"]
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert meta(evaluation, "duplicates_found") == 1  # one pair, reported once
    [row] = meta(evaluation, "sample")
    assert row["kind"] == "same text" and row["account"] == "alice"
    assert {row["item_id"], _item_of(engine, row["other"])} == {single, thread}
    assert "Same words twice" in meta(evaluation, "offending_rows")


def test_duplicate_fingerprint_fails_even_without_the_unique_index(engine: sa.Engine, db_url: str,
                                                                   instance: dg.DagsterInstance) -> None:
    """The partial unique index makes this impossible; the check proves it still holds (here: it was lost)."""
    [index] = [ix for ix in s.content_items.indexes if ix.name == "uq_content_items_live_fingerprint"]
    index.drop(engine)
    try:
        seed_clean(engine)
        a = add_item(engine, "alice", ["Posted twice"], s.POSTED, tweet_prefix="1")
        b = add_item(engine, "alice", ["Posted twice"], s.POSTED, tweet_prefix="2")
        with engine.begin() as conn:  # different tweet text rows so only the fingerprint rule can see it
            conn.execute(s.tweets.update().where(s.tweets.c.item_id == b).values(text="Posted twice!"))
        evaluation = run_checks(db_url, instance)["no_duplicate_posts"]
        assert evaluation.passed is False
        assert "uq_content_items_live_fingerprint is MISSING" in meta(evaluation, "scope")
        rows = [r for r in meta(evaluation, "sample") if r["kind"] == "same content"]
        assert len(rows) == 1 and {rows[0]["item_id"], rows[0]["other"]} == {a, b}
        audit = no_duplicate_posts(database=Database(url=db_url), config=WindowConfig(lookback_days=0))
        rows = [r for r in audit.metadata["sample"].value if r["kind"] == "same content"]
        assert len(rows) == 1 and {rows[0]["item_id"], rows[0]["other"]} == {a, b}
    finally:
        with engine.begin() as conn:
            conn.execute(s.tweets.delete())
            conn.execute(s.content_items.delete())
        index.create(engine)


def test_missing_tweet_ids_fail(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance) -> None:
    seed_clean(engine)
    half = add_item(engine, "alice", ["Part 1 of 3", "Part 2 of 3", "Part 3 of 3"], s.POSTED, tweets=2)
    none = add_item(engine, "bob", ["A post without its id"], s.POSTED, tweets=0)
    evaluation = run_checks(db_url, instance)["no_missing_tweet_ids"]
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert meta(evaluation, "items_missing_ids") == 2
    found = {r["item_id"]: r for r in meta(evaluation, "sample")}
    assert set(found) == {half, none}
    assert found[half]["tweets_recorded"] == 2 and found[half]["parts"] == 3
    assert found[none]["tweets_recorded"] == 0


def test_the_checks_cover_the_whole_history_and_a_window_only_on_request(engine: sa.Engine, db_url: str,
                                                                        instance: dg.DagsterInstance) -> None:
    seed_clean(engine)
    with engine.connect() as conn:
        old = db_now(conn) - timedelta(days=30)
    add_item(engine, "alice", ["Old twin"], s.POSTED, posted_at=old)
    twin = add_item(engine, "alice", ["Old twin", "with a tail"], s.POSTED, posted_at=old)
    never = add_item(engine, "alice", ["Old, never recorded"], s.POSTED, posted_at=old, tweets=0)
    evaluations = run_checks(db_url, instance)  # the default: the whole history, read from the summaries
    assert not evaluations["no_duplicate_posts"].passed and not evaluations["no_missing_tweet_ids"].passed
    assert meta(evaluations["no_duplicate_posts"], "scope").startswith("full history")
    assert {r["item_id"] for r in meta(evaluations["no_missing_tweet_ids"], "sample")} == {never}

    database = Database(url=db_url)
    window = WindowConfig(lookback_days=7)  # a window on request: these 30-day-old posts are outside it
    assert no_duplicate_posts(database=database, config=window).passed
    assert no_missing_tweet_ids(database=database, config=window).passed
    assert no_duplicate_posts(database=database, config=WindowConfig(lookback_days=31)).passed is False

    # The summaries follow every write to `tweets` (database triggers), not only the pipeline's own.
    with engine.begin() as conn:
        conn.execute(s.tweets.update().where(s.tweets.c.item_id == twin, s.tweets.c.part_index == 0)
                     .values(text="Old twin, edited by hand"))
    assert no_duplicate_posts(database=database, config=WindowConfig()).passed
    with engine.begin() as conn:
        conn.execute(s.tweets.delete().where(s.tweets.c.item_id == twin, s.tweets.c.part_index == 1))
    missing = no_missing_tweet_ids(database=database, config=WindowConfig())
    assert {r["item_id"] for r in missing.metadata["sample"].value} == {never, twin}


def test_stuck_items_warn(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance) -> None:
    seed_clean(engine)
    with engine.connect() as conn:
        now = db_now(conn)
    gone = add_item(engine, "alice", ["Worker died mid-post"], s.POSTING, lease_expires_at=now - timedelta(minutes=6))
    add_item(engine, "alice", ["Lease just ran out"], s.POSTING, lease_expires_at=now - timedelta(minutes=1))
    add_item(engine, "alice", ["Being posted right now"], s.POSTING, lease_expires_at=now + timedelta(minutes=4))
    limbo = add_item(engine, "bob", ["Nobody reconciled me"], s.UNKNOWN, updated_at=now - timedelta(minutes=11))
    add_item(engine, "bob", ["Just became unknown"], s.UNKNOWN, updated_at=now - timedelta(seconds=30))
    evaluation = run_checks(db_url, instance)["no_stuck_items"]
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert {r["item_id"] for r in meta(evaluation, "sample")} == {gone, limbo}


@pytest.mark.parametrize("parts", [["a" * 281], ["界" * 141], [f"part {i}" for i in range(26)]],
                         ids=["281-latin", "141-cjk", "26-parts"])
def test_content_over_the_limits_warns(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance,
                                       parts: list[str]) -> None:
    seed_clean(engine)
    bad = add_item(engine, "alice", parts, s.QUEUED)
    evaluation = run_checks(db_url, instance)["content_within_limits"]
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    [row] = meta(evaluation, "sample")
    assert row["item_id"] == bad and row["problem"]


def test_a_failed_blocking_check_stops_downstream(engine: sa.Engine, db_url: str,
                                                  instance: dg.DagsterInstance) -> None:
    """ERROR + blocking: the run fails (and so alerts) and nothing downstream of posted_tweets materialises."""

    @dg.asset(name="posted_tweets")
    def stand_in() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    @dg.asset(deps=[stand_in])
    def downstream() -> None:
        return None

    job = dg.define_asset_job("post_like", selection=dg.AssetSelection.assets(stand_in, downstream))
    defs = dg.Definitions(assets=[stand_in, downstream], asset_checks=[no_duplicate_posts, no_missing_tweet_ids],
                          jobs=[job], resources={"database": Database(url=db_url)})

    seed_clean(engine)
    ok = defs.resolve_job_def("post_like").execute_in_process(instance=instance, raise_on_error=False)
    assert ok.success
    assert {e.asset_key.to_user_string() for e in ok.get_asset_materialization_events()} == {
        "posted_tweets", "downstream"}

    add_item(engine, "alice", ["Missing"], s.POSTED, tweets=0)
    bad = defs.resolve_job_def("post_like").execute_in_process(instance=instance, raise_on_error=False)
    assert not bad.success
    assert [e.asset_key.to_user_string() for e in bad.get_asset_materialization_events()] == ["posted_tweets"]
    failed = [e for e in bad.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["no_missing_tweet_ids"]


def _item_of(engine: sa.Engine, tweet_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(s.tweets.c.item_id).where(s.tweets.c.tweet_id == tweet_id)).scalar_one()


def test_the_same_text_with_other_media_is_another_post_not_a_duplicate(engine: sa.Engine, db_url: str) -> None:
    """The duplicate check keys same-text posts by their media too (tweets.media_hashes, migration 0008),
    filled by the posting path itself (queue.confirm_part) from the item's media."""
    from pipeline import queue
    from pipeline.content import make_draft
    from pipeline.media import MediaRef

    def ref(digit: str) -> MediaRef:
        return MediaRef(sha256=digit * 64, kind="image", mime="image/png", bytes=10, alt=None)

    def post(parts: list[str], media: list[list[MediaRef]], first_id: int) -> int:
        [item_id] = queue.enqueue(engine, [(make_draft("alice", parts, media=media), None)])
        for part in range(len(parts)):
            queue.confirm_part(engine, item_id, part, str(first_id + part), None)
        return item_id

    add_account(engine, "alice")
    database = Database(url=db_url)
    first = post(["Same words"], [[ref("a")]], 1000)
    post(["Same words"], [[ref("b"), ref("a")]], 2000)  # other media: a second post X shows differently
    post(["Same words"], [[]], 3000)  # and without media
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(s.tweets.c.media_hashes)).scalars()) == ["", "a" * 64,
                                                                                      f"{'b' * 64},{'a' * 64}"]
    for window in (WindowConfig(), WindowConfig(lookback_days=1)):
        assert no_duplicate_posts(database=database, config=window).passed
    thread = post(["Same words", "and a tail"], [[ref("a")], []], 4000)  # the same words AND image again
    for window in (WindowConfig(), WindowConfig(lookback_days=1)):
        evaluation = no_duplicate_posts(database=database, config=window)
        assert evaluation.passed is False
        [row] = evaluation.metadata["sample"].value
        assert row["kind"] == "same text" and {row["item_id"], _item_of(engine, row["other"])} == {first, thread}
