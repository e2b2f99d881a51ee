"""The queue on a real SQLite file and a real PostgreSQL server: due-ness, claims, leases, transitions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pipeline import queue as q
from pipeline import schema as s
from pipeline.content import make_draft
from pipeline.db import db_now, get_engine
from tests.clock import frozen_engine
from tests.waiting import wait_until


@pytest.fixture
def alice(engine: sa.Engine) -> str:
    q.add_account(engine, "alice", "/nonexistent/alice.json")
    return "alice"


def _enqueue_at(engine: sa.Engine, text: str, at: datetime | None, account: str = "alice") -> int:
    return q.enqueue(engine, [(make_draft(account, [text]), at)])[0]


def _now(engine: sa.Engine) -> datetime:
    with engine.connect() as conn:
        return db_now(conn)


# Millisecond-aligned: SQLite's clock has millisecond resolution, PostgreSQL's microsecond.
INSTANT = datetime(2026, 3, 29, 0, 59, 59, 999000, tzinfo=UTC)  # just before Europe's DST switch


def test_item_due_exactly_at_database_now_is_claimed_and_one_microsecond_later_is_not(
    db_url: str, alice: str
) -> None:
    engine = get_engine(db_url)
    exactly = _enqueue_at(engine, "due exactly now", INSTANT)
    later = _enqueue_at(engine, "one microsecond later", INSTANT + timedelta(microseconds=1))
    earlier = _enqueue_at(engine, "one microsecond earlier", INSTANT - timedelta(microseconds=1))
    frozen = frozen_engine(db_url, INSTANT)
    try:
        first, second = q.claim(frozen, alice), q.claim(frozen, alice)
        assert first is not None and first.id == earlier  # -1 µs: due, and the earliest
        assert second is not None and second.id == exactly
        assert q.claim(frozen, alice) is None  # +1 µs: not yet
        assert q.get_item(engine, later).state == s.QUEUED
    finally:
        frozen.dispose()
    frozen = frozen_engine(db_url, INSTANT + timedelta(microseconds=1000))
    try:
        assert q.claim(frozen, alice).id == later
    finally:
        frozen.dispose()


def test_dst_switch_on_the_database_clock_changes_nothing(db_url: str, alice: str) -> None:
    from zoneinfo import ZoneInfo

    engine = get_engine(db_url)
    paris = ZoneInfo("Europe/Paris")
    # 2026-03-29 02:00 local does not exist in Paris; 01:59:59.999 local is 00:59:59.999 UTC.
    before_switch = _enqueue_at(engine, "before the switch", datetime(2026, 3, 29, 1, 59, 59, 999000, tzinfo=paris))
    after_switch = _enqueue_at(engine, "after the switch", datetime(2026, 3, 29, 3, 0, 0, 1000, tzinfo=paris))
    frozen = frozen_engine(db_url, INSTANT)
    try:
        assert q.claim(frozen, alice).id == before_switch
        assert q.claim(frozen, alice) is None  # one real millisecond later, not an hour-shifted one
    finally:
        frozen.dispose()
    frozen = frozen_engine(db_url, INSTANT + timedelta(milliseconds=2))
    try:
        assert q.claim(frozen, alice).id == after_switch
    finally:
        frozen.dispose()


def test_future_item_not_claimed_then_claimed_once_due(engine: sa.Engine, alice: str) -> None:
    now = _now(engine)
    item_id = _enqueue_at(engine, "soon", now + timedelta(seconds=1))
    assert q.claim(engine, alice) is None
    claimed = wait_until(lambda: q.claim(engine, alice), 10, "the item to become due")
    assert claimed.id == item_id and _now(engine) >= now + timedelta(seconds=1)


def test_non_utc_session_time_zone_and_offsets_change_nothing(db_url: str, alice: str) -> None:
    engine = get_engine(db_url)
    now = _now(engine)
    tokyo = now.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    due_id = _enqueue_at(engine, "tokyo past", tokyo - timedelta(seconds=5))
    _enqueue_at(engine, "tokyo future", tokyo + timedelta(hours=1))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("SET TIME ZONE 'America/New_York'")
            conn.exec_driver_sql("SELECT 1")
        # A connection whose session time zone is not UTC: due-ness must not shift by the offset.
        other = sa.create_engine(
            engine.url.render_as_string(hide_password=False),
            connect_args={"options": "-c timezone=Pacific/Kiritimati"},
        )
        try:
            claimed = q.claim(other, alice)
            assert claimed is not None and claimed.id == due_id
            assert claimed.scheduled_at.utcoffset() == timedelta(0)
            assert q.claim(other, alice) is None
        finally:
            other.dispose()
    else:
        claimed = q.claim(engine, alice)
        assert claimed is not None and claimed.id == due_id
        assert q.claim(engine, alice) is None


def test_dst_boundary_round_trips_exact_instants(engine: sa.Engine, alice: str) -> None:
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    # 01:30 happens twice on 2026-11-01 in New York; fold picks which one.
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ny)
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ny)
    a = _enqueue_at(engine, "first 01:30", first)
    b = _enqueue_at(engine, "second 01:30", second)
    assert q.get_item(engine, a).scheduled_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert q.get_item(engine, b).scheduled_at == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert [q.claim(engine, alice).id, q.claim(engine, alice).id] == [a, b]


def test_concurrent_claims_take_each_item_exactly_once(engine: sa.Engine, alice: str) -> None:
    drafts = [(make_draft("alice", [f"post number {i}"]), None) for i in range(500)]
    expected = sorted(q.enqueue(engine, drafts))
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        while True:
            item = q.claim(engine, alice, worker=f"w{n}")
            if item is None:
                return
            with lock:
                claimed.append(item.id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert sorted(claimed) == expected  # same id set: no item twice, none lost


def test_second_enqueue_of_same_text_is_refused_with_a_clear_message(engine: sa.Engine, alice: str) -> None:
    _enqueue_at(engine, "Hello   world", None)
    with pytest.raises(q.EnqueueError, match=r"already has this text as item \d+ \(queued\)"):
        _enqueue_at(engine, "hello world", None)
    assert q.count_by_state(engine) == {"queued": 1}


def test_database_refuses_a_second_live_item_even_past_the_code(engine: sa.Engine, alice: str) -> None:
    item_id = _enqueue_at(engine, "guarded by the index", None)
    row = dict(q.get_item(engine, item_id).__dict__)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(s.content_items.insert().values(
            account="alice", kind="single", parts=row["parts"], part_count=1, fingerprint=row["fingerprint"],
            state="queued", scheduled_at=row["scheduled_at"], created_at=row["scheduled_at"],
            updated_at=row["scheduled_at"],
        ))


def test_one_row_per_tweet_id(engine: sa.Engine, alice: str) -> None:
    a, b = _enqueue_at(engine, "one", None), _enqueue_at(engine, "two", None)
    q.confirm_part(engine, a, 0, "1111111111111111111", None)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(s.tweets.insert().values(
            tweet_id="1111111111111111111", item_id=b, part_index=0, account="alice", text="two",
            posted_at=datetime.now(UTC),
        ))


def test_failed_item_frees_its_text_for_a_new_attempt(engine: sa.Engine, alice: str) -> None:
    item_id = _enqueue_at(engine, "rejected once", None)
    q.fail(engine, item_id, None, "rejected", "policy")
    assert _enqueue_at(engine, "rejected once", None) != item_id


def test_batch_with_one_bad_entry_writes_nothing(engine: sa.Engine, alice: str) -> None:
    batch = [(make_draft("alice", ["fine"]), None), (make_draft("bob", ["unknown account"]), None)]
    with pytest.raises(q.EnqueueError, match="account 'bob' is not registered"):
        q.enqueue(engine, batch)
    assert q.count_by_state(engine) == {}


def test_naive_time_is_refused(engine: sa.Engine, alice: str) -> None:
    with pytest.raises(q.EnqueueError, match="has no time zone"):
        _enqueue_at(engine, "naive", datetime(2026, 1, 1, 12, 0))


def test_lease_expiry_requeues_claimed_but_turns_started_attempts_unknown(engine: sa.Engine, alice: str) -> None:
    now = _now(engine) - timedelta(seconds=1)
    claimed_only = _enqueue_at(engine, "claimed only", now)
    started = _enqueue_at(engine, "attempt started", now + timedelta(microseconds=1000))
    assert q.claim(engine, alice, lease_s=0.001, worker="w1").id == claimed_only
    assert q.claim(engine, alice, lease_s=60, worker="w2").id == started
    q.start_attempt(engine, started, 0, "w2", lease_s=0.001)
    leases = [q.get_item(engine, i).lease_expires_at for i in (claimed_only, started)]
    wait_until(lambda: _now(engine) > max(leases), 10, "both leases to run out on the database clock")
    assert q.expire_leases(engine) == {"requeued": 1, "unknown": 1}
    assert q.get_item(engine, claimed_only).state == s.QUEUED
    assert q.get_item(engine, started).state == s.UNKNOWN  # never queued: the post may be live
    with engine.connect() as conn:
        outcome = conn.execute(sa.select(s.post_attempts.c.outcome)).scalar_one()
    assert outcome == "unknown"


def test_start_attempt_refuses_a_worker_that_lost_its_lease(engine: sa.Engine, alice: str) -> None:
    item_id = _enqueue_at(engine, "leased", None)
    q.claim(engine, alice, worker="w1")
    with pytest.raises(q.LeaseLost):
        q.start_attempt(engine, item_id, 0, "w2")


def test_thread_confirms_part_by_part_and_resumes(engine: sa.Engine, alice: str) -> None:
    item_id = q.enqueue(engine, [(make_draft("alice", ["one", "two", "three"]), None)])[0]
    item = q.claim(engine, alice, worker="w")
    for part, tweet in [(0, "1000000000000000001"), (1, "1000000000000000002")]:
        attempt = q.start_attempt(engine, item.id, part, "w")
        item = q.confirm_part(engine, item.id, part, tweet, attempt)
    assert item.state == s.POSTING and item.next_part == 2
    assert item.reply_target(2) == "1000000000000000002"
    attempt = q.start_attempt(engine, item.id, 2, "w")
    q.requeue(engine, item.id, attempt, "transient", "5xx before storing")
    item = q.claim(engine, alice, worker="w")
    assert item.id == item_id and item.next_part == 2  # resumes at part three, never re-posts one or two
    q.confirm_part(engine, item.id, 2, "1000000000000000003", q.start_attempt(engine, item.id, 2, "w"))
    final = q.get_item(engine, item_id)
    assert final.state == s.POSTED and final.tweet_ids == ["1000000000000000001", "1000000000000000002",
                                                            "1000000000000000003"]


def test_transient_failures_past_the_limit_go_to_review(engine: sa.Engine, alice: str) -> None:
    item_id = _enqueue_at(engine, "flaky", None)
    for _ in range(3):
        q.claim(engine, alice, worker="w")
        state = q.requeue(engine, item_id, q.start_attempt(engine, item_id, 0, "w"), "transient", "boom",
                          max_failures=3)
    assert state == s.NEEDS_REVIEW


def test_pool_never_exceeds_its_bound_and_returns_every_connection(pg_url: str) -> None:
    from pipeline.db import dispose_engines

    dispose_engines()
    app = "pool-bound-test"
    engine = get_engine(pg_url, pool_size=3, max_overflow=2, application_name=app)
    q.add_account(engine, "alice", "/x.json")
    watcher = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg2://"), poolclass=sa.pool.NullPool)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        with watcher.connect() as conn:
            while not stop.is_set():
                n = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
                ).scalar_one()
                peak = max(peak, n)

    thread = threading.Thread(target=watch)
    thread.start()

    def op(i: int) -> None:
        if i % 2:
            q.enqueue(engine, [(make_draft("alice", [f"pool op {i}"]), None)])
        else:
            q.claim(engine, "alice", worker=f"w{i}")

    try:
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(op, range(200)))
    finally:
        stop.set()
        thread.join()
        watcher.dispose()
    assert 0 < peak <= 5
    assert engine.pool.checkedout() == 0
    dispose_engines()


def test_settle_gap_between_absent_checks_is_measured_on_the_database_clock(db_url: str, alice: str) -> None:
    """A worker whose own clock runs fast must not see two checks milliseconds apart as a settled window."""
    engine = get_engine(db_url)
    item_id = _enqueue_at(engine, "maybe posted", INSTANT - timedelta(minutes=1))
    checks = []
    for instant in (INSTANT, INSTANT + timedelta(seconds=7)):
        frozen = frozen_engine(db_url, instant)
        try:
            q.claim(frozen, alice, worker="w", states=(s.QUEUED,))
            checks.append(q.note_absent(frozen, item_id, "w"))
            q.release(frozen, item_id, "w")
        finally:
            frozen.dispose()
    assert checks[0] == q.AbsentCheck(1, None)
    assert checks[1] == q.AbsentCheck(2, timedelta(seconds=7))  # the DB clock's gap, not the worker's


def test_failures_spread_over_a_threads_parts_do_not_send_it_to_review(engine: sa.Engine, alice: str) -> None:
    """The 1,000-post chaos run parked a half-posted thread this way: the limit is per part, without progress."""
    item_id = q.enqueue(engine, [(make_draft("alice", ["one", "two", "three"]), None)])[0]
    for part in range(3):
        for _ in range(2):  # two failures on every part: six in all, the limit is three in a row
            q.claim(engine, alice, worker="w")
            state = q.requeue(engine, item_id, q.start_attempt(engine, item_id, part, "w"), "transient", "5xx",
                              max_failures=3)
            assert state == s.QUEUED
        q.claim(engine, alice, worker="w")
        q.confirm_part(engine, item_id, part, f"100000000000000000{part}", q.start_attempt(engine, item_id, part, "w"))
    final = q.get_item(engine, item_id)
    assert final.state == s.POSTED and final.failures == 0
