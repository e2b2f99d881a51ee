"""The platform-data parser: posts rebuilt from x.com-shaped UserTweetsAndReplies JSON give back the posted text."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.xtimeline import (
    TimelinePost,
    find_post,
    loose_key,
    match_key,
    parse_created_at,
    parse_timeline,
    unwrap,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "x_user_tweets_and_replies.json").read_text())


def test_every_post_of_the_account_is_rebuilt_to_the_text_it_was_posted_with() -> None:
    page = parse_timeline(FIXTURE["response"], FIXTURE["handle"])
    got = {p.tweet_id: p.text for p in page.posts}
    assert set(got) == set(FIXTURE["expected"])  # the other account's parent post is not ours
    for tweet_id, posted in FIXTURE["expected"].items():
        assert match_key(got[tweet_id]) == match_key(posted), tweet_id


@pytest.mark.parametrize("tweet_id,exact", [
    ("1860000000000000006", "line one\n\nline two & three <tags>"),  # entities unescaped, line breaks kept
    ("1860000000000000003", "Read this https://docs.x.com/xchat/introduction today"),  # t.co -> expanded_url
    ("1860000000000000008", "Chart of the week"),  # trailing media link dropped
    ("1860000000000000011", "They work & they expire, see https://example.com/leases/"),  # reply prefix cut
])
def test_text_rebuild_details(tweet_id: str, exact: str) -> None:
    posts = {p.tweet_id: p for p in parse_timeline(FIXTURE["response"], "alice").posts}
    assert posts[tweet_id].text == exact


def test_reply_thread_fields_cursor_and_time() -> None:
    page = parse_timeline(FIXTURE["response"], "@ALICE")
    posts = {p.tweet_id: p for p in page.posts}
    assert posts["1860000000000000011"].in_reply_to == "1860000000000000010"
    assert posts["1860000000000000002"].created_at == datetime(2026, 12, 1, 1, 10, tzinfo=UTC)
    assert page.bottom_cursor == "DAABCgABBOTTOMCURSOR"
    assert page.entries == 12


def test_long_post_comes_from_note_tweet_not_the_truncated_full_text() -> None:
    posts = {p.tweet_id: p for p in parse_timeline(FIXTURE["response"], "alice").posts}
    assert posts["1860000000000000009"].text.endswith("Details at https://example.org/details end.")
    assert "\u2026" not in posts["1860000000000000009"].text


def test_visibility_wrapper_is_opened_and_other_accounts_are_dropped() -> None:
    wrapped = {"__typename": "TweetWithVisibilityResults", "tweet": {"rest_id": "7", "legacy": {}}}
    assert unwrap(wrapped) == {"rest_id": "7", "legacy": {}}
    assert parse_timeline(FIXTURE["response"], "otheracct").posts[0].tweet_id == "1860000000000000010"
    assert parse_timeline(FIXTURE["response"], "nobody").posts == []


def test_a_response_without_entries_reads_as_nothing_and_tweets_without_id_are_skipped() -> None:
    assert parse_timeline({"data": {"user": {"result": {"timeline": {"timeline": {"instructions": []}}}}}},
                          "alice").entries == 0
    assert parse_timeline({"errors": [{"message": "boom"}]}, "alice").posts == []
    broken = copy.deepcopy(FIXTURE["response"])
    entries = broken["data"]["user"]["result"]["timeline"]["timeline"]["instructions"][2]["entries"]
    del entries[0]["content"]["itemContent"]["tweet_results"]["result"]["rest_id"]
    assert "1860000000000000002" not in {p.tweet_id for p in parse_timeline(broken, "alice").posts}


def test_match_key_treats_a_bare_domain_like_its_stored_http_form_but_not_other_text() -> None:
    assert match_key("Now on grok.com, iOS") == match_key("Now on http://grok.com, iOS")
    assert match_key("see https://example.com/leases") == match_key("see https://example.com/leases/")
    assert match_key("Line one\n\nline two") == match_key("line one line two")
    assert match_key("Now on grok.com, iOS") != match_key("Now on grok.org, iOS")
    assert match_key("ship it") != match_key("ship it!")


@pytest.mark.parametrize("posted,rendered", [
    ("Only this cat can fix my sleep schedule now\U0001F62D", "Only this cat can fix my sleep schedule now"),
    ("Read this https://docs.x.com/xchat/introduction today",
     "Read this https://docs.x.com/xchat/introduction\u2026 today"),
    ("Now on grok.com, iOS", "Now on http://grok.com , iOS"),
    ("Thanks @DawnNeesom, great talk", "Thanks @DawnNeesom\n, great talk"),
    ("line one\n\nline two & three", "line one\n\nline two & three"),
])
def test_loose_key_survives_what_x_does_to_rendered_text(posted: str, rendered: str) -> None:
    assert loose_key(posted) == loose_key(rendered)


def test_loose_key_still_tells_different_words_apart() -> None:
    assert loose_key("deploy on friday") != loose_key("deploy on monday")


def test_created_at_formats() -> None:
    assert parse_created_at("Wed Oct 10 20:19:24 +0000 2018") == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    assert parse_created_at("2026-12-01T01:10:00.000Z") == datetime(2026, 12, 1, 1, 10, tzinfo=UTC)
    assert parse_created_at("yesterday") is None


def test_the_pinned_post_never_counts_as_the_oldest_post_read() -> None:
    page = parse_timeline(FIXTURE["response"], "alice")
    pinned = [p for p in page.posts if p.pinned]
    assert [p.tweet_id for p in pinned] == ["1850000000000000001"]
    assert pinned[0].created_at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert page.oldest_entry_at == datetime(2026, 12, 1, 1, 10, tzinfo=UTC)  # not the pinned post's November date
    assert page.tweet_entries == 10  # nine items, one conversation module; cursors hold no posts


# ---------------------------------------------------------------------------------------------- find_post

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def _post(tweet_id: str, text: str, minutes: float | None, exact: bool = True) -> TimelinePost:
    from datetime import timedelta

    return TimelinePost(tweet_id, text, None if minutes is None else T0 + timedelta(minutes=minutes), exact=exact)


def test_find_post_takes_the_oldest_unrecorded_copy_after_the_first_attempt() -> None:
    posts = [_post("30", "Now on http://grok.com, iOS", 3), _post("20", "Now on http://grok.com, iOS", 2),
             _post("10", "Now on http://grok.com, iOS", -60)]  # an hour before: an older post of the same text
    assert find_post(posts, "Now on grok.com, iOS", set(), not_before=T0).tweet_id == "20"
    assert find_post(posts, "Now on grok.com, iOS", {"20"}, not_before=T0).tweet_id == "30"
    assert find_post(posts, "Now on grok.org, iOS", set(), not_before=T0) is None


def test_find_post_on_dom_text_needs_the_loose_key_and_a_time() -> None:
    rendered = "Thanks @DawnNeesom\n, notes at https://docs.x.com/xchat/introduc… today"
    posted = "Thanks @DawnNeesom, notes at https://docs.x.com/xchat/introduction today😭"
    assert find_post([_post("5", rendered, 1, exact=False)], posted, set(), T0).tweet_id == "5"
    assert find_post([_post("5", rendered, None, exact=False)], posted, set(), T0) is None  # no time, no match
    assert find_post([_post("5", rendered, 1, exact=True)], posted, set(), T0) is None  # exact data must match exactly


def _sandbox_post_with_media(media: list[tuple[str, bytes, str | None]], text: str) -> dict:
    """A post stored by the sandbox with media uploaded through its upload flow, as timeline JSON."""
    from sandbox.state import Store
    from sandbox.tweet_json import timeline_body

    store = Store()
    store.issue_session("alice")
    ids = []
    for mime, data, alt in media:
        _, init = store.uploads.command("alice", {"command": "INIT", "total_bytes": str(len(data)),
                                                  "media_type": mime}, b"")
        media_id = init["media_id_string"]
        store.uploads.command("alice", {"command": "APPEND", "media_id": media_id, "segment_index": "0"}, data)
        store.uploads.command("alice", {"command": "FINALIZE", "media_id": media_id}, b"")
        if alt is not None:
            store.uploads.set_alt("alice", media_id, alt)
        ids.append(media_id)
    result = store.post("alice", text, None, {"media_entities": [{"media_id": i} for i in ids]})
    assert result.tweet is not None, result.body
    return timeline_body([[store.tweet(result.tweet["id"])]], None, True, 0, 0)


def test_media_are_read_from_extended_entities_and_their_link_is_not_text() -> None:
    body = _sandbox_post_with_media([("image/png", b"one", "A & B <chart>"), ("image/jpeg", b"two", None)],
                                    "Two photos & a link https://example.com/x")
    (post,) = parse_timeline(body, "alice").posts
    assert post.text == "Two photos & a link https://example.com/x"
    assert post.media == (("photo", "A & B <chart>"), ("photo", ""))


def test_find_post_matches_media_by_count_type_and_alt_text_where_the_platform_data_shows_them() -> None:
    from pipeline.media import MediaRef

    def ref(kind: str, alt: str | None) -> MediaRef:
        return MediaRef(sha256="0" * 64, kind=kind, mime="image/png", bytes=1, alt=alt)

    ours = [ref("image", "A cat"), ref("image", None)]
    posts = [TimelinePost("10", "Same words", T0, media=(("photo", "A dog"), ("photo", ""))),
             TimelinePost("11", "Same words", T0, media=(("photo", "A cat"),)),
             TimelinePost("12", "Same words", T0, media=()),
             TimelinePost("13", "Same words", T0, media=(("video", "A cat"), ("photo", ""))),
             TimelinePost("14", "Same words", T0, media=(("photo", "A cat"), ("photo", "")))]
    assert find_post(posts, "Same words", set(), T0, media=ours).tweet_id == "14"
    assert find_post(posts, "Same words", set(), T0).tweet_id == "12"  # a text-only part takes a text-only post
    assert find_post(posts, "Same words", set(), T0, media=[ref("gif", "A cat")]) is None
    dom = [TimelinePost("20", "Same words", T0, exact=False, media=None)]  # the DOM does not say: text decides
    assert find_post(dom, "Same words", set(), T0, media=ours).tweet_id == "20"
