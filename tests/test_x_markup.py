"""The X client on pages shaped like x.com's (fixtures written by us from public captures), in real Chromium.

Each page is served to the client at a fake x.com origin through Playwright routing, so the client's own
navigation, waiting, typing and reading run unchanged: a DOM timeline rebuilt to the posted text, GraphQL
timelines paged back until old enough, a Draft.js-like composer, and status pages for engagement.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.failures import OutcomeUnknown, PostRejected, TextMismatch
from pipeline.xtimeline import loose_key, match_key
from pipeline.xweb import TimelineUnreadable, XWebClient

FIXTURES = Path(__file__).parent / "fixtures"
ORIGIN = "https://x.test"
GRAPHQL = json.loads((FIXTURES / "x_user_tweets_and_replies.json").read_text())

# A page shell that, like x.com's, renders nothing itself: its script loads the timeline JSON, and loads the
# next page (with the bottom cursor) when scrolled to the end.
SHELL = """<!DOCTYPE html><html><body><div data-testid="primaryColumn"><div id="list">Loading…</div>
<div style="height:4000px"></div></div><script>
let cursor = null, busy = false;
async function load() {
  if (busy) return; busy = true;
  const vars = encodeURIComponent(JSON.stringify({userId: "1", count: 20, cursor}));
  const r = await fetch('/i/api/graphql/Q1/UserTweetsAndReplies?variables=' + vars);
  const body = await r.json();
  const adds = body.data.user.result.timeline.timeline.instructions.filter(i => i.entries);
  const bottom = adds.flatMap(i => i.entries).find(e => (e.content || {}).cursorType === 'Bottom');
  cursor = bottom ? bottom.content.value : null;
  document.getElementById('list').textContent = '';
  busy = false;
}
load();
window.addEventListener('scroll', () => { if (cursor) load(); });
</script></body></html>"""

# A composer that, like Draft.js, keeps its own model from input events and posts that model.
COMPOSER = """<!DOCTYPE html><html><body><div data-testid="primaryColumn">
<div data-testid="tweetTextarea_0" contenteditable="true" role="textbox" style="min-height:40px"></div>
<button data-testid="tweetButtonInline">Post</button></div><script>
const box = document.querySelector('[data-testid="tweetTextarea_0"]');
const blocks = [''];
// Like x.com, a word starting with @ opens a suggestion list; Enter while it is open picks the suggestion.
const list = () => document.querySelector('[role="listbox"]');
function suggest() {
  const open = /@\\w+$/.test(blocks[blocks.length - 1]);
  if (open && !list()) document.body.insertAdjacentHTML('beforeend', '<div role="listbox"><div role="option">@DawnNeesom</div></div>');
  if (!open && list()) list().remove();
}
box.addEventListener('keydown', (e) => { if (e.key === 'Escape' && list()) list().remove(); });
box.addEventListener('beforeinput', (e) => {
  e.preventDefault();
  if (e.inputType === 'insertText') { blocks[blocks.length - 1] += e.data; suggest(); }
  if (e.inputType === 'insertParagraph' || e.inputType === 'insertLineBreak') {
    if (list()) { blocks[blocks.length - 1] = blocks[blocks.length - 1].replace(/@\\w+$/, '@DawnNeesom_Real '); list().remove(); }
    else blocks.push('');
  }
  box.innerText = blocks.join('\\n');
});
document.querySelector('button').addEventListener('click', () => {
  fetch('/i/api/graphql/C1/CreateTweet', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({variables: {tweet_text: blocks.join(JOINER)}, queryId: 'C1'})});
});
</script></body></html>"""


@pytest.fixture
def xpage(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()


def serve(page: Any, routes: dict[str, Any]) -> list[dict[str, Any]]:
    """Answer the fake origin from `routes` (path prefix -> (status, type, body) or a callable); logs requests."""
    seen: list[dict[str, Any]] = []

    def handle(route: Any) -> None:
        request = route.request
        path = request.url[len(ORIGIN):]
        seen.append({"path": path, "post": request.post_data})
        for prefix, answer in routes.items():
            if path.startswith(prefix):
                status, kind, body = answer(request) if callable(answer) else answer
                route.fulfill(status=status, content_type=kind, body=body)
                return
        route.fulfill(status=404, content_type="text/html", body="<html></html>")

    page.route(f"{ORIGIN}/**", handle)
    return seen


def client(page: Any, reconcile_s: float = 8.0) -> XWebClient:
    return XWebClient(page, ORIGIN, "alice", nav_timeout_s=8, post_timeout_s=5, reconcile_timeout_s=reconcile_s)


# ------------------------------------------------------------------------------------------ timeline, DOM


def test_dom_fallback_rebuilds_each_posts_text_from_x_markup(xpage: Any) -> None:
    html = (FIXTURES / "x_profile_with_replies.html").read_text()
    expected = json.loads(html.split('id="EXPECTED">')[1].split("</script>")[0])
    serve(xpage, {"/alice/with_replies": (200, "text/html", html)})
    read = client(xpage).read_timeline(not_before=datetime(2026, 12, 1, 1, 5, tzinfo=UTC))
    got = {p.tweet_id: p for p in read.posts}
    assert set(got) == set(expected)  # otheracct's parent post is not read as ours
    assert not read.exact and read.complete
    for tweet_id, posted in expected.items():
        assert loose_key(got[tweet_id].text) == loose_key(posted), (tweet_id, got[tweet_id].text)
    assert got["1860000000000000002"].text.endswith("now😭")  # emoji from img[alt]
    assert "line one\n\nline two & three" in got["1860000000000000006"].text  # line breaks and & kept
    assert "@DawnNeesom, great" in got["1860000000000000005"].text  # no line break from the inline-flex wrapper
    assert got["1850000000000000001"].created_at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def test_a_page_shell_without_posts_is_unreadable_never_empty(xpage: Any) -> None:
    serve(xpage, {"/alice/with_replies": (200, "text/html", "<html><body>Loading…</body></html>")})
    with pytest.raises(TimelineUnreadable):
        client(xpage, reconcile_s=1.5).read_timeline(not_before=datetime(2026, 12, 1, tzinfo=UTC))


# -------------------------------------------------------------------------------------- timeline, GraphQL


def _older_page() -> str:
    """A second, older page: one of alice's posts from November and no bottom cursor (the timeline ends)."""
    body = copy.deepcopy(GRAPHQL["response"])
    instructions = body["data"]["user"]["result"]["timeline"]["timeline"]["instructions"]
    entries = instructions[2]["entries"]
    first = copy.deepcopy(entries[0])
    tweet = first["content"]["itemContent"]["tweet_results"]["result"]
    tweet["rest_id"] = "1840000000000000001"
    tweet["legacy"].update(full_text="An older post from November", created_at="Sun Nov 15 08:00:00 +0000 2026")
    instructions[2]["entries"] = [first]
    del instructions[1]  # the pin comes only on the first page
    return json.dumps(body)


def _graphql_routes() -> dict[str, Any]:
    def timeline(request: Any) -> tuple[int, str, str]:
        paged = "BOTTOMCURSOR" in request.url
        return 200, "application/json", _older_page() if paged else json.dumps(GRAPHQL["response"])

    return {"/alice/with_replies": (200, "text/html", SHELL), "/i/api/graphql/Q1/UserTweetsAndReplies": timeline}


def test_graphql_timeline_gives_back_the_posted_text_exactly(xpage: Any) -> None:
    serve(xpage, _graphql_routes())
    read = client(xpage).read_timeline(not_before=datetime(2026, 12, 1, 1, 20, tzinfo=UTC))
    assert read.exact and read.complete
    got = {p.tweet_id: p.text for p in read.posts}
    assert {k: match_key(v) for k, v in got.items()} == {k: match_key(v) for k, v in GRAPHQL["expected"].items()}
    assert read.pages == 1  # the first page already reaches back before the first attempt


def test_graphql_timeline_is_paged_back_until_older_than_the_first_attempt(xpage: Any) -> None:
    seen = serve(xpage, _graphql_routes())
    # The first page's oldest post (01:10) is not older than the attempt less the clock slack (01:07).
    read = client(xpage).read_timeline(not_before=datetime(2026, 12, 1, 1, 12, tzinfo=UTC))
    assert read.pages == 2 and read.complete  # the pinned November post did not stop the paging
    assert "1840000000000000001" in {p.tweet_id for p in read.posts}
    assert sum("UserTweetsAndReplies" in r["path"] for r in seen) == 2


def test_an_empty_timeline_that_x_says_has_ended_is_evidence_of_absence(xpage: Any) -> None:
    empty = {"data": {"user": {"result": {"timeline": {"timeline": {"instructions": [
        {"type": "TimelineAddEntries", "entries": []}]}}}}}}
    serve(xpage, {"/alice/with_replies": (200, "text/html", SHELL),
                  "/i/api/graphql/Q1/UserTweetsAndReplies": (200, "application/json", json.dumps(empty))})
    read = client(xpage).read_timeline(not_before=datetime(2026, 12, 1, tzinfo=UTC))
    assert read.posts == [] and read.complete and read.exact


def test_a_timeline_error_body_is_unreadable(xpage: Any) -> None:
    serve(xpage, {"/alice/with_replies": (200, "text/html", SHELL.replace("body.data.user", "(body.data||{}).user")),
                  "/i/api/graphql/Q1/UserTweetsAndReplies": (200, "application/json",
                                                            '{"errors":[{"message":"Timeout","code":29}]}')})
    with pytest.raises(TimelineUnreadable):
        client(xpage, reconcile_s=2).read_timeline(not_before=datetime(2026, 12, 1, tzinfo=UTC))


# ------------------------------------------------------------------------------------------------ composer


def _composer_routes(joiner: str, answer: str) -> dict[str, Any]:
    return {"/home": (200, "text/html", COMPOSER.replace("JOINER", json.dumps(joiner))),
            "/i/api/graphql/C1/CreateTweet": (200, "application/json", answer)}


CREATED = json.dumps({"data": {"create_tweet": {"tweet_results": {"result": {
    "__typename": "TweetWithVisibilityResults", "tweet": {"rest_id": "1860000000000000500"}}}}}})
TEXT = "Big news!\n\nWe shipped v2: grok.com & more 😭\n- faster, thanks @DawnNeesom\nbye"


def test_typing_reaches_a_draftjs_like_composer_with_line_breaks_kept(xpage: Any) -> None:
    seen = serve(xpage, _composer_routes("\n", CREATED))
    assert client(xpage).post(TEXT) == "1860000000000000500"  # the visibility wrapper is opened
    sent = [json.loads(r["post"]) for r in seen if "CreateTweet" in r["path"]]
    assert [s["variables"]["tweet_text"] for s in sent] == [TEXT]


def test_a_composer_that_changed_the_text_is_a_mismatch_never_a_success(xpage: Any) -> None:
    serve(xpage, _composer_routes(" ", CREATED))  # this composer folds line breaks
    with pytest.raises(TextMismatch) as caught:
        client(xpage).post(TEXT)
    assert caught.value.tweet_id == "1860000000000000500"
    assert caught.value.sent_text == TEXT.replace("\n", " ")


def test_a_mismatch_without_a_post_id_is_an_unknown_outcome(xpage: Any) -> None:
    serve(xpage, _composer_routes(" ", '{"data":{"create_tweet":{"tweet_results":{}}}}'))
    with pytest.raises(OutcomeUnknown, match="instead of"):
        client(xpage).post(TEXT)


@pytest.mark.parametrize("status,kind,body", [
    (502, "text/html", "<html><body>502 Bad Gateway</body></html>"),
    (200, "application/json", '{"data":{"create_tweet":{"tweet_results":{}}}}'),
    (200, "application/json", '{"errors":[{"message":"LoadShed: Unspecified","code":-1}]}'),
])
def test_unclear_answers_after_the_request_left_are_unknown(xpage: Any, status: int, kind: str, body: str) -> None:
    routes = _composer_routes("\n", "")
    routes["/i/api/graphql/C1/CreateTweet"] = (status, kind, body)
    serve(xpage, routes)
    with pytest.raises(OutcomeUnknown):
        client(xpage).post("plain text")


# ---------------------------------------------------------------------------------------------- engagement


def test_engagement_is_read_from_the_focal_posts_group_label(xpage: Any) -> None:
    serve(xpage, {"/alice/status/1860000000000000011": (200, "text/html", (FIXTURES / "x_status_reply.html").read_text())})
    counts = client(xpage).engagement("1860000000000000011")
    assert (counts.replies, counts.retweets, counts.likes, counts.bookmarks, counts.views) == (4, 2, 30, 1, 2909)


def test_a_deleted_post_is_recognised_by_its_page_not_by_a_404(xpage: Any) -> None:
    serve(xpage, {"/alice/status/1860000000000000012": (200, "text/html", (FIXTURES / "x_status_deleted.html").read_text())})
    with pytest.raises(PostRejected) as caught:
        client(xpage).engagement("1860000000000000012")
    assert caught.value.code == 144


def test_a_post_without_engagement_has_an_empty_group_label_and_reads_as_zeros(xpage: Any) -> None:
    html = (FIXTURES / "x_status_reply.html").read_text().replace(
        'aria-label="4 replies, 2 reposts, 30 likes, 1 bookmark, 2909 views"', 'aria-label=""')
    serve(xpage, {"/alice/status/1860000000000000011": (200, "text/html", html)})
    counts = client(xpage).engagement("1860000000000000011")
    assert (counts.replies, counts.retweets, counts.likes, counts.bookmarks, counts.views) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("label,expected", [
    ("4 replies, 2 reposts, 30 likes, 1 bookmark, 2909 views",
     {"replies": 4, "retweets": 2, "likes": 30, "bookmarks": 1, "views": 2909}),
    ("1 reply, 1.2K likes, 3,456 views", {"replies": 1, "likes": 1200, "views": 3456}),
    ("", {}),
])
def test_group_label_counts(label: str, expected: dict[str, int]) -> None:
    from pipeline.xweb import parse_group_label

    assert parse_group_label(label) == expected
