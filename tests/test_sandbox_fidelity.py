"""The realistic sandbox behaves like x.com as ../shared/reference/x-real-rendering.md describes it: timelines from
GraphQL JSON shaped like x.com's, rendered by the page's script a few rows at a time; post text rendered with
t.co links, emoji images and inline-flex mentions; a Draft.js-like composer; status pages parents first."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.client import SandboxAdmin
from sandbox.server import SandboxServer
from tests.sandbox_http import create_tweet, graphql_get

# The reference's table: what was posted, and innerText of [data-testid=tweetText] on x.com.
RENDERED = [
    ("Only this cat can fix my sleep schedule now😭", "Only this cat can fix my sleep schedule now"),
    ("Read this https://docs.x.com/xchat/introduction today",
     "Read this \nhttps://\ndocs.x.com/xchat/introduc\ntion\n… today"),
    ("Now on grok.com, iOS", "Now on \nhttp://\ngrok.com\n, iOS"),
    ("hi @DawnNeesom, grills", "hi \n@DawnNeesom\n, grills"),
    ("line one\n\nline two & three", "line one\n\nline two & three"),
]  # fmt: skip


def post(sandbox: SandboxAdmin, state: dict[str, Any], text: str, reply_to: str | None = None) -> str:
    status, _, raw = create_tweet(sandbox.url, state, text, reply_to)
    assert status == 200, raw
    return json.loads(raw)["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]


@pytest.fixture
def alice(sandbox: SandboxAdmin) -> dict[str, Any]:
    return sandbox.create_account("alice")


@pytest.fixture
def page(chromium: Any, alice: dict[str, Any]) -> Iterator[Any]:
    context = chromium.new_context(storage_state=alice)
    context.set_default_timeout(8000)
    pg = context.new_page()
    yield pg
    context.close()


def user_tweets(
    sandbox: SandboxAdmin, state: dict[str, Any], name: str = "UserTweets", **variables: Any
) -> Any:
    from sandbox.tweet_json import user_id

    return graphql_get(sandbox.url, state, name, {"userId": user_id("alice"), "count": 20, **variables})


def entries_of(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    instructions = body["data"]["user"]["result"]["timeline"]["timeline"]["instructions"]
    adds = [e for i in instructions if i["type"] == "TimelineAddEntries" for e in i["entries"]]
    pins = [i["entry"] for i in instructions if i["type"] == "TimelinePinEntry"]
    return adds, (pins[0] if pins else None)


def test_timeline_json_is_shaped_like_x(sandbox: SandboxAdmin, alice: dict[str, Any]) -> None:
    ids = [post(sandbox, alice, text) for text, _ in RENDERED]
    body = user_tweets(sandbox, alice)
    entries, pin = entries_of(body)
    assert pin is not None and pin["entryId"] == f"tweet-{ids[0]}"
    assert pin["content"]["itemContent"]["socialContext"]["contextType"] == "Pin"
    items = [e for e in entries if e["entryId"].startswith("tweet-")]
    assert [e["entryId"] for e in items] == [f"tweet-{i}" for i in reversed(ids)]
    cursors = {e["content"]["cursorType"] for e in entries if e["entryId"].startswith("cursor-")}
    assert cursors == {"Top", "Bottom"}
    by_id = {e["content"]["itemContent"]["tweet_results"]["result"]["rest_id"]:
             e["content"]["itemContent"]["tweet_results"]["result"] for e in items}  # fmt: skip
    url_post = by_id[ids[1]]
    assert url_post["__typename"] == "Tweet"
    assert url_post["core"]["user_results"]["result"]["core"]["screen_name"] == "alice"
    legacy = url_post["legacy"]
    (link,) = legacy["entities"]["urls"]
    assert link["expanded_url"] == "https://docs.x.com/xchat/introduction"
    assert link["display_url"] == "docs.x.com/xchat/introduc…"
    assert legacy["full_text"] == f"Read this {link['url']} today" and link["url"].startswith("https://t.co/")
    assert legacy["full_text"][slice(*link["indices"])] == link["url"]
    assert legacy["display_text_range"] == [0, len(legacy["full_text"])]
    assert by_id[ids[2]]["legacy"]["entities"]["urls"][0]["expanded_url"] == "http://grok.com"
    assert by_id[ids[3]]["legacy"]["entities"]["user_mentions"][0]["screen_name"] == "DawnNeesom"
    assert by_id[ids[4]]["legacy"]["full_text"] == "line one\n\nline two &amp; three"
    created = by_id[ids[0]]["legacy"]["created_at"]
    assert re.fullmatch(r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} \+0000 \d{4}", created), created
    # ground truth keeps exactly what was sent
    assert [t["text"] for t in sandbox.tweets()] == [text for text, _ in RENDERED]


def test_post_text_renders_like_x(page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]) -> None:
    ids = [post(sandbox, alice, text) for text, _ in RENDERED]
    for tweet_id, (text, shown) in zip(ids, RENDERED, strict=True):
        page.goto(f"{sandbox.url}/alice/status/{tweet_id}")
        box = page.locator(f'article:has(a[href="/alice/status/{tweet_id}"]) [data-testid="tweetText"]')
        assert box.inner_text() == shown, text
    page.goto(f"{sandbox.url}/alice/status/{ids[0]}")
    assert page.locator('[data-testid="tweetText"] img').get_attribute("alt") == "😭"
    page.goto(f"{sandbox.url}/alice/status/{ids[1]}")
    hidden = page.locator('[data-testid="tweetText"] a span').first
    assert hidden.evaluate("e => [getComputedStyle(e).position, getComputedStyle(e).opacity]") == [
        "absolute",
        "0",
    ]
    assert page.locator('[data-testid="tweetText"] a').get_attribute("href").startswith("https://t.co/")
    page.goto(f"{sandbox.url}/alice/status/{ids[3]}")
    wrapper = page.locator('[data-testid="tweetText"] a[href="/DawnNeesom"]').locator("xpath=../..")
    assert wrapper.evaluate("e => getComputedStyle(e).display") == "inline-flex"


def test_timeline_is_virtualised_and_pages_on_scroll(
    page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]
) -> None:
    ids = [post(sandbox, alice, f"post number {n}") for n in range(45)]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/UserTweets?" in r.url else None)
    page.goto(f"{sandbox.url}/alice")
    page.wait_for_selector('article[data-testid="tweet"]')
    assert "Pinned" in page.locator('[data-testid="cellInnerDiv"]').first.inner_text()
    seen: set[str] = set()
    most = 0
    for _ in range(60):
        cells = page.locator('[data-testid="cellInnerDiv"]')
        most = max(most, cells.count())
        for href in page.locator('article a[href*="/status/"]').evaluate_all(
            "a => a.map(x => x.getAttribute('href'))"
        ):
            seen.add(href.rsplit("/", 1)[1])
        if seen >= set(ids):
            break
        page.mouse.wheel(0, 700)
        page.wait_for_timeout(60)
    assert seen >= set(ids)
    assert 3 <= most <= 6
    assert len(asked) >= 3 and any("cursor" in u for u in asked)


def test_replies_tab_has_conversation_modules_with_other_accounts(
    page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]
) -> None:
    bob = sandbox.create_account("bob")
    root = post(sandbox, alice, "alice's first post")
    bob_post = post(sandbox, bob, "bob asks a question")
    reply = post(sandbox, alice, "alice answers bob", reply_to=bob_post)
    entries, pin = entries_of(user_tweets(sandbox, alice, "UserTweetsAndReplies"))
    assert pin is not None and pin["entryId"] == f"tweet-{root}"
    module = next(e for e in entries if e["entryId"] == f"profile-conversation-{reply}")
    chain = [i["item"]["itemContent"]["tweet_results"]["result"] for i in module["content"]["items"]]
    assert [r["rest_id"] for r in chain] == [bob_post, reply]
    assert chain[0]["core"]["user_results"]["result"]["core"]["screen_name"] == "bob"
    legacy = chain[1]["legacy"]
    assert legacy["full_text"] == "@bob alice answers bob" and legacy["display_text_range"] == [5, 22]
    assert legacy["entities"]["user_mentions"][0]["indices"] == [0, 4]
    assert [t["text"] for t in sandbox.tweets() if t["id"] == reply] == ["alice answers bob"]
    posts_tab, _ = entries_of(user_tweets(sandbox, alice))
    assert f"tweet-{reply}" not in {e["entryId"] for e in posts_tab}
    page.goto(f"{sandbox.url}/alice/with_replies")
    page.wait_for_selector(f'article a[href="/bob/status/{bob_post}"]')
    reply_text = page.locator(f'article:has(a[href="/alice/status/{reply}"]) [data-testid="tweetText"]')
    assert reply_text.inner_text() == "alice answers bob"
    assert page.locator("article").first.inner_text().startswith("Pinned")


def test_status_page_parents_first_counts_in_group_label_and_deleted_page(
    page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]
) -> None:
    first = post(sandbox, alice, "thread 1/2")
    second = post(sandbox, alice, "thread 2/2", reply_to=first)
    sandbox.set_clock(3 * 86400)  # let engagement grow
    bob = sandbox.create_account("bob")
    answer = post(sandbox, bob, "bob replies below", reply_to=second)
    page.goto(f"{sandbox.url}/alice/status/{second}")
    page.wait_for_selector("article")
    hrefs = page.locator("article").evaluate_all(
        "arts => arts.map(a => a.querySelector('a[href*=\"/status/\"]').getAttribute('href'))"
    )
    assert hrefs == [f"/alice/status/{first}", f"/alice/status/{second}", f"/bob/status/{answer}"]
    truth = next(t for t in sandbox.tweets() if t["id"] == second)
    label = page.locator(f'article:has(a[href="/alice/status/{second}"]) [role="group"]').get_attribute(
        "aria-label"
    )
    assert f"{truth['views']} views" in label and f"{truth['likes']} like" in label
    bookmark = page.locator(f'article:has(a[href="/alice/status/{second}"]) [data-testid="bookmark"]')
    assert bookmark.get_attribute("aria-label") == "Bookmark"
    sandbox.delete_tweet(second)
    response = page.goto(f"{sandbox.url}/alice/status/{second}")
    assert response is not None and response.status == 200
    assert "doesn’t exist" in page.locator('[data-testid="error-detail"]').inner_text()
    assert next(t for t in sandbox.tweets() if t["id"] == second)["deleted"] is True


def test_composer_takes_typed_text_only(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(f"{sandbox.url}/compose/post")
    box = page.locator('[data-testid="tweetTextarea_0"]')
    box.fill("filled, never typed")
    assert box.inner_text() == ""
    assert page.locator('[data-testid="tweetButton"]').is_disabled()
    box.evaluate("e => { e.textContent = 'written by a script' }")
    page.wait_for_function("() => document.querySelector('[data-testid=tweetTextarea_0]').textContent === ''")
    box.click()
    page.keyboard.type("Big news 🎉 at grok.com, @bob")
    page.keyboard.press("Enter")
    page.keyboard.type("line two & more")
    with page.expect_request(lambda r: r.url.endswith("/CreateTweet")) as sent:
        page.locator('[data-testid="tweetButton"]').click()
    text = "Big news 🎉 at grok.com, @bob\nline two & more"
    assert sent.value.post_data_json["variables"]["tweet_text"] == text
    page.wait_for_selector('[data-testid="toast"]')
    assert [t["text"] for t in sandbox.tweets()] == [text]


def test_wrapped_and_lagging_posts_on_timelines(sandbox: SandboxAdmin, alice: dict[str, Any]) -> None:
    sandbox.set_faults({"wrapped_result": {"p": 1}, "timeline_lag": {"p": 1, "seconds": 120}})
    lagging = post_wrapped(sandbox, alice, "wrapped and late")
    entries, pin = entries_of(user_tweets(sandbox, alice))
    assert pin is None and not [e for e in entries if e["entryId"].startswith("tweet-")]
    sandbox.set_clock(121)
    entries, pin = entries_of(user_tweets(sandbox, alice))
    result = next(e for e in entries if e["entryId"] == f"tweet-{lagging}")["content"]["itemContent"]
    assert result["tweet_results"]["result"]["__typename"] == "TweetWithVisibilityResults"
    assert result["tweet_results"]["result"]["tweet"]["rest_id"] == lagging


def post_wrapped(sandbox: SandboxAdmin, state: dict[str, Any], text: str) -> str:
    status, _, raw = create_tweet(sandbox.url, state, text)
    assert status == 200
    result = json.loads(raw)["data"]["create_tweet"]["tweet_results"]["result"]
    assert result["__typename"] == "TweetWithVisibilityResults"
    return result["tweet"]["rest_id"]


def test_friendly_mode_keeps_server_rendered_pages(chromium: Any) -> None:
    with SandboxServer(realism="friendly") as server:
        admin = SandboxAdmin(server.url)
        state = admin.create_account("alice")
        for n in range(8):
            assert create_tweet(server.url, state, f"plain post {n} https://example.com")[0] == 200
        context = chromium.new_context(storage_state=state)
        pg = context.new_page()
        pg.goto(server.url + "/alice")
        assert pg.locator("article").count() == 8
        assert (
            pg.locator('[data-testid="tweetText"]').first.inner_text() == "plain post 7 https://example.com"
        )
        context.close()


def test_long_post_carries_note_tweet_and_renders_whole(
    page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]
) -> None:
    sandbox.set_rules(max_weighted_length=25000)
    text = "A long post & more. " * 20 + "The end at example.com/x, bye"
    tweet_id = post(sandbox, alice, text)
    (entry,) = [e for e in entries_of(user_tweets(sandbox, alice))[0] if e["entryId"] == f"tweet-{tweet_id}"]
    result = entry["content"]["itemContent"]["tweet_results"]["result"]
    legacy, note = result["legacy"], result["note_tweet"]["note_tweet_results"]["result"]
    assert legacy["display_text_range"] == [0, 275] and legacy["entities"]["urls"] == []
    assert legacy["full_text"].startswith("A long post &amp; more.")
    (link,) = note["entity_set"]["urls"]
    assert (
        note["text"] == text.replace("example.com/x", link["url"])
        and link["expanded_url"] == "http://example.com/x"
    )
    page.goto(f"{sandbox.url}/alice/status/{tweet_id}")
    shown = page.locator('[data-testid="tweetText"]').inner_text()
    assert shown.startswith("A long post & more. A long post") and shown.endswith(
        "\nhttp://\nexample.com/x\n, bye"
    )


def test_posts_the_viewer_liked_show_unlike(page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]) -> None:
    from sandbox.tweet_json import viewer_did

    ids = [post(sandbox, alice, f"likeable {n}") for n in range(12)]
    sandbox.set_clock(30 * 86400)
    truth = {t["id"]: t for t in sandbox.tweets()}
    liked = [i for i in ids if viewer_did(i, "like") and truth[i]["likes"] > 0]
    plain = [i for i in ids if not viewer_did(i, "like") and truth[i]["likes"] > 0]
    assert liked and plain
    for tweet_id, testid in ((liked[0], "unlike"), (plain[0], "like")):
        page.goto(f"{sandbox.url}/alice/status/{tweet_id}")
        art = page.locator(f'article:has(a[href="/alice/status/{tweet_id}"])')
        button = art.locator(f'[data-testid="{testid}"]')
        assert button.get_attribute("aria-label").startswith(f"{truth[tweet_id]['likes']} Like")
        assert f"{truth[tweet_id]['likes']} like" in art.locator('[role="group"]').get_attribute("aria-label")


def test_pages_are_shells_until_the_data_arrives(
    page: Any, sandbox: SandboxAdmin, alice: dict[str, Any]
) -> None:
    tweet_id = post(sandbox, alice, "only in the JSON")
    for path in ("/alice", f"/alice/status/{tweet_id}"):
        html = page.context.request.get(sandbox.url + path).text()
        assert "Loading…" in html and "only in the JSON" not in html and 'data-testid="tweet"' not in html
    sandbox.set_rules(read_latency_s=1.5)
    page.goto(sandbox.url + "/alice", wait_until="load")
    assert page.locator("article").count() == 0  # the timeline request is still on its way
    page.wait_for_selector('article[data-testid="tweet"]')
    response = page.goto(sandbox.url + "/nobody_here")
    assert response is not None and response.status == 200  # as x.com's app: the page says so, no 404
    assert "doesn’t exist" in page.locator('[data-testid="error-detail"]').inner_text()


@pytest.mark.parametrize(
    "text",
    [
        "a & b https://example.com/path?q=1 <c>",
        "@bob, see www.example.org & x.com/a",
        "😭 #tag https://t.co.example.com",
    ],
)
def test_entity_indices_count_code_points_of_the_unescaped_text(text: str) -> None:
    import html

    from sandbox.tweet_json import text_entities

    full_text, entities, text_range = text_entities("1", text)
    plain = html.unescape(full_text)
    assert full_text == html.escape(plain, quote=False) and text_range == [0, len(plain)]
    for url in entities["urls"]:
        assert plain[slice(*url["indices"])] == url["url"]
        written = (
            url["expanded_url"]
            if url["expanded_url"] in text
            else url["expanded_url"].removeprefix("http://")
        )
        assert written in text  # a bare domain is served with http:// added
    for mention in entities["user_mentions"]:
        assert plain[slice(*mention["indices"])] == "@" + mention["screen_name"]
    for tag in entities["hashtags"]:
        assert plain[slice(*tag["indices"])] == "#" + tag["text"]
    assert len(entities["urls"]) == text.count("example") + text.count("x.com/")
