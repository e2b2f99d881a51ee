"""What the user wrote goes live, and reconciliation finds it there: every row of the reference's table
(shared/reference/x-real-rendering.md section 1) as a post that X stored but whose answer never arrived.

Each must end `posted` exactly once, with the id X gave it, judged by the sandbox's ground truth. The same for
a thread and a reply.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from pipeline import queue
from tests.conftest import once_on_postgres
from tests.fixtures_world import World

ROWS = {
    "emoji": "Only this cat can fix my sleep schedule now😭",
    "url": "Read this https://docs.x.com/xchat/introduction today",
    "bare_domain": "Now on grok.com, iOS",
    "mention_before_comma": "Big thanks to @DawnNeesom, who grills the best questions",
    "line_breaks_and_ampersand": "Big news!\n\nWe shipped v2:\n- faster\nline two & three",
}
STALLED_AFTER_STORE = {"post_commit_stall": {"p": 1.0, "seconds": 30}}
MAX_RUNS = 8


def post_until_settled(world: World, item_id: int) -> queue.Item:
    """Posting runs until the item is decided (a thread may need one run per reconciled part)."""
    for _ in range(MAX_RUNS):
        world.post()
        current = queue.get_item(world.engine, item_id)
        if current.state in ("posted", "failed", "needs_review"):
            return current
        time.sleep(world.settings.reconcile_settle_s)  # absence needs two checks a settle window apart
        world.make_due()
    return queue.get_item(world.engine, item_id)


def stored(world: World) -> dict[str, dict]:
    return {t["id"]: t for t in world.truth()}


@pytest.mark.parametrize("row", sorted(ROWS))
def test_each_reference_row_stalled_after_store_ends_posted_once_with_its_id(world: World, row: str) -> None:
    world.sandbox.set_rules(duplicate_window_hours=0)  # X's duplicate rule is no guard: measure ours
    world.sandbox.set_faults(STALLED_AFTER_STORE)
    item_id = world.enqueue("alice", ROWS[row])
    final = post_until_settled(world, item_id)
    truth = stored(world)
    assert len(truth) == 1, f"{row}: X holds {len(truth)} posts"
    (tweet_id, tweet), = truth.items()
    assert tweet["text"] == ROWS[row]  # what was written went live, line breaks and all
    assert final.state == "posted" and final.tweet_ids == [tweet_id]


@once_on_postgres
def test_a_thread_of_the_reference_rows_stalled_after_store_is_posted_once_in_order(world: World) -> None:
    world.sandbox.set_rules(duplicate_window_hours=0)
    world.sandbox.set_faults(STALLED_AFTER_STORE)
    parts = [ROWS["line_breaks_and_ampersand"], ROWS["url"], ROWS["emoji"]]
    item_id = world.enqueue("alice", *parts)
    final = post_until_settled(world, item_id)
    truth = stored(world)
    assert final.state == "posted" and len(truth) == 3
    assert [truth[i]["text"] for i in final.tweet_ids] == parts
    assert [truth[i]["in_reply_to"] for i in final.tweet_ids] == [None, final.tweet_ids[0], final.tweet_ids[1]]


def test_a_reply_with_a_bare_domain_and_a_mention_stalled_after_store_is_posted_once(world: World) -> None:
    world.sandbox.set_rules(duplicate_window_hours=0)
    parent = world.enqueue("alice", "The parent post")
    world.post()
    parent_id = queue.get_item(world.engine, parent).tweet_ids[0]
    world.sandbox.set_faults(STALLED_AFTER_STORE)
    text = "@DawnNeesom, the notes are on grok.com & more 😭"
    item_id = world.enqueue("alice", text, reply_to=parent_id)
    final = post_until_settled(world, item_id)
    replies = [t for t in world.truth() if t["in_reply_to"] == parent_id]
    assert len(replies) == 1 and replies[0]["text"] == text
    assert final.state == "posted" and final.tweet_ids == [replies[0]["id"]]


# ------------------------------------------------------------------------------ answers after the request left

EVERY_ROW = "Thanks @DawnNeesom, notes on grok.com & https://docs.x.com/xchat/introduction 😭\n\nmore soon"
AFTER_REQUEST_LEFT = {
    "html_502_after_store": {"post_5xx_after_store": {"p": 1.0}},
    "load_shed_after_store": {"load_shed": {"p": 1.0, "after_store_p": 1.0}},
    "timeout_29_after_store": {"timeout_29": {"p": 1.0, "after_store_p": 1.0}},
    "load_shed_before_store": {"load_shed": {"p": 1.0, "after_store_p": 0.0, "times": 1}},
    "silent_drop": {"silent_drop": {"p": 1.0, "times": 1}},
    "wrapped_result": {"wrapped_result": {"p": 1.0}},
}


@pytest.mark.parametrize("fault", sorted(AFTER_REQUEST_LEFT))
def test_unclear_answers_end_posted_once_with_the_right_id(world: World, fault: str) -> None:
    world.sandbox.set_rules(duplicate_window_hours=0)
    world.sandbox.set_faults(AFTER_REQUEST_LEFT[fault])
    item_id = world.enqueue("alice", EVERY_ROW)
    final = post_until_settled(world, item_id)
    truth = stored(world)
    assert len(truth) == 1, f"{fault}: X holds {len(truth)} posts"
    assert final.state == "posted" and final.tweet_ids == list(truth)
    assert truth[final.tweet_ids[0]]["text"] == EVERY_ROW


def test_a_post_that_shows_on_the_timeline_late_is_not_posted_twice(world: World) -> None:
    from tests.fixtures_world import make_settings

    # The settle window between the two absence checks must outlast the timeline's lag.
    world.settings = make_settings(world.settings.database_url, world.sandbox.url, world.state_dir,
                                   reconcile_settle_s=4)
    world.sandbox.set_rules(duplicate_window_hours=0)
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30}, "timeline_lag": {"p": 1.0, "seconds": 2}})
    item_id = world.enqueue("alice", EVERY_ROW)
    final = post_until_settled(world, item_id)
    truth = stored(world)
    assert len(truth) == 1 and final.state == "posted" and final.tweet_ids == list(truth)


def _post_for(world: World, item_id: int, seconds: float) -> queue.Item:
    """Posting runs a second apart for a while (real time: the visibility horizon is on the database clock)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        world.post()
        current = queue.get_item(world.engine, item_id)
        if current.state in ("posted", "failed", "needs_review"):
            return current
        time.sleep(1.0)
        world.make_due()
    return queue.get_item(world.engine, item_id)


@once_on_postgres
def test_a_post_that_shows_on_the_timeline_later_than_the_settle_window_is_not_posted_twice(world: World) -> None:
    from tests.fixtures_world import make_settings

    # The settle window (0.5 s) is far shorter than the lag: only the visibility horizon keeps it from re-posting.
    world.settings = make_settings(world.settings.database_url, world.sandbox.url, world.state_dir,
                                   reconcile_visibility_s=15)
    world.sandbox.set_rules(duplicate_window_hours=0)
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30, "times": 1},
                              "timeline_lag": {"p": 1.0, "seconds": 8, "times": 1}})
    item_id = world.enqueue("alice", EVERY_ROW)
    final = _post_for(world, item_id, 40)
    truth = stored(world)
    assert len(truth) == 1, f"X holds {len(truth)} posts"
    assert final.state == "posted" and final.tweet_ids == list(truth)


@once_on_postgres
def test_a_duplicate_answer_while_the_earlier_attempt_may_still_show_is_not_a_failure(world: World) -> None:
    from pipeline import resolve
    from tests.fixtures_world import make_settings

    world.settings = make_settings(world.settings.database_url, world.sandbox.url, world.state_dir,
                                   reconcile_visibility_s=20)
    world.sandbox.set_rules(duplicate_window_hours=24)  # X answers 187 to the second try of the same text
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30, "times": 1},
                              "timeline_lag": {"p": 1.0, "seconds": 10, "times": 1}})
    item_id = world.enqueue("alice", EVERY_ROW)
    world.post()
    assert queue.get_item(world.engine, item_id).state == "unknown"
    resolve.requeue(world.engine, item_id, reason="operator could not see it yet", checked=True)
    world.post()  # X says duplicate while the first post is still hidden: wait for it, never fail the item
    assert queue.get_item(world.engine, item_id).state == "unknown"
    final = _post_for(world, item_id, 40)
    truth = stored(world)
    assert len(truth) == 1 and final.state == "posted" and final.tweet_ids == list(truth)


def test_a_bare_403_pauses_the_account_without_failing_the_item(world: World) -> None:
    from pipeline.breaker import Breaker

    world.sandbox.set_faults({"bare_403": {"p": 1.0}})
    item_id = world.enqueue("alice", "Held while the session is refused")
    world.post()
    held = queue.get_item(world.engine, item_id)
    assert held.state == "queued" and held.failures == 0 and world.truth() == []
    assert Breaker(world.engine).status("alice")[0]["state"] == "forced_open"
    assert any(key.startswith("breaker-forced:alice:auth:") for key, _ in world.alerts.sent)  # one per episode


def test_one_items_rejection_never_fails_the_other_items_of_the_run(world: World) -> None:
    page = world.browser.page("alice", world.state_dir / "sessions" / "alice.json")

    def refuse_one(route: Any) -> None:
        if "Refuse this one" in (route.request.post_data or ""):
            route.fulfill(status=200, content_type="application/json",
                          body='{"errors":[{"message":"Tweet needs to be a bit shorter. (186)","code":186}]}')
        else:
            route.continue_()

    page.route("**/CreateTweet", refuse_one)
    try:
        refused = world.enqueue("alice", "Refuse this one")
        kept = world.enqueue("alice", "Keep this one & post it")
        world.post()
    finally:
        page.unroute("**/CreateTweet")
    assert queue.get_item(world.engine, refused).state == "failed"
    posted = queue.get_item(world.engine, kept)
    assert posted.state == "posted" and [t["text"] for t in world.truth()] == ["Keep this one & post it"]


@once_on_postgres
def test_an_unknown_post_behind_a_page_of_newer_posts_is_found_by_paging_back(world: World) -> None:
    from tests.fixtures_world import make_settings

    # A long settle window: the post must be found, never re-queued as "absent" from a first page that stops short.
    world.settings = make_settings(world.settings.database_url, world.sandbox.url, world.state_dir,
                                   reconcile_settle_s=300)
    world.sandbox.set_rules(duplicate_window_hours=0)
    lag_s = 40.0  # long enough that the 24 newer posts go out while it hides, even on a loaded machine
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30, "times": 1},
                              "timeline_lag": {"p": 1.0, "seconds": lag_s, "times": 1}})
    stalled_at = time.monotonic()
    target = world.enqueue("alice", EVERY_ROW)
    world.post()  # stalls after X stored it; the account stops for this run and the post is not visible yet
    assert queue.get_item(world.engine, target).state == "unknown"
    newer = [world.enqueue("alice", f"Newer post number {n} & counting") for n in range(24)]
    world.post()  # the newer posts go out; the hidden one stays unknown (absent once, the settle window is long)
    assert queue.get_item(world.engine, target).state == "unknown"
    assert all(queue.get_item(world.engine, i).state == "posted" for i in newer)
    time.sleep(max(0.0, stalled_at + lag_s + 1 - time.monotonic()))  # now it shows, behind 24 newer posts
    final = post_until_settled(world, target)
    truth = stored(world)
    assert final.state == "posted" and len(truth) == 25
    assert truth[final.tweet_ids[0]]["text"] == EVERY_ROW


# ------------------------------------------------------------------------------------------------ status pages


def test_engagement_of_a_reply_comes_from_its_own_article_and_a_deleted_post_from_its_page(world: World) -> None:
    from pipeline.failures import PostRejected
    from pipeline.xweb import XWebClient

    page = world.browser.page("alice", world.state_dir / "sessions" / "alice.json")
    client = XWebClient(page, world.settings.x_base_url, "alice")
    parent = client.post("A parent post with its own counts")
    reply = client.post("A reply whose counts we want", in_reply_to=parent)
    before = {t["id"]: t for t in world.sandbox.tweets()}
    counts = client.engagement(reply)  # the parent's article comes first on this page
    after = {t["id"]: t for t in world.sandbox.tweets()}  # counts grow with age: the page's lie between
    assert before[parent]["replies"] > after[reply]["replies"]  # reading the parent's article would show
    for name in ("likes", "retweets", "replies", "bookmarks", "views"):
        assert before[reply][name] <= getattr(counts, name) <= after[reply][name], name
    world.sandbox.delete_tweet(reply)
    with pytest.raises(PostRejected) as caught:
        client.engagement(reply)
    assert caught.value.code == 144


def test_a_post_made_from_mangled_text_is_recorded_with_its_id_never_counted_a_success(world: World) -> None:
    import json

    page = world.browser.page("alice", world.state_dir / "sessions" / "alice.json")

    def fold_line_breaks(route: Any) -> None:  # what the predecessor's composer did to line breaks
        body = json.loads(route.request.post_data or "{}")
        body["variables"]["tweet_text"] = body["variables"]["tweet_text"].replace("\n", " ")
        route.continue_(post_data=json.dumps(body))

    page.route("**/CreateTweet", fold_line_breaks)
    try:
        item_id = world.enqueue("alice", ROWS["line_breaks_and_ampersand"])
        report = world.post()
    finally:
        page.unroute("**/CreateTweet")
    truth = world.truth()
    final = queue.get_item(world.engine, item_id)
    assert len(truth) == 1 and final.tweet_ids == [truth[0]["id"]]  # the live post is known: never posted again
    assert report.text_mismatches == 1 and report.failed_by_class == {"text_mismatch": 1}
    assert any(key.startswith("text_mismatch:") for key, _ in world.alerts.sent)
