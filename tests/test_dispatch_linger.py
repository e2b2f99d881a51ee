"""Lingering posting runs, in process against the sandbox in real Chromium: a dispatched run keeps its browser
after its last post and polls its account's queue, so a post that falls due later needs no new run; it ends
after the linger time with nothing due, at the run's maximum age, and at once when its breaker opens.
(tests/test_dispatch_daemon.py shows the same under dagster-daemon with real runs.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from pipeline.content import make_draft
from tests.fixtures_world import World

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the daemon's database


def _when(condition: Callable[[], bool], then: Callable[[], None], timeout_s: float = 60) -> threading.Thread:
    """Run `then` in a thread once `condition` holds (the run under test owns the main thread's browser)."""
    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _enqueue_in(world: World, handle: str, text: str, seconds: float) -> None:
    queue.enqueue(world.engine, [(make_draft(handle, [text]), world.now() + timedelta(seconds=seconds))])


def _workers(world: World) -> set[str]:
    with world.engine.connect() as conn:
        return set(conn.execute(sa.select(s.post_attempts.c.worker)).scalars())


@pytest.mark.timeout(120)
def test_a_lingering_run_posts_an_item_that_falls_due_after_it_started_then_ends_after_the_linger_time(
        world: World) -> None:
    world.enqueue("alice", "due when the run starts")
    watcher = _when(lambda: len(world.truth()) == 1,
                    lambda: _enqueue_in(world, "alice", "enqueued while the run lingers, due 2 s later", 2))
    started = time.monotonic()
    report = world.post(accounts=["alice"], wait_s=5, linger_s=6, run_max_s=120)
    elapsed = time.monotonic() - started
    watcher.join()

    assert report.posted == 2 and sorted(t["text"] for t in world.truth()) == [
        "due when the run starts", "enqueued while the run lingers, due 2 s later"]
    assert len(_workers(world)) == 1  # one run posted both
    # It lingered 6 s after the second item fell due (~3 s in), then ended with nothing due.
    assert 8 <= elapsed <= 30, elapsed
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(s.account_leases)).scalar() == 0


@pytest.mark.timeout(120)
def test_a_lingering_run_ends_at_its_maximum_age_however_long_the_linger_time(world: World) -> None:
    world.enqueue("alice", "the only post")
    started = time.monotonic()
    report = world.post(accounts=["alice"], wait_s=5, linger_s=600, run_max_s=10)
    elapsed = time.monotonic() - started
    assert report.posted == 1 and 9 <= elapsed <= 25, elapsed


@pytest.mark.timeout(120)
def test_a_lingering_run_stops_lingering_when_its_breaker_opens(world: World) -> None:
    world.enqueue("alice", "posted before the rate limit")

    def rate_limit_then_enqueue() -> None:
        world.sandbox.set_faults({"rate_limit": {"p": 1.0, "reset_s": 600}})
        _enqueue_in(world, "alice", "hits the rate limit", 0)

    watcher = _when(lambda: len(world.truth()) == 1, rate_limit_then_enqueue)
    started = time.monotonic()
    report = world.post(accounts=["alice"], wait_s=5, linger_s=600, run_max_s=300)
    elapsed = time.monotonic() - started
    watcher.join()

    assert report.posted == 1 and report.breaker_states["alice"] == "open"
    assert elapsed < 60, f"the run lingered {elapsed:.0f} s with its breaker open"
    assert {i.state for i in queue.list_items(world.engine, account="alice")} == {"posted", "queued"}
