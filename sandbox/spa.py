"""The realistic (default) profile and status pages: HTML shells whose script loads posts from GraphQL JSON, and
the GraphQL read endpoints behind them (UserTweets, UserTweetsAndReplies, TweetDetail). JSON shapes: tweet_json.py.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import pages, tweet_json
from sandbox.state import Store
from sandbox.x_rules import error_body

USER_TWEETS_QID = "E3opETHurmVJflFsUBVuUQ"
REPLIES_QID = "bt4TKuFz4T7Ckk-VvQVSow"
DETAIL_QID = "nBS-WpgA6ZG0CyNHD517JQ"
_JS = "".join(f"<script>{(pages.WEB / name).read_text()}</script>" for name in ("article.js", "timeline.js"))
MAX_PAGE = 40


def _config(viewer: str, **extra: Any) -> dict[str, Any]:
    return {**pages._config(viewer, draftjs=True), **extra}


def profile_page(viewer: str, handle: str, with_replies: bool) -> str:
    h = escape(handle)
    name = "UserTweetsAndReplies" if with_replies else "UserTweets"
    config = _config(viewer, page="profile", userId=tweet_json.user_id(handle), timeline=name,
                     timelineQueryId=REPLIES_QID if with_replies else USER_TWEETS_QID)  # fmt: skip
    tabs = (
        f'<nav role="tablist"><a role="tab" href="/{h}" aria-selected="{str(not with_replies).lower()}">Posts</a>'
        f'<a role="tab" href="/{h}/with_replies" aria-selected="{str(with_replies).lower()}">Replies</a></nav>'
    )
    content = f"""<h2>{h}</h2><div data-testid="UserName"><span>@{h}</span></div>{tabs}
<section aria-label="Timeline: {h}’s posts" role="region"><div id="timeline-root"><div role="progressbar"
 aria-label="Loading…">Loading…</div></div></section>"""
    return pages._shell(viewer, f"{handle} (@{handle}) / X", content, config, _JS)


def status_page(viewer: str, tweet_id: str, drift: str = "") -> str:
    """A status page (always HTTP 200, as the single-page app answers): the script asks TweetDetail and shows
    the parent posts first, then the focal post, or a page saying the post does not exist."""
    config = _config(viewer, page="status", tweetId=tweet_id, detailQueryId=DETAIL_QID)
    content = '<h2>Post</h2>\n<div id="timeline-root"><div role="progressbar" aria-label="Loading…">Loading…</div></div>'
    content += "\n" + pages._composer(
        "tweetButtonInline" + drift, "Reply", reply_to=tweet_id, placeholder="Post your reply"
    )
    return pages._shell(viewer, "Post / X", content, config, _JS)


def _variables(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.query_params.get("variables", ""))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("variables must be a JSON object")
    return data


def _reader(store: Store, request: Request) -> tuple[str | None, Response | None]:
    """The viewer of a GraphQL read, or the error X answers (401/32 without a session, 403/353 without csrf)."""
    auth_token, ct0 = request.cookies.get("auth_token"), request.cookies.get("ct0")
    if not auth_token or not ct0:
        return None, JSONResponse(error_body(32), 401)
    if request.headers.get("x-csrf-token") != ct0:
        return None, JSONResponse(error_body(353), 403)
    viewer = store.session_handle(auth_token, ct0)
    if viewer is None:
        return None, JSONResponse(error_body(32), 401)
    return viewer, None


def ancestors(store: Store, tweet: dict[str, Any], depth: int) -> list[dict[str, Any]]:
    """Up to `depth` visible posts this one replies to, oldest first (any account)."""
    chain: list[dict[str, Any]] = []
    parent_id = tweet.get("in_reply_to")
    while parent_id and len(chain) < depth:
        parent = store.tweet(parent_id, visible_only=True)
        if parent is None:
            break
        chain.insert(0, parent)
        parent_id = parent.get("in_reply_to")
    return chain


def _handle_of(store: Store, uid: Any) -> str | None:
    for handle in store.handles():
        if tweet_json.user_id(handle) == str(uid):
            return handle
    return None


def user_timeline(store: Store, request: Request, with_replies: bool) -> Response:
    _, refused = _reader(store, request)
    if refused is not None:
        return refused
    try:
        variables = _variables(request)
        count = max(1, min(int(variables.get("count", 20)), MAX_PAGE))
    except (ValueError, TypeError):
        return JSONResponse(error_body(214, "variables: expected {userId, count, cursor?}"), 400)
    handle = _handle_of(store, variables.get("userId"))
    if handle is None:
        return JSONResponse({"data": {"user": {}}})
    cursor = variables.get("cursor")
    below = tweet_json.decode_cursor(cursor) if isinstance(cursor, str) else None
    posts = store.timeline(handle, count, below=below, with_replies=with_replies)
    groups = []
    for post in posts:
        chain = [post]
        if with_replies and post.get("in_reply_to"):
            chain = [*ancestors(store, post, 2), post]
        groups.append(chain)
    first_page = below is None
    pinned = store.pinned(handle) if first_page else None
    top = int(posts[0]["id"]) if posts else (below or 0)
    bottom = int(posts[-1]["id"]) if posts else (below or 0)
    return JSONResponse(tweet_json.timeline_body(groups, pinned, first_page, top, bottom))


def tweet_detail(store: Store, request: Request) -> Response:
    _, refused = _reader(store, request)
    if refused is not None:
        return refused
    try:
        focal = str(_variables(request).get("focalTweetId", ""))
    except ValueError:
        return JSONResponse(error_body(214, "variables: expected {focalTweetId}"), 400)
    tweet = store.tweet(focal, visible_only=True) if focal.isdigit() else None
    chain = None if tweet is None else [*ancestors(store, tweet, 10), tweet]
    replies = [] if tweet is None else store.replies_to(focal)
    return JSONResponse(tweet_json.detail_body(chain, focal, replies))
