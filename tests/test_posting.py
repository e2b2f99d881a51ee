"""The posting protocol against the sandbox in real Chromium, one test per failure pattern of the seed
analysis, each judged by the sandbox's ground truth (what X actually stored), not by our own database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest

from pipeline import posting, queue
from pipeline.breaker import Breaker
from pipeline.posting import ConfirmationJournalled, journal_for
from sandbox.dbproxy import FaultProxy
from tests.fixtures_world import World, make_settings
from tests.waiting import wait_until


def item(w: World, item_id: int) -> queue.Item:
    return queue.get_item(w.engine, item_id)


def test_single_thread_and_reply_are_each_posted_once_with_their_ids(world: World) -> None:
    single = world.enqueue("alice", "A single post from the pipeline")
    thread = world.enqueue("alice", "Thread, part one", "Thread, part two", "Thread, part three")
    report = world.post()
    assert report.posted == 2
    reply = world.enqueue("alice", "A reply to the single", reply_to=item(world, single).tweet_ids[0])
    world.post()
    truth = {t["id"]: t for t in world.truth()}
    assert len(truth) == 5
    assert item(world, single).tweet_ids == [next(i for i, t in truth.items() if t["text"] == "A single post from the pipeline")]
    parts = item(world, thread).tweet_ids
    assert [truth[i]["text"] for i in parts] == ["Thread, part one", "Thread, part two", "Thread, part three"]
    assert [truth[i]["in_reply_to"] for i in parts] == [None, parts[0], parts[1]]
    replied = item(world, reply)
    assert replied.state == "posted" and truth[replied.tweet_ids[0]]["in_reply_to"] == item(world, single).tweet_ids[0]


def test_response_stalled_past_the_timeout_ends_posted_with_the_right_id(world: World) -> None:
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30}})
    item_id = world.enqueue("alice", "Stalled but stored")
    report = world.post()
    truth = world.truth()
    assert len(truth) == 1
    final = item(world, item_id)
    assert final.state == "posted" and final.tweet_ids == [truth[0]["id"]]
    assert report.reconciled == 1 and report.failed == 0


def test_five_timeouts_in_a_row_do_not_open_the_breaker(world: World) -> None:
    world.settings = make_settings(world.settings.database_url, world.sandbox.url, world.state_dir, post_timeout_s=1)
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30}})
    ids = [world.enqueue("alice", f"Slow post number {n}") for n in range(5)]
    for _ in ids:  # each stalled post ends the account's run; the next run reconciles it, then posts one more
        report = world.post()
        assert report.posted + report.reconciled <= 2 and report.unknown == 1
    assert Breaker(world.engine).status("alice")[0]["state"] == "closed"
    assert {item(world, i).state for i in ids} == {"posted"}
    assert len(world.truth()) == 5


def test_a_5xx_is_never_retried_blindly_but_reconciled_then_posted_once(world: World) -> None:
    earlier = world.enqueue("alice", "An earlier post, so the timeline has posts to read")
    world.post()
    world.sandbox.set_faults({"post_error_5xx": {"p": 1.0}})
    item_id = world.enqueue("alice", "Retry me after a 503")
    world.post()
    assert item(world, item_id).state == "unknown"  # the request left: it may be stored, so no blind retry
    assert [t["text"] for t in world.truth()] == ["An earlier post, so the timeline has posts to read"]
    world.sandbox.clear_faults()
    time.sleep(world.settings.reconcile_settle_s)  # the settle window between the two absence checks is real time
    world.post()
    final = item(world, item_id)
    assert final.state == "posted" and final.attempts == 2
    assert sorted(t["id"] for t in world.truth()) == sorted(item(world, earlier).tweet_ids + final.tweet_ids)


def test_rate_limit_opens_the_breaker_until_reset_then_posting_resumes_by_itself(world: World) -> None:
    world.sandbox.set_faults({"rate_limit": {"p": 1.0, "reset_s": 3}})
    item_id = world.enqueue("alice", "Posted after the rate limit")
    world.post()
    world.sandbox.clear_faults()  # the account's limit stays active until its reset time
    status = Breaker(world.engine).status("alice")[0]
    assert status["state"] == "open" and "rate limited" in status["reason"]
    assert item(world, item_id).failures == 0  # no attempt penalty for the platform's limit
    world.make_due()
    world.post()
    assert world.truth() == []  # the breaker held: nothing was sent during the limit
    time.sleep(max(0.0, (status["open_until"] - world.now()).total_seconds()) + 0.2)
    world.make_due()
    world.post()
    assert item(world, item_id).state == "posted" and len(world.truth()) == 1
    assert Breaker(world.engine).status("alice")[0]["state"] == "closed"


def test_rate_limit_on_a_worker_whose_clock_is_five_minutes_slow_does_not_park_the_item(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos harness found this: the item's delay came from the worker's own clock, so a slow clock parked
    it five minutes past X's reset. The breaker (on the database clock) alone decides when to resume."""

    class SlowClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) - timedelta(minutes=5)

    monkeypatch.setattr(posting, "datetime", SlowClock)
    world.sandbox.set_faults({"rate_limit": {"p": 1.0, "reset_s": 2}})
    item_id = world.enqueue("alice", "Posted right after the reset")
    world.post()
    world.sandbox.clear_faults()
    assert item(world, item_id).scheduled_at <= world.now()  # due again at once; the breaker holds the account
    status = Breaker(world.engine).status("alice")[0]
    time.sleep(max(0.0, (status["open_until"] - world.now()).total_seconds()) + 0.2)
    world.post()  # no make_due(): nothing but the breaker stood in the way
    assert item(world, item_id).state == "posted" and len(world.truth()) == 1


def test_expired_session_forces_the_breaker_open_alerts_and_resumes_after_login(world: World) -> None:
    world.sandbox.set_faults({"session_expired": {"p": 1.0}})
    item_id = world.enqueue("alice", "Waits for a human to log in")
    world.post()
    world.sandbox.clear_faults()
    assert Breaker(world.engine).status("alice")[0]["state"] == "forced_open"
    assert {tuple(key.split(":")[:3]) for key, _ in world.alerts.sent if "alice" in key} == {("breaker-forced", "alice", "auth")}
    world.make_due()
    world.post()
    assert world.truth() == [] and item(world, item_id).state == "queued"
    world.login("alice")  # the operator logs in again: the next run's session check closes the breaker
    world.post()
    assert item(world, item_id).state == "posted" and len(world.truth()) == 1


def test_thread_whose_third_part_failed_resumes_at_part_three(world: World) -> None:
    page = world.browser.page("alice", world.state_dir / "sessions" / "alice.json")
    calls = {"n": 0}

    def third_fails(route: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            route.fulfill(status=503, body="{}", content_type="application/json")
        else:
            route.continue_()

    page.route("**/CreateTweet", third_fails)
    try:
        item_id = world.enqueue("alice", "Resume one", "Resume two", "Resume three", "Resume four")
        world.post()
        half = item(world, item_id)
        assert half.state == "unknown" and len(half.tweet_ids) == 2  # a 503 after the request left: reconcile
        time.sleep(world.settings.reconcile_settle_s)  # the second absence check must come a settle window later
        world.post()
    finally:
        page.unroute("**/CreateTweet")
    final = item(world, item_id)
    truth = {t["id"]: t for t in world.truth()}
    assert final.state == "posted" and len(truth) == 4
    assert [truth[i]["text"] for i in final.tweet_ids] == ["Resume one", "Resume two", "Resume three", "Resume four"]
    assert truth[final.tweet_ids[2]]["in_reply_to"] == final.tweet_ids[1]


def test_same_content_enqueued_twice_is_posted_once(world: World) -> None:
    world.sandbox.set_rules(duplicate_window_hours=0)  # measure our protection, not X's
    world.enqueue("alice", "Only once, please")
    with pytest.raises(queue.EnqueueError):
        world.enqueue("alice", "only once,   please")
    world.post()
    with pytest.raises(queue.EnqueueError):
        world.enqueue("alice", "Only once, please")
    world.post()
    assert [t["text"] for t in world.truth()] == ["Only once, please"]


def test_duplicate_187_from_our_own_unconfirmed_post_is_reconciled_not_failed(world: World) -> None:
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30}})
    item_id = world.enqueue("alice", "Stored, then reported as duplicate")
    # Post once behind the app's back, as a lost earlier attempt would have, then post normally.
    page = world.browser.page("alice", world.state_dir / "sessions" / "alice.json")
    from pipeline.xweb import XWebClient

    world.sandbox.clear_faults()
    first = XWebClient(page, world.settings.x_base_url, "alice").post("Stored, then reported as duplicate")
    world.post()
    final = item(world, item_id)
    assert final.state == "posted" and final.tweet_ids == [first]
    assert len(world.truth()) == 1


def test_worker_killed_between_click_and_confirm_is_reconciled_by_the_next_run(
    world: World, db_url: str, tmp_path: Path
) -> None:
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 60}})
    item_id = world.enqueue("alice", "Killed mid-post")
    env = {**os.environ, "PIPELINE_DATABASE_URL": db_url, "PIPELINE_X_BASE_URL": world.sandbox.url,
           "PIPELINE_STATE_DIR": str(world.state_dir), "PIPELINE_POST_TIMEOUT_S": "60", "PIPELINE_LEASE_S": "3"}
    script = textwrap.dedent("""
        from pipeline.browser import BrowserSession
        from pipeline.db import db_now, get_engine
        from pipeline.posting import run_posting
        from pipeline.settings import load_settings
        settings = load_settings()
        with BrowserSession() as browser:
            run_posting(get_engine(settings.database_url), settings, browser)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not world.truth() and time.monotonic() < deadline:  # X has stored it; the response is held
            time.sleep(0.1)
        assert world.truth(), "the worker never posted"
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(10)
    assert item(world, item_id).state == "posting"  # the intent survived the kill
    world.sandbox.clear_faults()
    wait_until(lambda: lease_ran_out(world, item_id), 30, "the dead worker's lease to run out")
    report = world.post()
    final = item(world, item_id)
    assert final.state == "posted" and final.tweet_ids == [world.truth()[0]["id"]]
    assert report.reconciled == 1 and len(world.truth()) == 1


def lease_ran_out(w: World, item_id: int) -> bool:
    """The item's lease is over by the database's clock (the clock the next claim judges it by)."""
    from pipeline.db import db_now

    lease = item(w, item_id).lease_expires_at
    with w.engine.connect() as conn:
        return lease is None or lease <= db_now(conn)


class CutWhenStored(threading.Thread):
    """Cuts the database the instant X has stored the post (its response still on the way); gives up after
    `timeout_s` and says so in `timed_out`, so a post that never comes fails the test instead of hanging it."""

    def __init__(self, w: World, proxy: FaultProxy, restore_after_s: float | None, timeout_s: float = 60) -> None:
        super().__init__(daemon=True)
        self.w, self.proxy, self.restore_after_s, self.timeout_s = w, proxy, restore_after_s, timeout_s
        self.timed_out = False

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self.w.truth():
            if time.monotonic() >= deadline:
                self.timed_out = True
                return
            time.sleep(0.02)
        self.proxy.cut()
        if self.restore_after_s is not None:
            time.sleep(self.restore_after_s)  # the length of the outage itself, not a wait for something
            self.proxy.restore()


def _cut_when_stored(w: World, proxy: FaultProxy, restore_after_s: float | None) -> CutWhenStored:
    thread = CutWhenStored(w, proxy, restore_after_s)
    thread.start()
    return thread


def test_database_lost_after_post_then_back_saves_the_id_without_a_repost(proxied: tuple[World, FaultProxy]) -> None:
    w, proxy = proxied
    w.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 1}})
    item_id = w.enqueue("alice", "The database blinked")
    watcher = _cut_when_stored(w, proxy, restore_after_s=2.5)
    w.post()
    watcher.join()
    assert not watcher.timed_out, "the post was never stored"
    final = item(w, item_id)
    assert final.state == "posted" and final.tweet_ids == [w.truth()[0]["id"]]
    assert len(w.truth()) == 1 and journal_for(w.settings).pending() == []


def test_database_down_for_the_whole_run_journals_the_id_and_the_next_run_records_it(
    proxied: tuple[World, FaultProxy],
) -> None:
    w, proxy = proxied
    w.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 1}})
    item_id = w.enqueue("alice", "The database stayed down")
    w.enqueue("alice", "Must wait for the journal")
    watcher = _cut_when_stored(w, proxy, restore_after_s=None)
    with pytest.raises(ConfirmationJournalled, match="journal"):
        w.post()
    watcher.join()
    assert not watcher.timed_out, "the post was never stored"
    journal = journal_for(w.settings)
    pending = journal.pending()
    assert [e["tweet_id"] for e in pending] == [w.truth()[0]["id"]]
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"
    # On disk: one JSON line per confirmation, naming the item and the tweet, readable without our code.
    lines = [json.loads(line) for line in journal.path.read_text().splitlines() if line.strip()]
    assert [(e["item_id"], e["tweet_id"]) for e in lines] == [(item_id, w.truth()[0]["id"])]
    proxy.restore()
    w.sandbox.clear_faults()
    report = w.post()
    assert report.journal_replayed == 1 and journal.pending() == []
    final = item(w, item_id)
    assert final.state == "posted" and final.tweet_ids == [pending[0]["tweet_id"]]
    texts = [t["text"] for t in w.truth()]
    assert texts.count("The database stayed down") == 1 and "Must wait for the journal" in texts


def test_accounts_posting_in_parallel_merge_their_reports_and_a_journalled_confirmation_wins() -> None:
    """Pure logic of `_in_parallel` (no browser): every account's turn runs on its own thread to its end, even
    when another raised; the reports add up; a journalled confirmation is the error the run fails with."""
    started: list[str] = []
    sessions: list[object] = []

    class FakeSession:
        def __enter__(self) -> FakeSession:
            sessions.append(self)
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def turn(handle: str, session: Any, report: posting.PostingReport) -> None:
        started.append(handle)
        report.posted += 1
        report.posted_by_account[handle] = [f"id-{handle}"]
        if handle == "bob":
            raise ValueError("a page crashed")
        if handle == "cat":
            time.sleep(0.2)
            raise ConfirmationJournalled("the database is down")

    report = posting.PostingReport()
    with pytest.raises(ConfirmationJournalled):
        posting._in_parallel(["ann", "bob", "cat"], FakeSession, turn, report)
    assert sorted(started) == ["ann", "bob", "cat"] and len({id(s) for s in sessions}) == 3  # a browser each
    assert report.posted == 3 and sorted(report.posted_by_account) == ["ann", "bob", "cat"]
