"""Dispatch by due time on real databases and a real Dagster instance: which accounts get a run, the run tags,
and the per-account lease that keeps two posting runs of one account apart by any launch path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from pipeline import dispatch
from pipeline import schema as s
from pipeline.db import db_now, get_engine
from resources import Database
from sensors.dispatch import dispatch_sensor
from tests.dagster_helpers import add_account, add_item, set_breaker, temp_instance


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with temp_instance() as inst:
        yield inst


def _now(engine: sa.Engine):  # noqa: ANN202
    with engine.connect() as conn:
        return db_now(conn)


def test_accounts_due_within_the_horizon_are_dispatched_and_held_ones_are_not(engine: sa.Engine) -> None:
    for handle in ("ann", "bob", "cat", "dan", "eve"):
        add_account(engine, handle)
    now = _now(engine)
    add_item(engine, "ann", ["due now"], scheduled_at=now - timedelta(seconds=1))
    add_item(engine, "bob", ["due in 20 s"], scheduled_at=now + timedelta(seconds=20))
    add_item(engine, "cat", ["due in 10 min"], scheduled_at=now + timedelta(minutes=10))
    add_item(engine, "dan", ["outcome unknown"], state=s.UNKNOWN, scheduled_at=now - timedelta(minutes=5))
    add_item(engine, "eve", ["due, but rate limited for an hour"], scheduled_at=now)
    set_breaker(engine, "eve", "open", opened_ago=timedelta(seconds=5), open_until_in=timedelta(hours=1))

    _, due = dispatch.accounts_to_dispatch(engine, horizon_s=30)
    by_account = {d.account: d for d in due}
    assert sorted(by_account) == ["ann", "bob", "dan"]
    assert by_account["ann"].due == 1 and by_account["dan"].unknown == 1 and by_account["dan"].due == 0
    assert abs((by_account["bob"].first_due - (now + timedelta(seconds=20))).total_seconds()) < 0.01
    assert 19 <= dispatch.seconds_until_due(engine, "bob") <= 20
    assert dispatch.seconds_until_due(engine, "ann") == 0.0 and dispatch.seconds_until_due(engine, "dan") is None


def test_sensor_packs_accounts_due_together_and_asks_nothing_for_an_account_a_run_serves(
        engine: sa.Engine, db_url: str, instance: dg.DagsterInstance) -> None:
    for handle in ("ann", "bob", "cat"):
        add_account(engine, handle)
        add_item(engine, handle, [f"post of {handle}"])
    resources = {"database": Database(url=db_url)}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        requests = dispatch_sensor.evaluate_tick(context).run_requests
    assert len(requests) == 1  # three accounts due together share one run (PIPELINE_DISPATCH_ACCOUNTS_PER_RUN 8)
    assert requests[0].tags["pipeline/accounts"] == "ann,bob,cat" and "pipeline/account" not in requests[0].tags
    assert requests[0].tags["pipeline/job"] == "post" and requests[0].run_key.startswith("post:ann+bob+cat:")

    instance.add_run(dg.DagsterRun(job_name="post_job", run_id="1" * 8 + "-0000-0000-0000-000000000000",
                                   status=dg.DagsterRunStatus.STARTED, tags={"pipeline/account": "ann"}))
    instance.add_run(dg.DagsterRun(job_name="post_job", run_id="2" * 8 + "-0000-0000-0000-000000000000",
                                   status=dg.DagsterRunStatus.NOT_STARTED, tags={"pipeline/accounts": "cat,dan"}))
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        requests = dispatch_sensor.evaluate_tick(context).run_requests
    assert [(r.tags.get("pipeline/account"), r.tags.get("pipeline/accounts")) for r in requests] == [("bob", None)]


def test_packs_are_even_and_bounded() -> None:
    handles = [f"a{n:02d}" for n in range(50)]
    packs = dispatch.pack_accounts(handles, 8)
    assert [len(p) for p in packs] == [8, 7, 7, 7, 7, 7, 7] and sum(packs, []) == handles
    assert dispatch.pack_accounts(["ann"], 8) == [["ann"]] and dispatch.pack_accounts([], 8) == []
    assert dispatch.pack_accounts(["ann", "bob"], 1) == [["ann"], ["bob"]]


def test_an_account_whose_turn_ended_in_a_running_packed_run_is_dispatched_again() -> None:
    """A packed run lingers while any of its accounts does; an account whose thread ended (its lease is
    released) must not wait for the whole run to end before its next post gets a run."""
    from sensors.dispatch import LEASE_GRACE_S, accounts_served

    now = 10_000.0
    packed = {"pipeline/accounts": "ann,bob"}
    assert accounts_served([(packed, None)], leased=set(), now=now) == {"ann", "bob"}  # queued
    assert accounts_served([(packed, now - 5)], leased=set(), now=now) == {"ann", "bob"}  # starting
    late = now - LEASE_GRACE_S - 1
    assert accounts_served([(packed, late)], leased={"ann"}, now=now) == {"ann"}
    assert accounts_served([({"pipeline/account": "cat"}, late)], leased=set(), now=now) == set()
    assert accounts_served([({}, late)], leased={"ann"}, now=now) == set()  # an untagged run names no account


def test_lease_is_exclusive_renewable_and_taken_over_only_after_expiry(db_url: str) -> None:
    engine = get_engine(db_url)
    first = dispatch.AccountLease(engine, "ann", "run-1", ttl_s=30)
    second = dispatch.AccountLease(engine, "ann", "run-2", ttl_s=30)
    assert first.acquire() and not second.acquire()
    assert second.holder() == "run-1"
    first.renew()
    assert dispatch.AccountLease(engine, "bob", "run-2", ttl_s=30).acquire()  # other accounts are free
    first.release()
    assert second.acquire() and second.holder() == "run-2"

    # A dead run's lease expires (database clock) and is taken over; the dead run can't renew it any more.
    with engine.begin() as conn:
        conn.execute(s.account_leases.update().values(expires_at=db_now(conn) - timedelta(seconds=1)))
    third = dispatch.AccountLease(engine, "ann", "run-3", ttl_s=30)
    assert third.acquire()
    with pytest.raises(dispatch.AccountBusy):
        second.renew()


def test_lease_race_has_exactly_one_winner(db_url: str) -> None:
    engine = get_engine(db_url)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def contend(n: int) -> None:
        lease = dispatch.AccountLease(engine, "ann", f"run-{n}", ttl_s=30)
        barrier.wait()
        results.append(lease.acquire())

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]


# --------------------------------------------------------------------------- lingering runs (pure decisions)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _due(seconds: float | None, held: bool = False) -> dispatch.NextDue:
    return dispatch.NextDue(NOW, seconds, held)


def _step(elapsed_s: float = 10, idle_s: float = 0, due: dispatch.NextDue | None = None, horizon_s: float = 60,
          linger_s: float = 300, run_max_s: float = 1800) -> dispatch.LingerStep:
    return dispatch.linger_step(elapsed_s, idle_s, due or _due(None), horizon_s, linger_s, run_max_s, poll_s=1.0)


def test_linger_step_posts_what_is_due_and_polls_while_lingering() -> None:
    assert _step(due=_due(0.0)).action == "post"
    assert _step(due=_due(None), idle_s=100) == dispatch.LingerStep("wait", 1.0)  # polls for new work
    assert _step(due=_due(0.3), idle_s=100) == dispatch.LingerStep("wait", pytest.approx(0.35))  # at its time
    assert _step(due=_due(900), idle_s=299.5).seconds == pytest.approx(0.5)  # not beyond the linger time


def test_linger_step_stops_after_the_linger_time_with_nothing_due_but_waits_for_an_item_within_the_horizon() -> None:
    assert _step(due=_due(None), idle_s=300) == dispatch.LingerStep("stop", reason="linger")
    assert _step(due=_due(120), idle_s=300).action == "stop"  # beyond the horizon: the sensor starts a run
    assert _step(due=_due(30), idle_s=300).action == "wait"  # within the horizon: the run was started for it
    # Without lingering (0) a run still waits for its item's minute, as before lingering existed.
    assert _step(due=_due(30), linger_s=0).action == "wait"
    assert _step(due=_due(None), linger_s=0) == dispatch.LingerStep("stop", reason="nothing_due")


def test_linger_step_stops_at_the_run_max_and_when_the_breaker_holds() -> None:
    assert _step(elapsed_s=1800, due=_due(0.0)) == dispatch.LingerStep("stop", reason="run_max")
    assert _step(elapsed_s=1790, due=_due(30), idle_s=0).seconds == 1.0  # lingers, but not past the maximum
    assert _step(elapsed_s=1799.6, due=_due(None)).seconds == pytest.approx(0.4)
    assert _step(elapsed_s=1790, due=_due(30), idle_s=400).action == "stop"  # due after the maximum: next run
    assert _step(due=_due(0.0, held=True)) == dispatch.LingerStep("stop", reason="breaker")
    assert _step(due=_due(None, held=True)) == dispatch.LingerStep("stop", reason="breaker")


def test_next_due_reads_the_database_clock_the_next_item_and_the_breaker(engine: sa.Engine) -> None:
    add_account(engine, "ann")
    assert dispatch.next_due(engine, "ann").seconds is None
    add_item(engine, "ann", ["in 20 s"], scheduled_at=_now(engine) + timedelta(seconds=20))
    due = dispatch.next_due(engine, "ann")
    assert 19 <= due.seconds <= 20 and not due.held and abs((due.now - _now(engine)).total_seconds()) < 5
    set_breaker(engine, "ann", "open", opened_ago=timedelta(seconds=5), open_until_in=timedelta(minutes=10))
    assert dispatch.next_due(engine, "ann").held
    set_breaker(engine, "ann", "open", opened_ago=timedelta(minutes=20), open_until_in=timedelta(seconds=-1))
    assert not dispatch.next_due(engine, "ann").held  # half-open: the run may probe


def test_run_max_stays_inside_post_jobs_max_runtime() -> None:
    from pipeline.settings import ConfigError, load_settings

    assert load_settings(env={}).dispatch_run_max_s == 1800 and load_settings(env={}).dispatch_linger_s == 300
    for bad in ("5", "4000"):
        with pytest.raises(ConfigError, match="PIPELINE_DISPATCH_RUN_MAX_S"):
            load_settings(env={"PIPELINE_DISPATCH_RUN_MAX_S": bad})
