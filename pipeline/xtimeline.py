"""Rebuild the account's posts from the platform's own data, and the keys reconciliation matches on.

x.com's profile page loads the account's posts as `UserTweets` / `UserTweetsAndReplies` GraphQL JSON and
renders them itself; the rendered text is not the posted text (emoji become images, links become t.co
with hidden spans, bare domains gain `http://`). So the client listens for that JSON and this module,
pure and unit-tested on fixtures, turns it back into what was posted:

- `full_text` with HTML entities unescaped (`&amp;` -> `&`), the reply prefix cut by `display_text_range`,
  t.co links replaced by their `expanded_url`, trailing media links dropped; `note_tweet` for long posts;
- `TweetWithVisibilityResults` unwrapped (`result.tweet`); only posts by this account kept.

Matching: `match_key` compares URLs by host and path (scheme and trailing slash ignored: a bare domain
comes back as `http://domain`). Where only the DOM could be read, `loose_key` ignores URLs, emoji and
spacing around punctuation; a loose match also needs the post's time after the item's first attempt.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from twitter_text.extract_urls import extract_urls_with_indices

from pipeline.media import MediaRef

TIMELINE_OPERATIONS = ("UserTweets", "UserTweetsAndReplies")
CLOCK_SLACK = timedelta(minutes=5)  # X's clock and ours differ: a post cannot predate our intent by more
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_LINKISH = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE_AT_PUNCT = re.compile(r"\s*([^\w\s])\s*")


@dataclass(frozen=True)
class TimelinePost:
    """One post of the account as read back from X. `exact` is False for text rebuilt from the DOM."""

    tweet_id: str
    text: str
    created_at: datetime | None
    in_reply_to: str | None = None
    exact: bool = True
    pinned: bool = False
    media: tuple[tuple[str, str], ...] | None = ()  # (type, alt text) per medium; None when unknown (DOM)


@dataclass(frozen=True)
class TimelinePage:
    """What one timeline response held: this account's posts, the bottom cursor, how many entries and how
    many of them held posts, and the time of the oldest entry in timeline order (pinned entry excluded; a
    conversation module counts at its newest post, which is where it sits in the timeline)."""

    posts: list[TimelinePost]
    bottom_cursor: str | None
    entries: int
    tweet_entries: int = 0
    oldest_entry_at: datetime | None = None
    readable: bool = True  # False when the body held no timeline at all (an error, a changed shape)


# ------------------------------------------------------------------------------------------ parsing


def unwrap(result: Any) -> Mapping[str, Any] | None:
    """A tweet result, with `TweetWithVisibilityResults` opened (the post is under `tweet`)."""
    if not isinstance(result, Mapping):
        return None
    if result.get("__typename") == "TweetWithVisibilityResults" or (
        "tweet" in result and "rest_id" not in result
    ):
        inner = result.get("tweet")
        return inner if isinstance(inner, Mapping) else None
    return result


def _instructions(body: Any) -> list[Mapping[str, Any]]:
    """The timeline's instructions wherever this response version keeps them (`timeline_v2` or `timeline`)."""
    found: list[Mapping[str, Any]] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 8 or found:
            return
        if isinstance(node, Mapping):
            value = node.get("instructions")
            if isinstance(value, list):
                found.extend(i for i in value if isinstance(i, Mapping))
                return
            for child in node.values():
                walk(child, depth + 1)

    walk(body, 0)
    return found


def _entries(instructions: list[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """(entry, pinned) for every entry of the response."""
    for instruction in instructions:
        if isinstance(instruction.get("entry"), Mapping):  # TimelinePinEntry, TimelineReplaceEntry
            yield instruction["entry"], instruction.get("type") == "TimelinePinEntry"
        for entry in instruction.get("entries") or []:
            if isinstance(entry, Mapping):
                yield entry, False


def _tweet_results(entry: Mapping[str, Any]) -> Iterator[Any]:
    """Tweet results in one entry: a single item, or every item of a conversation module."""
    content = entry.get("content") or {}
    item = content.get("itemContent")
    if isinstance(item, Mapping) and "tweet_results" in item:
        yield (item.get("tweet_results") or {}).get("result")
    for module_item in content.get("items") or []:
        inner = ((module_item or {}).get("item") or {}).get("itemContent") or {}
        if "tweet_results" in inner:
            yield (inner.get("tweet_results") or {}).get("result")


def _bottom_cursor(entry: Mapping[str, Any]) -> str | None:
    content = entry.get("content") or {}
    if content.get("cursorType") == "Bottom" or str(entry.get("entryId", "")).startswith("cursor-bottom"):
        value = content.get("value")
        return str(value) if value else None
    return None


def screen_name(tweet: Mapping[str, Any]) -> str | None:
    user = ((tweet.get("core") or {}).get("user_results") or {}).get("result") or {}
    for place in (user.get("core"), user.get("legacy")):
        if isinstance(place, Mapping) and place.get("screen_name"):
            return str(place["screen_name"])
    return None


def parse_created_at(raw: Any) -> datetime | None:
    """`Wed Oct 10 20:19:24 +0000 2018` (X's legacy format), or ISO 8601."""
    if not raw:
        return None
    for parse in (lambda s: datetime.strptime(s, "%a %b %d %H:%M:%S %z %Y"),
                  lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))):
        try:
            return parse(str(raw)).astimezone(UTC)
        except ValueError:
            continue
    return None


def post_text(tweet: Mapping[str, Any]) -> str:
    """The text as posted, rebuilt from `note_tweet` (long posts) or `legacy.full_text`."""
    legacy = tweet.get("legacy") or {}
    note = (((tweet.get("note_tweet") or {}).get("note_tweet_results") or {}).get("result")) or {}
    if note.get("text"):
        source, entities, start = str(note["text"]), note.get("entity_set") or {}, 0
    else:
        source, entities = str(legacy.get("full_text") or ""), legacy.get("entities") or {}
        text_range = legacy.get("display_text_range")
        start = int(text_range[0]) if isinstance(text_range, list) and text_range else 0
    text = html.unescape(source)
    # The reply prefix ("@parent ") lies before the display range; nothing with an entity precedes it.
    if start and text[:start].lstrip().startswith("@"):
        text = text[start:]
    for media in (legacy.get("entities") or {}).get("media") or []:
        if media.get("url"):
            text = text.replace(str(media["url"]), "")
    for url in entities.get("urls") or []:
        short, expanded = url.get("url"), url.get("expanded_url")
        if short and expanded:
            text = text.replace(str(short), str(expanded))
    return unicodedata.normalize("NFC", text.strip())


def post_media(tweet: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(type, alt text) of each medium, from `extended_entities.media` (X's full list; `entities.media` holds
    only the first)."""
    legacy = tweet.get("legacy") or {}
    items = (legacy.get("extended_entities") or {}).get("media") or (legacy.get("entities") or {}).get("media") or []
    return tuple((str(m.get("type") or ""), str(m.get("ext_alt_text") or "")) for m in items if isinstance(m, Mapping))


def parse_timeline(body: Any, handle: str) -> TimelinePage:
    """This account's posts in one `UserTweets`/`UserTweetsAndReplies` response (others' parents dropped)."""
    wanted = handle.lstrip("@").casefold()
    posts: list[TimelinePost] = []
    seen: set[str] = set()
    cursor: str | None = None
    entries = tweet_entries = 0
    oldest: datetime | None = None
    instructions = _instructions(body)
    for entry, pinned in _entries(instructions):
        entries += 1
        cursor = _bottom_cursor(entry) or cursor
        newest_here: datetime | None = None
        for raw in _tweet_results(entry):
            tweet = unwrap(raw)
            if tweet is None or not tweet.get("rest_id"):
                continue
            legacy = tweet.get("legacy") or {}
            created = parse_created_at(legacy.get("created_at"))
            if created is not None and (newest_here is None or created > newest_here):
                newest_here = created
            author = screen_name(tweet)
            if author is None or author.casefold() != wanted or str(tweet["rest_id"]) in seen:
                continue
            seen.add(str(tweet["rest_id"]))
            posts.append(TimelinePost(
                tweet_id=str(tweet["rest_id"]), text=post_text(tweet), created_at=created,
                in_reply_to=legacy.get("in_reply_to_status_id_str") or None, pinned=pinned,
                media=post_media(tweet),
            ))
        if newest_here is not None:
            tweet_entries += 1
            if not pinned and (oldest is None or newest_here < oldest):
                oldest = newest_here
    return TimelinePage(posts=posts, bottom_cursor=cursor, entries=entries, tweet_entries=tweet_entries,
                        oldest_entry_at=oldest, readable=bool(instructions))


# ------------------------------------------------------------------------------------------ matching


def _canonical_url(url: str) -> str:
    return _SCHEME.sub("", url).rstrip("/").casefold()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def match_key(text: str) -> str:
    """Key for exact (platform-data) matching: NFC, whitespace folded, case folded, URLs by host and path."""
    text = unicodedata.normalize("NFC", text)
    pieces, last = [], 0
    for found in extract_urls_with_indices(text):
        start, end = found["indices"]
        pieces += [text[last:start], _canonical_url(found["url"])]
        last = end
    pieces.append(text[last:])
    return _digest(_SPACE.sub(" ", "".join(pieces)).strip().casefold())


def loose_key(text: str) -> str:
    """Key for DOM-read text: URLs, emoji and other symbols dropped, spacing around punctuation ignored."""
    text = unicodedata.normalize("NFC", text)
    for found in sorted(extract_urls_with_indices(text), key=lambda f: f["indices"][0], reverse=True):
        start, end = found["indices"]
        text = text[:start] + " " + text[end:]
    text = _LINKISH.sub(" ", text).replace("\u2026", " ")  # a link's "…" tail span
    kept = "".join(ch for ch in text if unicodedata.category(ch)[0] in "LNPZ" or ch in "\n\t")
    kept = _SPACE.sub(" ", kept).strip()
    return _digest(_SPACE_AT_PUNCT.sub(r"\1", kept).casefold())


X_MEDIA_TYPES = {"image": "photo", "gif": "animated_gif", "video": "video"}


def media_signature(media: Sequence[MediaRef]) -> tuple[tuple[str, str], ...]:
    """What the timeline shows of a part's media: X's type and the alt text, in order."""
    return tuple((X_MEDIA_TYPES.get(m.kind, m.kind), (m.alt or "").strip()) for m in media)


def find_post(posts: list[TimelinePost], text: str, known: set[str], not_before: datetime | None,
              media: Sequence[MediaRef] = ()) -> TimelinePost | None:
    """The oldest post not yet recorded (`known`) with this text and these media (count, type, alt text; not
    checked where the DOM was read), not older than the part's first attempt.

    Platform data matches on `match_key`; DOM-rebuilt text matches on `loose_key` and must carry a time
    after the first attempt (less clock slack), as a loose key alone could meet an older post."""
    exact, loose = match_key(text), loose_key(text)
    wanted_media = media_signature(media)
    earliest = not_before - CLOCK_SLACK if not_before else None
    latest = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(posts, key=lambda p: (p.created_at or latest, int(p.tweet_id) if p.tweet_id.isdigit() else 0))
    for post in ordered:  # oldest first: the first copy is ours
        if post.tweet_id in known:
            continue
        if (match_key(post.text) if post.exact else loose_key(post.text)) != (exact if post.exact else loose):
            continue
        if not post.exact and post.created_at is None:
            continue
        if post.media is not None and tuple((t, a.strip()) for t, a in post.media) != wanted_media:
            continue
        if earliest and post.created_at and post.created_at < earliest:
            continue
        return post
    return None
