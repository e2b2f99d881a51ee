"""The sandbox with real Chromium (Playwright sync API) against its real pages and network calls."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from sandbox.admin import is_loopback
from sandbox.app import create_app
from sandbox.client import SandboxAdmin, SandboxAdminError
from sandbox.engagement import engagement
from sandbox.faults import FaultConfigError, parse_faults
from sandbox.server import SandboxServer
from sandbox.state import Store

HANDLE = "alice"
ID_RE = re.compile(r"^[0-9]{19}$")


def toast(page: Any) -> Any:
    """The error toast. Assertions on it auto-wait: the page writes it a moment after the response arrives."""
    return page.locator('[aria-live="assertive"]')


def is_create(resp: Any) -> bool:
    return resp.request.method == "POST" and resp.url.endswith("/CreateTweet")


@pytest.fixture
def page(chromium: Any, sandbox: SandboxAdmin) -> Iterator[Any]:
    """A logged-in page for @alice (storage_state from the admin API), closed after the test."""
    context = chromium.new_context(storage_state=sandbox.create_account(HANDLE))
    context.set_default_timeout(5000)
    pg = context.new_page()
    yield pg
    context.close()


def compose_inline(page: Any, text: str, button: str = "tweetButtonInline", timeout_ms: int = 5000) -> Any:
    """Type into tweetTextarea_0 with key events (the composer, like x.com's, ignores `fill`), click the post
    button, return the CreateTweet response."""
    page.locator('[data-testid="tweetTextarea_0"]').click()
    page.keyboard.type(text)
    with page.expect_response(is_create, timeout=timeout_ms) as info:
        page.locator(f'[data-testid="{button}"]').click()
    return info.value


def rest_id(resp: Any) -> str:
    return resp.json()["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]


def error_code(resp: Any) -> int:
    return resp.json()["errors"][0]["code"]


def api_post(page: Any, text: str, reply_to: str | None = None, csrf: str | None = None) -> Any:
    """CreateTweet through the context's own cookies (no UI), as the page script sends it."""
    ct0 = next(c["value"] for c in page.context.cookies() if c["name"] == "ct0")
    variables: dict[str, Any] = {"tweet_text": text}
    if reply_to:
        variables["reply"] = {"in_reply_to_tweet_id": reply_to}
    return page.context.request.post(
        re.match(r"https?://[^/]+", page.url).group(0) + "/i/api/graphql/q/CreateTweet",  # type: ignore[union-attr]
        headers={"x-csrf-token": csrf if csrf is not None else ct0, "content-type": "application/json"},
        data=json.dumps({"variables": variables, "queryId": "q"}),
    )


# -- sessions and pages ------------------------------------------------------------------------------------------


def test_storage_state_logs_in_and_home_has_x_structure(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    assert page.url.endswith("/home")
    assert page.locator('[data-testid="primaryColumn"]').count() == 1
    assert "@alice" in page.locator('[data-testid="SideNav_AccountSwitcher_Button"]').inner_text()
    box = page.locator('[data-testid="tweetTextarea_0"]')
    assert box.get_attribute("role") == "textbox" and box.get_attribute("contenteditable") == "true"
    assert page.locator('[data-testid="tweetButtonInline"]').is_disabled()  # empty composer, like X


def test_missing_or_expired_session_lands_on_login(chromium: Any, sandbox: SandboxAdmin) -> None:
    anonymous = chromium.new_context()
    pg = anonymous.new_page()
    pg.goto(sandbox.url + "/home")
    assert "/i/flow/login" in pg.url and pg.title() == "Log in to X"
    # the login form sets the cookies for a handle and returns to the page asked for
    pg.locator('input[autocomplete="username"]').fill("bob")
    pg.locator('[data-testid="loginButton"]').click()
    pg.wait_for_url("**/home")
    assert pg.locator('[data-testid="SideNav_AccountSwitcher_Button"]').count() == 1
    anonymous.close()

    ctx = chromium.new_context(storage_state=sandbox.create_account(HANDLE))
    pg = ctx.new_page()
    pg.goto(sandbox.url + "/compose/post")
    assert pg.locator('[data-testid="tweetTextarea_0"]').count() == 1
    assert sandbox.expire_session(HANDLE) == 1
    pg.goto(sandbox.url + "/compose/post")
    assert "/i/flow/login" in pg.url and pg.title() == "Log in to X"
    assert pg.locator('[data-testid="loginButton"]').count() == 1
    ctx.close()


# -- posting -----------------------------------------------------------------------------------------------------


def test_single_post_rest_id_toast_timeline_and_ground_truth(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    first = compose_inline(page, "Hello from the sandbox")
    assert first.status == 200
    tid = rest_id(first)
    assert ID_RE.match(tid)
    toast = page.locator('[data-testid="toast"]')
    assert toast.locator("a").get_attribute("href") == f"/alice/status/{tid}"
    tid2 = rest_id(compose_inline(page, "Second post"))
    assert int(tid2) > int(tid)

    truth = sandbox.tweets()
    assert [(t["id"], t["account"], t["text"], t["in_reply_to"]) for t in truth] == [
        (tid, "alice", "Hello from the sandbox", None),
        (tid2, "alice", "Second post", None),
    ]
    assert truth[0]["created_at"].endswith("+00:00")

    page.goto(sandbox.url + "/alice")
    articles = page.locator('article[data-testid="tweet"]')
    articles.nth(2).wait_for()  # the page's script renders them after the UserTweets response
    # the first post is pinned on top (as on many x.com profiles), then newest first
    assert articles.nth(0).locator('[data-testid="socialContext"]').inner_text() == "Pinned"
    assert articles.nth(0).locator(f'a[href="/alice/status/{tid}"]').count() == 1
    assert articles.nth(1).locator('[data-testid="tweetText"]').inner_text() == "Second post"
    assert articles.nth(2).locator(f'a[href="/alice/status/{tid}"]').count() == 1


def test_thread_via_compose_is_a_reply_chain(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/compose/post")
    parts = ["Thread 1/3: why", "Thread 2/3: how", "Thread 3/3: done"]
    page.locator('[data-testid="tweetTextarea_0"]').press_sequentially(parts[0])
    for i in (1, 2):
        page.locator('[data-testid="addButton"]').click()
        page.locator(f'[data-testid="tweetTextarea_{i}"]').press_sequentially(parts[i])
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r) if is_create(r) else None)
    page.locator('[data-testid="tweetButton"]').click()
    page.locator('[data-testid="toast"]').wait_for()
    ids = [rest_id(r) for r in responses]
    assert len(ids) == 3 and all(ID_RE.match(i) for i in ids)
    truth = {t["id"]: t for t in sandbox.tweets()}
    assert [truth[i]["text"] for i in ids] == parts
    assert [truth[i]["in_reply_to"] for i in ids] == [None, ids[0], ids[1]]
    assert page.locator('[data-testid="toast"] a').get_attribute("href") == f"/alice/status/{ids[0]}"


def test_reply_from_status_page_and_to_a_missing_tweet(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    parent = rest_id(compose_inline(page, "Parent post"))
    page.goto(f"{sandbox.url}/i/status/{parent}")  # redirects to the canonical permalink, as on x.com
    assert page.url == f"{sandbox.url}/alice/status/{parent}"
    reply = compose_inline(page, "A reply")
    reply_id = rest_id(reply)
    assert json.loads(reply.request.post_data)["variables"]["reply"]["in_reply_to_tweet_id"] == parent
    assert {t["id"]: t["in_reply_to"] for t in sandbox.tweets()}[reply_id] == parent

    page.goto(sandbox.url + "/compose/post?in_reply_to=1234567890123456789")
    missing = compose_inline(page, "Reply to nothing", button="tweetButton")
    assert error_code(missing) == 385
    expect(toast(page)).to_contain_text("deleted or not visible")
    assert len(sandbox.tweets()) == 2


def test_duplicate_text_gets_187_until_the_window_passes(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    assert compose_inline(page, "Same words").status == 200
    dup = compose_inline(page, "  Same   words ")  # whitespace-folded: still a duplicate
    assert error_code(dup) == 187
    assert dup.json()["errors"][0]["message"] == "Authorization: Status is a duplicate. (187)"
    expect(toast(page)).to_have_text("Whoops! You already said that.")
    assert len(sandbox.tweets()) == 1
    sandbox.set_clock(12 * 3600 + 60)  # the 12 h window has passed
    assert api_post(page, "Same words").status == 200
    sandbox.set_rules(duplicate_window_hours=0)  # the rule is off
    assert api_post(page, "Same words").status == 200
    assert len(sandbox.tweets()) == 3


def test_api_rules_csrf_length_and_rate_limits(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    bad_csrf = api_post(page, "csrf", csrf="wrong")
    assert bad_csrf.status == 403 and bad_csrf.json()["errors"][0]["code"] == 353
    assert api_post(page, "x" * 281).json()["errors"][0]["code"] == 186
    assert (
        api_post(page, "日本" * 70).status == 200 and "data" in api_post(page, "x" * 280).json()
    )  # 280 weighted
    sandbox.set_rules(posts_per_3h=3)
    assert api_post(page, "third").status == 200
    limited = api_post(page, "fourth")
    assert limited.status == 429 and limited.json()["errors"][0]["code"] == 88
    assert int(limited.headers["x-rate-limit-reset"]) > time.time() + 3 * 3600 - 60
    sandbox.set_clock(3 * 3600 + 5)  # the window slides past the first three posts
    assert api_post(page, "fourth").status == 200
    sandbox.set_rules(posts_per_3h=300, posts_per_day=4)
    assert api_post(page, "fifth").status == 429
    assert [t["text"] for t in sandbox.tweets()][-1] == "fourth"


def test_profile_timeline_pages_through_every_post(page: Any, sandbox: SandboxAdmin) -> None:
    from sandbox.tweet_json import user_id
    from tests.sandbox_http import graphql_get

    page.goto(sandbox.url + "/home")
    for i in range(105):
        assert api_post(page, f"bulk post {i}").status == 200
    state = sandbox.create_account(HANDLE)
    texts: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        variables = {"userId": user_id(HANDLE), "count": 20, **({"cursor": cursor} if cursor else {})}
        body = graphql_get(sandbox.url, state, "UserTweets", variables)
        (adds,) = [i for i in body["data"]["user"]["result"]["timeline"]["timeline"]["instructions"]
                   if i["type"] == "TimelineAddEntries"]  # fmt: skip
        posts = [e for e in adds["entries"] if e["entryId"].startswith("tweet-")]
        if not posts:
            break
        texts += [
            e["content"]["itemContent"]["tweet_results"]["result"]["legacy"]["full_text"] for e in posts
        ]
        cursor = next(
            e["content"]["value"] for e in adds["entries"] if e["entryId"].startswith("cursor-bottom")
        )
    assert texts == [f"bulk post {i}" for i in range(104, -1, -1)]


# -- engagement --------------------------------------------------------------------------------------------------


def test_engagement_grows_and_status_page_counts_match_ground_truth(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    tid = rest_id(compose_inline(page, "Count me"))
    assert api_post(page, "A real reply", reply_to=tid).status == 200
    fresh = sandbox.tweets()[0]
    sandbox.set_clock(2 * 3600)
    later = sandbox.tweets()[0]
    sandbox.set_clock(
        60 * 86400
    )  # long after: counts have settled, so page and truth are read at equal values
    settled = sandbox.tweets()[0]
    metrics = ("likes", "retweets", "replies", "bookmarks", "views")
    assert all(fresh[m] <= later[m] <= settled[m] for m in metrics)
    assert settled["views"] > fresh["views"] and settled["replies"] >= 1

    page.goto(f"{sandbox.url}/alice/status/{tid}")
    art = page.locator(f'article[data-testid="tweet"]:has(a[href="/alice/status/{tid}"])')  # replies follow it
    # as on x.com, every count is in the action bar's role=group label ("4 replies, 30 likes, ..."; zeros left out)
    label = art.locator('[role="group"]').get_attribute("aria-label")
    names = {"reply": "replies", "replies": "replies", "repost": "retweets", "reposts": "retweets",
             "like": "likes", "likes": "likes", "bookmark": "bookmarks", "bookmarks": "bookmarks",
             "view": "views", "views": "views"}  # fmt: skip
    shown = dict.fromkeys(metrics, 0)
    for part in label.split(", "):
        number, name = part.split(" ")
        shown[names[name]] = int(number)
    assert shown == {m: sandbox.tweets()[0][m] for m in metrics}
    assert art.locator('[data-testid="bookmark"]').get_attribute("aria-label") == "Bookmark"
    from sandbox.tweet_json import viewer_did

    liked = viewer_did(tid, "like") and settled["likes"] > 0  # then, as on x.com, the button is "unlike"
    like = art.locator('[data-testid="unlike"]' if liked else '[data-testid="like"]')
    assert like.get_attribute("aria-label").endswith(". Liked" if liked else ". Like")


def test_engagement_is_deterministic_and_monotone() -> None:
    ages = [0, 1, 60, 600, 3600, 6 * 3600, 86400, 30 * 86400]
    series = [engagement("1900000000000000000", 3, a) for a in ages]
    assert series[0] == dict.fromkeys(series[0], 0)
    for a, b in zip(series, series[1:], strict=False):
        assert all(a[k] <= b[k] for k in a)
    assert series == [engagement("1900000000000000000", 3, a) for a in ages]
    assert engagement("1900000000000000000", 4, 86400) != series[6]


# -- faults ------------------------------------------------------------------------------------------------------


def test_post_commit_stall_stores_the_tweet_although_the_client_times_out(
    page: Any, sandbox: SandboxAdmin
) -> None:
    page.goto(sandbox.url + "/home")
    sandbox.set_faults({"post_commit_stall": {"p": 1.0}})
    with pytest.raises(PlaywrightTimeoutError):
        compose_inline(page, "Stalled but stored", timeout_ms=1500)
    assert [t["text"] for t in sandbox.tweets()] == ["Stalled but stored"]
    sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 0.3}})
    start = time.monotonic()
    assert api_post(page, "Held briefly").status == 200
    assert time.monotonic() - start >= 0.3


def test_post_error_5xx_stores_nothing(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    sandbox.set_faults({"post_error_5xx": {"p": 1.0}})
    resp = compose_inline(page, "Never stored")
    assert resp.status == 503
    expect(toast(page)).to_have_text(re.compile(r"\S"))  # some error text
    assert sandbox.tweets() == []


def test_rate_limit_fault_holds_until_reset(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    sandbox.set_faults({"rate_limit": {"p": 1.0, "reset_s": 120}})
    resp = compose_inline(page, "Too fast")
    assert resp.status == 429 and error_code(resp) == 88
    assert abs(int(resp.headers["x-rate-limit-reset"]) - (time.time() + 120)) < 5
    sandbox.clear_faults()
    assert api_post(page, "Still limited").status == 429  # the limit lasts until the reset
    sandbox.set_clock(121)
    assert api_post(page, "After the reset").status == 200
    assert [t["text"] for t in sandbox.tweets()] == ["After the reset"]


def test_session_expired_fault_lands_on_login_until_a_new_session(
    chromium: Any, page: Any, sandbox: SandboxAdmin
) -> None:
    page.goto(sandbox.url + "/home")
    sandbox.set_faults({"session_expired": {"p": 1.0}})
    resp = compose_inline(page, "Logged out mid-post")
    assert resp.status == 401 and error_code(resp) == 32
    page.wait_for_url("**/i/flow/login**")
    assert page.title() == "Log in to X"
    sandbox.clear_faults()
    page.goto(sandbox.url + "/home")
    assert "/i/flow/login" in page.url  # the old session stays dead
    assert sandbox.tweets() == []
    ctx = chromium.new_context(storage_state=sandbox.create_account(HANDLE))  # "log in again"
    fresh = ctx.new_page()
    fresh.goto(sandbox.url + "/home")
    assert compose_inline(fresh, "Back in").status == 200
    ctx.close()


def test_ui_drift_renames_the_post_button(page: Any, sandbox: SandboxAdmin) -> None:
    sandbox.set_faults({"ui_drift": {"p": 1.0}})
    page.goto(sandbox.url + "/home")
    assert page.locator('[data-testid="tweetButtonInline"]').count() == 0
    assert compose_inline(page, "Drifted", button="tweetButtonInline_v2").status == 200
    page.goto(sandbox.url + "/compose/post")
    assert page.locator('[data-testid="tweetButton"]').count() == 0
    assert page.locator('[data-testid="tweetButton_v2"]').count() == 1


def test_automation_block_226_stores_nothing(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    sandbox.set_faults({"automation_block": {"p": 1.0}})
    resp = compose_inline(page, "Beep boop")
    assert resp.status == 200 and error_code(resp) == 226
    expect(toast(page)).to_contain_text("automated")
    assert sandbox.tweets() == []


def test_slow_page_delays_page_loads_only(page: Any, sandbox: SandboxAdmin) -> None:
    page.goto(sandbox.url + "/home")
    sandbox.set_faults({"slow_page": {"p": 1.0, "seconds": 1.0}})
    start = time.monotonic()
    page.goto(sandbox.url + "/home")
    assert time.monotonic() - start >= 1.0
    start = time.monotonic()
    assert api_post(page, "Fast API").status == 200  # CreateTweet is not a page load
    assert time.monotonic() - start < 1.0


def test_faults_are_seeded_and_validated(tmp_path: Path) -> None:
    def pattern(seed: int) -> list[int]:
        store = Store(seed=0)
        store.issue_session("a")
        store.set_faults(parse_faults({"post_error_5xx": {"p": 0.5}})[0], seed)
        out = [store.post("a", f"t{i}", None).status for i in range(30)]
        store.close()
        return out

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)
    assert {503, 200} == set(pattern(1))
    with pytest.raises(FaultConfigError, match="unknown fault"):
        parse_faults({"nope": {"p": 1}})
    with pytest.raises(FaultConfigError, match="between 0 and 1"):
        parse_faults({"rate_limit": {"p": 2}})
    assert parse_faults({"post_commit_stall": {"p": 1, "seconds": "forever"}})[0]["post_commit_stall"][
        "seconds"
    ] == float("inf")


def test_faults_file_at_start(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(
        json.dumps({"seed": 7, "post_error_5xx": {"p": 1.0}, "slow_page": {"p": 0.25, "seconds": 1}})
    )
    with SandboxServer(faults_file=faults) as server:
        admin = SandboxAdmin(server.url)
        state = admin.state()
        assert state["fault_seed"] == 7
        assert state["faults"]["post_error_5xx"]["p"] == 1.0 and state["faults"]["slow_page"]["seconds"] == 1
        with pytest.raises(SandboxAdminError) as err:
            admin.set_faults({"bogus": {}})
        assert err.value.status == 400


# -- admin, persistence, shutdown ----------------------------------------------------------------------------------


def _asgi_status(app: Any, method: str, path: str, client_host: str) -> int:
    async def run() -> int:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"sandbox.test"), (b"content-type", b"application/json")],
            "client": (client_host, 40000), "server": ("sandbox.test", 80),
        }  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"]

    out: list[int] = []  # a thread of its own: Playwright's sync API keeps an event loop on this one
    worker = threading.Thread(target=lambda: out.append(asyncio.run(run())))
    worker.start()
    worker.join(10)
    return out[0]


def test_admin_answers_loopback_clients_only() -> None:
    store = Store()
    app = create_app(store)
    for host in ("10.1.2.3", "192.168.0.7", "2001:db8::1", "testclient"):
        assert _asgi_status(app, "GET", "/__sandbox/tweets", host) == 403
        assert _asgi_status(app, "POST", "/__sandbox/reset", host) == 403
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert _asgi_status(app, "GET", "/__sandbox/tweets", host) == 200
    assert is_loopback("127.8.9.1") and not is_loopback(None)
    store.close()


def _raw_post(url: str, state: dict[str, Any], text: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    cookies = {c["name"]: c["value"] for c in state["cookies"]}
    req = urllib.request.Request(
        url + "/i/api/graphql/q/CreateTweet",
        data=json.dumps({"variables": {"tweet_text": text}, "queryId": "q"}).encode(),
        method="POST",
        headers={
            "content-type": "application/json",
            "x-csrf-token": cookies["ct0"],
            "cookie": f"auth_token={cookies['auth_token']}; ct0={cookies['ct0']}",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_state_file_survives_restart(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite"
    with SandboxServer(state_file=db) as server:
        admin = SandboxAdmin(server.url)
        state = admin.create_account("carol")
        admin.set_rules(posts_per_day=50)
        status, body = _raw_post(server.url, state, "persisted")
        assert status == 200
        first_id = body["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]
    with SandboxServer(state_file=db) as server:
        admin = SandboxAdmin(server.url)
        assert [(t["id"], t["text"]) for t in admin.tweets()] == [(first_id, "persisted")]
        assert admin.state()["rules"]["posts_per_day"] == 50
        assert (
            _raw_post(server.url, state, "persisted")[1]["errors"][0]["code"] == 187
        )  # same session still valid
        status, body = _raw_post(server.url, state, "after restart")
        assert int(body["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]) > int(first_id)


def test_stop_is_not_blocked_by_a_stalled_post() -> None:
    server = SandboxServer()
    server.start()
    admin = SandboxAdmin(server.url)
    state = admin.create_account("dave")
    admin.set_faults({"post_commit_stall": {"p": 1.0}})  # forever
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_try(lambda: _raw_post(server.url, state, "held", 30)))
    )
    worker.start()
    deadline = time.monotonic() + 5
    while not admin.tweets() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [t["text"] for t in admin.tweets()] == ["held"]
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 5
    worker.join(10)
    assert not worker.is_alive()


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
        return exc


def test_admin_client_round_trip(sandbox: SandboxAdmin) -> None:
    assert sandbox.health()
    state = sandbox.create_account("@erin")
    names = {c["name"] for c in state["cookies"]}
    assert names == {"auth_token", "ct0"} and state["cookies"][0]["domain"] == "127.0.0.1"
    assert sandbox.set_rules(posts_per_3h=10)["posts_per_3h"] == 10
    assert sandbox.set_clock(3600) == 3600.0
    sandbox.set_faults({"ui_drift": {"p": 0.5}}, seed=3)
    assert sandbox.state()["fault_seed"] == 3
    sandbox.reset()
    info = sandbox.state()
    assert info["faults"] == {} and info["clock_offset_s"] == 0 and info["rules"]["posts_per_3h"] == 300
    assert info["accounts"] == 0
