"""Posts as x.com's GraphQL JSON: the tweet result, CreateTweet bodies, and the UserTweets / TweetDetail timelines.

Shapes served (written from the public captures listed in ../shared/reference/x-real-rendering.md, section 2):

Tweet result (`tweet_result`), `__typename` "Tweet":
  {"__typename": "Tweet", "rest_id": "<id>",
   "core": {"user_results": {"result": {"__typename": "User", "rest_id": "<user id>",
            "core": {"screen_name": "<handle>", "name": "<handle>"}, "legacy": {<no screen_name>}}}},
   "views": {"count": "<n>", "state": "EnabledWithCount"},
   "legacy": {"id_str", "full_text", "created_at": "Wed Oct 10 20:19:24 +0000 2018", "conversation_id_str",
              "in_reply_to_status_id_str", "in_reply_to_screen_name", "favorite_count", "retweet_count",
              "reply_count", "quote_count", "bookmark_count", "lang", "display_text_range": [start, end],
              "entities": {"urls": [{"url": "https://t.co/..", "expanded_url", "display_url", "indices"}],
                           "user_mentions": [{"screen_name", "id_str", "name", "indices"}],
                           "hashtags": [{"text", "indices"}], "symbols": []}}}
  - `full_text` has every URL replaced by its t.co link and `&`, `<`, `>` escaped as `&amp;`, `&lt;`, `&gt;`.
  - `indices` and `display_text_range` count code points of the UNESCAPED t.co text (as X does).
  - a reply to another account starts with "@<parent author> " (in user_mentions); display_text_range starts
    after it. A reply to one's own post (a thread) has no such prefix.
  - a URL written without a scheme (`grok.com`) has `expanded_url` "http://grok.com".
  - `display_url` drops the scheme and "www.", cut to 25 characters plus "…" when longer than 26.
  - a post longer than 280 (allowed when the rule `max_weighted_length` is raised, as for X Premium) keeps its
    first 275 code points in `legacy` (`full_text`, `display_text_range`, entities inside them) and the whole
    text in "note_tweet": {"is_expandable": true, "note_tweet_results": {"result": {"id", "text", "entity_set"}}}
    (`text` with t.co links, not HTML-escaped; `entity_set` indices over it).
  - `favorited` / `retweeted` are true for about a third of the posts that have likes / reposts (the viewer
    did it): the page's buttons then carry `data-testid` "unlike" / "unretweet".
  - with the `wrapped_result` fault the result is {"__typename": "TweetWithVisibilityResults",
    "tweet": {<the result above without __typename>}, "tweetInterstitial": {...}}, on CreateTweet and on every
    timeline that shows the post later.
CreateTweet: {"data": {"create_tweet": {"tweet_results": {"result": <tweet result>}}}} (silent_drop: `{}`).
UserTweets / UserTweetsAndReplies (`GET /i/api/graphql/<qid>/<Name>?variables={"userId", "count", "cursor"?}`):
  {"data": {"user": {"result": {"__typename": "User", "timeline": {"timeline": {"instructions": [
     {"type": "TimelineClearCache"},                                   (first page only)
     {"type": "TimelinePinEntry", "entry": <item entry>},              (first page only, if a post is pinned)
     {"type": "TimelineAddEntries", "entries": [<item entry> | <module entry> ..., <cursor Top>, <cursor Bottom>]}
  ]}}}}}}
  item entry:   {"entryId": "tweet-<id>", "sortIndex", "content": {"entryType": "TimelineTimelineItem",
                 "__typename": "TimelineTimelineItem", "itemContent": {"itemType": "TimelineTweet",
                 "__typename": "TimelineTweet", "tweet_results": {"result": <tweet result>},
                 "socialContext"?: {"type": "TimelineGeneralContext", "contextType": "Pin", "text": "Pinned"}}}}
  module entry: {"entryId": "profile-conversation-<id>", "content": {"entryType": "TimelineTimelineModule",
                 "displayType": "VerticalConversation", "items": [{"entryId": "profile-conversation-<id>-tweet-<t>",
                 "item": {"itemContent": <as above>}} ...]}}   (ancestors first, other accounts' posts included)
  cursor entry: {"entryId": "cursor-bottom-<n>", "content": {"entryType": "TimelineTimelineCursor",
                 "cursorType": "Bottom", "value": "<opaque>"}}; the next page is asked with variables.cursor. A page
                 with no tweet entries is the end. Posts tab: the account's posts and its replies to itself;
                 Replies tab: every post, replies in modules with up to two ancestors. Newest first, pinned on top
                 (the pinned post, by default the account's first, shows again in its own place). Deleted posts and
                 posts inside their `timeline_lag` are left out. An unknown userId: {"data": {"user": {}}}.
  Every GraphQL read needs the session cookies and `x-csrf-token` = ct0 (else 401 code 32 / 403 code 353) and
  takes the rule `read_latency_s` (0.3 s) plus any `slow_page` delay.
TweetDetail (`variables={"focalTweetId"}`): {"data": {"threaded_conversation_with_injections_v2": {"instructions":
  [{"type": "TimelineAddEntries", "entries": [<item entry> for each ancestor, oldest first, then the focal post,
  then up to 5 replies as "conversationthread-<id>" module entries]}]}}};
  a deleted or unknown post is one entry whose result is {"__typename": "TweetTombstone", "tombstone": {...}}.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Any

from twitter_text.extract_urls import extract_urls_with_indices

from sandbox.x_rules import MAX_WEIGHTED_LENGTH, weighted_length

_MENTION = re.compile(r"(?<![A-Za-z0-9_!@#$%&*])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_@])")
_HASHTAG = re.compile(r"(?<![\w&#])#(\w*[^\W\d_]\w*)")
_TCO_LEN = 10
NOTE_CUT = 275  # code points of a long post's text kept in legacy.full_text


def user_id(handle: str) -> str:
    """A stable numeric user id for a handle (x.com's are decimal strings)."""
    digest = hashlib.sha256(handle.lower().encode()).hexdigest()
    return str(10**17 + int(digest[:15], 16) % (9 * 10**17))


def user_result(handle: str) -> dict[str, Any]:
    return {
        "__typename": "User",
        "id": base64.b64encode(f"User:{user_id(handle)}".encode()).decode(),
        "rest_id": user_id(handle),
        "core": {"screen_name": handle, "name": handle, "created_at": "Wed Oct 10 20:19:24 +0000 2018"},
        "legacy": {"followers_count": 0, "friends_count": 0, "description": ""},
    }


def viewer_did(tweet_id: str, action: str) -> bool:
    """Whether the viewer liked / reposted a post (a third of them), so buttons read `unlike` / `unretweet`."""
    return hashlib.sha256(f"{action}:{tweet_id}".encode()).digest()[0] % 3 == 0


def _tco(tweet_id: str, n: int) -> str:
    digest = hashlib.sha256(f"{tweet_id}:{n}".encode()).digest()
    code = base64.b64encode(digest, altchars=b"Aa").decode()[:_TCO_LEN]
    return f"https://t.co/{code}"


def _display_url(expanded: str) -> str:
    shown = re.sub(r"^https?://", "", expanded)
    shown = re.sub(r"^www\.", "", shown)
    return shown[:25] + "…" if len(shown) > 26 else shown


def text_entities(
    tweet_id: str, text: str, prefix: str = ""
) -> tuple[str, dict[str, list[dict[str, Any]]], list[int]]:
    """(full_text, entities, display_text_range) for a stored text, as X serves them; `prefix` is the "@parent "
    X puts before a reply to another account (outside display_text_range)."""
    urls: list[dict[str, Any]] = []
    out: list[str] = [prefix]
    pos = 0
    for n, found in enumerate(extract_urls_with_indices(text)):
        start, end = found["indices"]
        out.append(text[pos:start])
        url = found["url"]
        expanded = url if re.match(r"^https?://", url, re.I) else "http://" + url
        short = _tco(tweet_id, n)
        at = sum(len(part) for part in out)
        urls.append({"url": short, "expanded_url": expanded, "display_url": _display_url(expanded),
                     "indices": [at, at + len(short)]})  # fmt: skip
        out.append(short)
        pos = end
    out.append(text[pos:])
    tco_text = "".join(out)
    taken = [range(*u["indices"]) for u in urls]

    def free(i: int) -> bool:
        return not any(i in r for r in taken)

    mentions = [
        {
            "screen_name": m.group(1),
            "name": m.group(1),
            "id_str": user_id(m.group(1)),
            "indices": [m.start(), m.end()],
        }
        for m in _MENTION.finditer(tco_text)
        if free(m.start())
    ]
    hashtags = [
        {"text": m.group(1), "indices": [m.start(), m.end()]}
        for m in _HASHTAG.finditer(tco_text)
        if free(m.start())
    ]
    full_text = html.escape(tco_text, quote=False)
    entities = {"hashtags": hashtags, "symbols": [], "urls": urls, "user_mentions": mentions}
    return full_text, entities, [len(prefix), len(tco_text)]


def _note_tweet(tweet_id: str, text: str) -> tuple[str, dict[str, Any], list[int], dict[str, Any]]:
    """A long post: legacy keeps the first NOTE_CUT code points (t.co text, entities inside them); the whole
    text sits in note_tweet.note_tweet_results.result.text (t.co links, not HTML-escaped) with its entity_set."""
    full_text, entities, _ = text_entities(tweet_id, text)
    tco_text = html.unescape(full_text)
    cut = tco_text[:NOTE_CUT]
    legacy_entities = {k: [e for e in v if e["indices"][1] <= len(cut)] for k, v in entities.items()}
    note = {
        "is_expandable": True,
        "note_tweet_results": {"result": {"id": base64.b64encode(f"NoteTweet:{tweet_id}".encode()).decode(),
                                          "text": tco_text, "entity_set": entities}},
    }  # fmt: skip
    return html.escape(cut, quote=False), legacy_entities, [0, len(cut)], note


def tweet_result(t: dict[str, Any], wrapped: bool = False) -> dict[str, Any]:
    """The `tweet_results.result` of a stored post (a dict from Store: id, account, text, created_at_x, counts)."""
    note = None
    if weighted_length(t["text"]) > MAX_WEIGHTED_LENGTH:
        full_text, entities, text_range, note = _note_tweet(t["id"], t["text"])
    else:
        parent = t.get("in_reply_to_account")
        prefix = f"@{parent} " if parent and parent != t["account"] else ""
        full_text, entities, text_range = text_entities(t["id"], t["text"], prefix)
    legacy = {
        "id_str": t["id"],
        "full_text": full_text,
        "created_at": t["created_at_x"],
        "conversation_id_str": t.get("conversation_id") or t["id"],
        "in_reply_to_status_id_str": t.get("in_reply_to"),
        "in_reply_to_screen_name": t.get("in_reply_to_account"),
        "user_id_str": user_id(t["account"]),
        "favorite_count": t.get("likes", 0),
        "retweet_count": t.get("retweets", 0),
        "reply_count": t.get("replies", 0),
        "quote_count": t.get("quotes", 0),
        "bookmark_count": t.get("bookmarks", 0),
        "favorited": viewer_did(t["id"], "like") and t.get("likes", 0) > 0,
        "retweeted": viewer_did(t["id"], "repost") and t.get("retweets", 0) > 0,
        "bookmarked": False,
        "lang": "en",
        "display_text_range": text_range,
        "entities": entities,
    }
    if t.get("media"):
        _add_media(legacy, t)
    if not legacy["in_reply_to_status_id_str"]:
        del legacy["in_reply_to_status_id_str"], legacy["in_reply_to_screen_name"]
    post = {
        "rest_id": t["id"],
        "core": {"user_results": {"result": user_result(t["account"])}},
        "views": {"count": str(t.get("views", 0)), "state": "EnabledWithCount"},
        "source": '<a href="https://x.com" rel="nofollow">X Web App</a>',
        "is_translatable": False,
        "legacy": legacy,
    }
    if note is not None:
        post["note_tweet"] = note
    if wrapped:
        return {
            "__typename": "TweetWithVisibilityResults",
            "tweet": post,
            "tweetInterstitial": {"__typename": "ContextualTweetInterstitial", "displayType": "NonCompliant"},
        }
    return {"__typename": "Tweet", **post}


def _add_media(legacy: dict[str, Any], t: dict[str, Any]) -> None:
    """A post with media: its t.co link ends `full_text` (outside display_text_range), `entities.media` holds
    the first medium, `extended_entities.media` every one with its type and alt text (`ext_alt_text`)."""
    link = _tco(t["id"], 99)
    at = len(html.unescape(legacy["full_text"]))
    if at:
        legacy["full_text"] += " "
        at += 1
    legacy["full_text"] += link
    items = []
    for n, m in enumerate(t["media"], start=1):
        ext = {"photo": "jpg", "animated_gif": "mp4", "video": "mp4"}[m["kind"]]
        path = "media" if m["kind"] == "photo" else ("tweet_video_thumb" if m["kind"] == "animated_gif"
                                                     else "ext_tw_video_thumb")
        item: dict[str, Any] = {
            "id_str": m["media_id"], "media_key": f"{3 if m['kind'] == 'photo' else 7}_{m['media_id']}",
            "type": m["kind"], "url": link, "display_url": f"pic.x.com/{link.rsplit('/', 1)[1]}",
            "expanded_url": f"https://x.com/{t['account']}/status/{t['id']}/"
                            f"{'photo' if m['kind'] == 'photo' else 'video'}/{n}",
            "media_url_https": f"https://pbs.twimg.com/{path}/{m['key']}.jpg",
            "indices": [at, at + len(link)], "ext_alt_text": m["alt"],
            "sizes": {"large": {"w": 2048, "h": 2048, "resize": "fit"}},
        }  # fmt: skip
        if m["kind"] != "photo":
            item["video_info"] = {"variants": [{"content_type": "video/mp4",
                                                "url": f"https://video.twimg.com/{path}/{m['key']}.{ext}"}]}
        items.append(item)
    legacy["entities"]["media"] = items[:1]
    legacy["extended_entities"] = {"media": items}


def create_tweet_body(t: dict[str, Any] | None, wrapped: bool = False) -> dict[str, Any]:
    results = {} if t is None else {"result": tweet_result(t, wrapped)}
    return {"data": {"create_tweet": {"tweet_results": results}}}


def _item(t: dict[str, Any], pinned: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {
        "itemType": "TimelineTweet",
        "__typename": "TimelineTweet",
        "tweet_results": {"result": tweet_result(t, t.get("wrapped", False))},
        "tweetDisplayType": "Tweet",
    }
    if pinned:
        content["socialContext"] = {"type": "TimelineGeneralContext", "contextType": "Pin", "text": "Pinned"}
    return content


def item_entry(t: dict[str, Any], pinned: bool = False) -> dict[str, Any]:
    return {
        "entryId": f"tweet-{t['id']}",
        "sortIndex": t["id"],
        "content": {"entryType": "TimelineTimelineItem", "__typename": "TimelineTimelineItem",
                    "itemContent": _item(t, pinned), "clientEventInfo": {"component": "tweet"}},
    }  # fmt: skip


def module_entry(chain: list[dict[str, Any]]) -> dict[str, Any]:
    """A profile-conversation module: the ancestors (any account), oldest first, then the reply."""
    last = chain[-1]["id"]
    entry_id = f"profile-conversation-{last}"
    return {
        "entryId": entry_id,
        "sortIndex": last,
        "content": {
            "entryType": "TimelineTimelineModule",
            "__typename": "TimelineTimelineModule",
            "displayType": "VerticalConversation",
            "items": [{"entryId": f"{entry_id}-tweet-{t['id']}", "item": {"itemContent": _item(t)}} for t in chain],
            "metadata": {"conversationMetadata": {"allTweetIds": [t["id"] for t in chain],
                                                  "enableDeduplication": True}},
        },
    }  # fmt: skip


def encode_cursor(kind: str, id_num: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{id_num}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> int | None:
    """The id a Bottom cursor points below; None when the cursor is not one of ours."""
    try:
        kind, num = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().split(":")
        return int(num) if kind == "bottom" else None
    except (ValueError, UnicodeDecodeError):
        return None


def _cursor(kind: str, id_num: int) -> dict[str, Any]:
    return {
        "entryId": f"cursor-{kind}-{id_num}",
        "sortIndex": str(id_num),
        "content": {"entryType": "TimelineTimelineCursor", "__typename": "TimelineTimelineCursor",
                    "value": encode_cursor(kind, id_num), "cursorType": kind.capitalize()},
    }  # fmt: skip


def timeline_body(
    groups: list[list[dict[str, Any]]], pinned: dict[str, Any] | None, first_page: bool, top: int, bottom: int
) -> dict[str, Any]:
    """A UserTweets(AndReplies) response: each group is one post or a conversation chain (ancestors first)."""
    entries = [item_entry(g[0]) if len(g) == 1 else module_entry(g) for g in groups]
    entries += [_cursor("top", top), _cursor("bottom", bottom)]
    instructions: list[dict[str, Any]] = []
    if first_page:
        instructions.append({"type": "TimelineClearCache"})
        if pinned is not None:
            instructions.append({"type": "TimelinePinEntry", "entry": item_entry(pinned, pinned=True)})
    instructions.append({"type": "TimelineAddEntries", "entries": entries})
    timeline = {
        "timeline": {"instructions": instructions, "metadata": {"scribeConfig": {"page": "profileBest"}}}
    }
    return {"data": {"user": {"result": {"__typename": "User", "timeline": timeline}}}}


def tombstone_entry(tweet_id: str) -> dict[str, Any]:
    result = {"__typename": "TweetTombstone",
              "tombstone": {"__typename": "TextTombstone",
                            "text": {"text": "This post was deleted by the post author. Learn more"}}}  # fmt: skip
    return {
        "entryId": f"tweet-{tweet_id}",
        "sortIndex": tweet_id,
        "content": {"entryType": "TimelineTimelineItem", "__typename": "TimelineTimelineItem",
                    "itemContent": {"itemType": "TimelineTweet", "__typename": "TimelineTweet",
                                    "tweet_results": {"result": result}}},
    }  # fmt: skip


def detail_body(
    chain: list[dict[str, Any]] | None, focal_id: str, replies: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """TweetDetail: the ancestors oldest first, the focal post (or a tombstone when it is gone), then its replies
    (each a `conversationthread-<id>` module)."""
    entries = [tombstone_entry(focal_id)] if chain is None else [item_entry(t) for t in chain]
    for reply in replies or []:
        module = module_entry([reply])
        module["entryId"] = f"conversationthread-{reply['id']}"
        for item in module["content"]["items"]:
            item["entryId"] = f"conversationthread-{reply['id']}-tweet-{reply['id']}"
        entries.append(module)
    instructions = [{"type": "TimelineAddEntries", "entries": entries}]
    return {"data": {"threaded_conversation_with_injections_v2": {"instructions": instructions}}}
