"""The human loop on a real SQLite file and a real PostgreSQL server: every decision allowed and refused,
the evidence an operator sees, optional approval, and that checks and metrics see a recorded post."""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
import sqlalchemy as sa

from pipeline import integrity, resolve
from pipeline import queue as q
from pipeline import schema as s
from pipeline.cli import main
from pipeline.content import make_draft
from pipeline.generators import DraftsLibrary
from pipeline.metrics import due_snapshots
from pipeline.planning import plan
from pipeline.settings import load_settings

W = "worker-1"


@pytest.fixture
def alice(engine: sa.Engine) -> str:
    q.add_account(engine, "alice", "/nonexistent/alice.json")
    return "alice"


def _new(engine: sa.Engine, text: str = "A post about backups.", parts: list[str] | None = None,
         approved: bool = True) -> int:
    return q.enqueue(engine, [(make_draft("alice", parts or [text]), None)], approved=approved)[0]


def _clicked(engine: sa.Engine, item_id: int, part: int = 0) -> str:
    item = q.claim(engine, "alice", worker=W)
    assert item is not None and item.id == item_id
    return q.start_attempt(engine, item_id, part, W)


# Each builder leaves one item in one state, with the evidence that state carries in real runs.
def in_queued(engine: sa.Engine) -> int:
    return _new(engine)


def in_pending(engine: sa.Engine) -> int:
    return _new(engine, approved=False)


def in_posting(engine: sa.Engine) -> int:
    item_id = _new(engine)
    _clicked(engine, item_id)
    return item_id


def in_unknown(engine: sa.Engine) -> int:
    item_id = _new(engine)
    q.mark_unknown(engine, item_id, _clicked(engine, item_id), "timeout", "no response after the click")
    return item_id


def in_review_maybe_live(engine: sa.Engine) -> int:
    item_id = in_unknown(engine)
    q.needs_review(engine, item_id, None, "unknown", "timeline unreadable: 6 checks")
    return item_id


def in_review_not_sent(engine: sa.Engine) -> int:
    item_id = _new(engine)
    state = q.requeue(engine, item_id, _clicked(engine, item_id), "transient", "composer did not open",
                      max_failures=1)
    assert state == s.NEEDS_REVIEW
    return item_id


def in_posted(engine: sa.Engine) -> int:
    item_id = _new(engine)
    q.confirm_part(engine, item_id, 0, "9000000000000000001", _clicked(engine, item_id))
    return item_id


def in_failed(engine: sa.Engine) -> int:
    item_id = _new(engine)
    q.fail(engine, item_id, _clicked(engine, item_id), "rejected", "X said: text too long")
    return item_id


def in_cancelled(engine: sa.Engine) -> int:
    return resolve.cancel(engine, _new(engine), "not wanted").id


def _resolutions(engine: sa.Engine, item_id: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(s.resolutions).where(s.resolutions.c.item_id == item_id)
                                              .order_by(s.resolutions.c.id)).mappings()]


# --------------------------------------------------------------------------- allowed


@pytest.mark.parametrize("build", [in_review_maybe_live, in_review_not_sent, in_unknown, in_queued, in_failed])
def test_recording_a_live_post_marks_it_posted_with_time_and_reason(engine: sa.Engine, alice: str,
                                                                     build: Callable[[sa.Engine], int]) -> None:
    item_id = build(engine)
    before = q.get_item(engine, item_id).state
    item = resolve.record_live(engine, item_id, ["1234567890123456789"], reason="seen on x.com", by="ops")
    assert item.state == s.POSTED and item.tweet_ids == ["1234567890123456789"] and item.posted_at is not None
    (row,) = _resolutions(engine, item_id)
    assert (row["action"], row["from_state"], row["to_state"]) == ("tweet_id", before, s.POSTED)
    assert row["reason"] == "seen on x.com" and row["by"] == "ops" and row["at"] is not None
    assert row["tweet_ids"] == ["1234567890123456789"]
    with engine.connect() as conn:
        outcomes = conn.execute(sa.select(s.post_attempts.c.outcome)
                                .where(s.post_attempts.c.item_id == item_id)).scalars().all()
    assert "unknown" not in outcomes and "pending" not in outcomes


def test_a_half_posted_thread_gets_the_remaining_ids_in_order(engine: sa.Engine, alice: str) -> None:
    item_id = _new(engine, parts=["1/ Keep backups.", "2/ Test restores.", "3/ Time them."])
    q.confirm_part(engine, item_id, 0, "111", _clicked(engine, item_id))
    q.mark_unknown(engine, item_id, q.start_attempt(engine, item_id, 1, W), "timeout", "no response")
    with pytest.raises(resolve.ResolveError, match=r"give 2 --tweet-id.*got 3"):
        resolve.record_live(engine, item_id, ["222", "333", "444"])
    assert q.get_item(engine, item_id).state == s.UNKNOWN and _resolutions(engine, item_id) == []
    item = resolve.record_live(engine, item_id, ["222", "333"])
    assert item.state == s.POSTED and item.tweet_ids == ["111", "222", "333"]


def test_requeue_of_an_item_never_sent_posts_it_again(engine: sa.Engine, alice: str) -> None:
    item_id = in_review_not_sent(engine)
    item = resolve.requeue(engine, item_id, reason="composer fixed")
    assert item.state == s.QUEUED and item.failures == 0
    assert q.claim(engine, "alice", worker="w2").id == item_id  # due now
    assert [r["action"] for r in _resolutions(engine, item_id)] == ["requeue"]


@pytest.mark.parametrize("action", ["requeue", "cancel"])
def test_a_post_that_may_be_live_needs_checked_and_the_refusal_shows_the_evidence(
        engine: sa.Engine, alice: str, action: str) -> None:
    item_id = in_review_maybe_live(engine)
    decide = getattr(resolve, action)
    with pytest.raises(resolve.ResolveError) as refused:
        decide(engine, item_id, "looks absent")
    message = str(refused.value)
    assert "may be live" in message and "attempt part 0" in message and "unknown" in message
    assert "timeline unreadable" in message and f"pipeline resolve {item_id} --tweet-id" in message
    assert "--checked" in message and "x.com/alice" in message
    assert q.get_item(engine, item_id).state == s.NEEDS_REVIEW and _resolutions(engine, item_id) == []
    item = decide(engine, item_id, "looked: not on the timeline", checked=True)
    assert item.state == (s.QUEUED if action == "requeue" else s.CANCELLED)
    (row,) = _resolutions(engine, item_id)
    assert row["reason"] == "looked: not on the timeline" and row["from_state"] == s.NEEDS_REVIEW


@pytest.mark.parametrize("build", [in_queued, in_review_not_sent, in_failed, in_pending])
def test_cancel_from_each_allowed_state(engine: sa.Engine, alice: str, build: Callable[[sa.Engine], int]) -> None:
    item_id = build(engine)
    assert resolve.cancel(engine, item_id, "off topic").state == s.CANCELLED
    assert _resolutions(engine, item_id)[0]["action"] == "cancel"


# --------------------------------------------------------------------------- refused


REFUSED = [
    (in_posted, "record", "already posted with tweet id"),
    (in_posting, "record", "held by worker"),
    (in_cancelled, "record", "allowed only from"),
    (in_pending, "record", "allowed only from"),
    (in_queued, "requeue", "already queued"),
    (in_posted, "requeue", "allowed only from"),
    (in_failed, "requeue", "allowed only from"),
    (in_cancelled, "requeue", "allowed only from"),
    (in_pending, "requeue", "pipeline approve"),
    (in_posting, "requeue", "held by worker"),
    (in_posted, "cancel", "allowed only from"),
    (in_cancelled, "cancel", "allowed only from"),
    (in_posting, "cancel", "held by worker"),
    (in_unknown, "cancel", "may be live"),
    (in_unknown, "requeue", "may be live"),
    (in_queued, "approve", "allowed only from pending_approval"),
]


@pytest.mark.parametrize(("build", "action", "says"), REFUSED,
                         ids=[f"{b.__name__}-{a}" for b, a, _ in REFUSED])
def test_refused_decisions_say_why_and_change_nothing(engine: sa.Engine, alice: str,
                                                      build: Callable[[sa.Engine], int], action: str,
                                                      says: str) -> None:
    item_id = build(engine)
    before, decided = q.get_item(engine, item_id), _resolutions(engine, item_id)
    decide = {"record": lambda: resolve.record_live(engine, item_id, ["5550001"]),
              "requeue": lambda: resolve.requeue(engine, item_id),
              "cancel": lambda: resolve.cancel(engine, item_id),
              "approve": lambda: resolve.approve(engine, [item_id])}[action]
    with pytest.raises(resolve.ResolveError, match=says):
        decide()
    after = q.get_item(engine, item_id)
    assert (after.state, after.tweet_ids) == (before.state, before.tweet_ids)
    assert _resolutions(engine, item_id) == decided


@pytest.mark.parametrize(("ids", "says"), [
    (["abc"], "not a tweet id"), (["12 3"], "not a tweet id"), ([""], "not a tweet id"),
    (["1" * 20], "not a tweet id"), ([], "not a tweet id"), (["777", "777"], "twice"),
])
def test_bad_tweet_ids_are_refused(engine: sa.Engine, alice: str, ids: list[str], says: str) -> None:
    item_id = in_review_maybe_live(engine)
    with pytest.raises(resolve.ResolveError, match=says):
        resolve.record_live(engine, item_id, ids)
    assert q.get_item(engine, item_id).state == s.NEEDS_REVIEW


def test_a_tweet_id_recorded_for_another_item_is_refused(engine: sa.Engine, alice: str) -> None:
    posted = in_posted(engine)
    other = _new(engine, "Another post entirely.")
    with pytest.raises(resolve.ResolveError, match=f"already recorded for item {posted}"):
        resolve.record_live(engine, other, ["9000000000000000001"])
    with pytest.raises(resolve.ResolveError, match="does not exist"):
        resolve.record_live(engine, 999_999, ["1"])


# --------------------------------------------------------------------------- checks and metrics see it


def test_integrity_checks_and_metrics_count_a_recorded_post(engine: sa.Engine, alice: str) -> None:
    item_id = in_review_maybe_live(engine)  # text "A post about backups."
    resolve.record_live(engine, item_id, ["4242"])
    assert integrity.missing_tweet_ids(engine).total == 0
    due, _ = due_snapshots(engine, [("0m", timedelta(0))], None, 10)
    assert [d.tweet_id for d in due] == ["4242"]
    # A thread that repeats the recorded post's words is a duplicate the checks must find through 4242.
    thread = _new(engine, parts=["A post about backups.", "And a second part."])
    q.claim(engine, "alice", worker=W)
    q.confirm_part(engine, thread, 0, "4343", q.start_attempt(engine, thread, 0, W))
    q.confirm_part(engine, thread, 1, "4444", None)
    found = integrity.duplicate_posts(engine)
    assert found.total >= 1 and "4242" in json.dumps(found.rows, default=str)


# --------------------------------------------------------------------------- approval


def test_planned_items_wait_for_approval_and_are_never_due(engine: sa.Engine, alice: str) -> None:
    cfg = load_settings(env={}, require_approval=True, plan_min_items=2, thread_ratio=0.0)
    report = plan(engine, cfg, DraftsLibrary(engine), rng=random.Random(1))
    assert report.enqueued == 2
    assert q.count_by_state(engine) == {s.PENDING_APPROVAL: 2}
    assert q.claim(engine, "alice", worker=W, due_only=False) is None  # never picked, even ignoring time
    assert q.due_within(engine, 10_000) == {"alice": 0}
    assert plan(engine, cfg, DraftsLibrary(engine), rng=random.Random(2)).enqueued == 0  # no pile-up
    # The quiet account is told why, with the fix.
    assert [x.account for x in integrity.queue_shortfall(engine, cfg)] == ["alice"]
    hint = resolve.approval_hint(engine, ["alice"])
    assert "2 planned item(s) wait for approval" in hint and "pipeline approve --all" in hint
    ids = resolve.approve(engine, None, reason="read them")
    assert len(ids) == 2 and q.count_by_state(engine) == {s.QUEUED: 2}
    assert resolve.approval_hint(engine) == "" and integrity.queue_shortfall(engine, cfg) == []
    assert {r["action"] for i in ids for r in _resolutions(engine, i)} == {"approve"}


def test_without_the_setting_planned_items_are_queued(engine: sa.Engine, alice: str) -> None:
    plan(engine, load_settings(env={}, plan_min_items=1), DraftsLibrary(engine), rng=random.Random(1))
    assert q.count_by_state(engine) == {s.QUEUED: 1}


# --------------------------------------------------------------------------- the commands


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(db_url: str, alice: str, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    return base | {"PIPELINE_DATABASE_URL": db_url, "PIPELINE_STATE_DIR": str(tmp_path / "state")}


def test_queue_shows_the_evidence_for_items_a_human_must_judge(engine: sa.Engine, env: dict[str, str]) -> None:
    review, plain = in_review_maybe_live(engine), _new(engine, "Queued and fine.")
    code, out, _ = run(env, "queue", "--state", "needs_review")
    assert code == 0
    assert f"item {review} (@alice, needs_review): evidence" in out
    assert "attempt part 0" in out and "timeout" in out and "timeline unreadable" in out
    assert f"pipeline resolve {review} --tweet-id ID" in out
    code, out, _ = run(env, "queue", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows[review]["evidence"]["maybe_live"] is True
    assert rows[review]["evidence"]["attempts"][0]["outcome"] == "unknown"
    assert "evidence" not in rows[plain]
    with pytest.raises(SystemExit) as exited:  # argparse refuses it: exit 2, the valid states listed
        run(env, "queue", "--state", "stuck")
    assert exited.value.code == 2


def test_resolve_and_approve_commands(engine: sa.Engine, env: dict[str, str]) -> None:
    review = in_review_maybe_live(engine)
    code, _, err = run(env, "resolve", str(review), "--requeue")
    assert code == 2 and "may be live" in err and "--checked" in err
    code, _, err = run(env, "resolve", str(review), "--tweet-id", "12ab")
    assert code == 2 and "not a tweet id" in err
    code, _, err = run(env, "resolve", str(review))
    assert code == 2 and "exactly one of" in err
    code, out, _ = run(env, "resolve", str(review), "--tweet-id", "8080", "--reason", "found it")
    assert code == 0 and "8080" in out and q.get_item(engine, review).state == s.POSTED
    code, _, err = run(env, "resolve", str(review), "--tweet-id", "8081")
    assert code == 2 and "already posted" in err
    code, _, err = run(env, "resolve", str(review), "--cancel")
    assert code == 2 and "allowed only from" in err

    waiting = _new(engine, "Waiting for a yes.", approved=False)
    code, _, err = run(env, "approve")
    assert code == 2 and "--all" in err
    code, out, _ = run(env, "approve", str(waiting))
    assert code == 0 and q.get_item(engine, waiting).state == s.QUEUED
    code, _, err = run(env, "approve", str(waiting))
    assert code == 2 and "allowed only from pending_approval" in err


def test_enqueue_by_hand_is_the_approval(engine: sa.Engine, env: dict[str, str]) -> None:
    code, _, err = run(env | {"PIPELINE_REQUIRE_APPROVAL": "true"}, "enqueue", "--account", "alice", "--text", "By hand.")
    assert code == 0, err
    assert q.count_by_state(engine) == {s.QUEUED: 1}
