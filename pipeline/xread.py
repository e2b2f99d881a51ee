"""Reading the account's own posts and a post's engagement from x.com's pages (mixed into `XWebClient`).

Posts come from the `UserTweets`/`UserTweetsAndReplies` GraphQL responses the page loads (parsed by
`pipeline.xtimeline`); only when none arrives is the text rebuilt from the DOM, and then marked inexact.
A read says whether it is `complete`: it reached back past the item's first attempt or the timeline's end.
Only a complete read with posts is evidence that a post is absent.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from playwright.sync_api import Error as PlaywrightError

from pipeline.failures import NothingSent, PostRejected, UiChanged
from pipeline.xtimeline import (
    CLOCK_SLACK,
    TIMELINE_OPERATIONS,
    TimelinePost,
    parse_created_at,
    parse_timeline,
)

TWEET_SELECTOR = 'article[data-testid="tweet"]'

TIMELINE = re.compile(r"/i/api/graphql/[^/]+/(?:" + "|".join(TIMELINE_OPERATIONS) + r")(?:\?|$)")
_COUNT = re.compile(r"(\d[\d,]*(?:\.\d+)?)([KMB])?(?![A-Za-z])")  # "1,234 Likes", "1.2K views"
_GROUP_COUNT = re.compile(r"(\d[\d,]*(?:\.\d+)?[KMB]?)\s+([A-Za-z]+)")  # "4 replies, 30 likes, 2909 views"
_COUNT_NAMES = {"reply": "replies", "replies": "replies", "repost": "retweets", "reposts": "retweets",
                "retweet": "retweets", "retweets": "retweets", "like": "likes", "likes": "likes",
                "bookmark": "bookmarks", "bookmarks": "bookmarks", "view": "views", "views": "views",
                "quote": "quotes", "quotes": "quotes"}
_GONE = re.compile(r"doesn.t exist|was deleted|has been deleted|is unavailable|no longer available", re.IGNORECASE)
MAX_TIMELINE_PAGES = 12
DATA_GRACE_S = 2.0  # how long posts shown without timeline data wait for it before the DOM is read instead

# Rebuild each visible post's text the way it was written: text nodes, emoji from img[alt], and a link's
# hidden spans (textContent keeps them); the permalink is the one around the post's <time>.
_READ_DOM_TIMELINE_JS = """(handle) => Array.from(document.querySelectorAll('article[data-testid="tweet"]')).map(a => {
  const box = a.querySelector('[data-testid="tweetText"]');
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.data;
    if (node.nodeType !== Node.ELEMENT_NODE) return '';
    if (node.tagName === 'IMG') return node.getAttribute('alt') || '';
    if (node.tagName === 'BR') return '\\n';
    return Array.from(node.childNodes).map(walk).join('');
  };
  const time = a.querySelector('time');
  const link = time ? time.closest('a') : null;
  const social = a.querySelector('[data-testid="socialContext"]');
  return {text: box ? walk(box) : '', href: link ? link.getAttribute('href') : '',
          time: time ? time.getAttribute('datetime') : null,
          pinned: !!(social && /pinned/i.test(social.textContent || ''))};
})"""

# The focal post of a status page is the article whose permalink is the status id (parents come first).
_READ_COUNTS_JS = """(tweetId) => {
  const gone = document.querySelector('[data-testid="error-detail"], [data-testid="emptyState"]');
  for (const art of document.querySelectorAll('article[data-testid="tweet"]')) {
    const own = Array.from(art.querySelectorAll('a[href*="/status/"]')).some(
      (l) => new RegExp('/status/' + tweetId + '(?:[/?#]|$)').test(l.getAttribute('href') || ''));
    if (!own) continue;
    const group = art.querySelector('[role="group"]');
    return {found: true, label: group ? (group.getAttribute('aria-label') || '') : null};
  }
  // Words like "doesn't exist" count only on a page with no posts at all (a post's own text may say them).
  const column = document.querySelector('[data-testid="primaryColumn"]') || document.body;
  return {found: false, gone: gone ? (gone.textContent || 'gone') : null,
          text: document.querySelector('article') ? '' : column.innerText.slice(0, 500)};
}"""




class TimelineUnreadable(NothingSent):
    """The timeline could not be read (no response, no posts): never evidence that a post is absent."""


@dataclass(frozen=True)
class TimelineRead:
    """The account's posts as read back; `complete` when reading reached back past `not_before` or the
    timeline's end, so a post missing from `posts` is really not there. `exact` is False for DOM text."""

    posts: list[TimelinePost]
    complete: bool
    exact: bool = True
    pages: int = 1


@dataclass(frozen=True)
class Engagement:
    likes: int
    retweets: int
    replies: int
    bookmarks: int
    views: int
    quotes: int = 0


def parse_group_label(label: str | None) -> dict[str, int]:
    """The action bar's aria-label ("4 replies, 30 likes, 1 bookmark, 2909 views") as counts by name."""
    counts: dict[str, int] = {}
    for number, word in _GROUP_COUNT.findall(label or ""):
        name = _COUNT_NAMES.get(word.lower())
        if name is not None:
            counts[name] = parse_count(number)
    return counts


def parse_count(label: str | None) -> int:
    """'1,234 Likes. Like' -> 1234; '1.2K views' -> 1200; missing -> 0."""
    if not label:
        return 0
    match = _COUNT.search(label)
    if not match:
        return 0
    number, suffix = match.group(1).replace(",", ""), match.group(2) or ""
    return int(float(number) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[suffix])



class XReader:
    """Timeline and engagement reading; the host class supplies the page, navigation and timeouts."""

    page: Any
    handle: str
    nav_timeout_ms: float
    reconcile_timeout_ms: float

    def _goto(self, path: str, timeout_ms: float | None = None) -> Any:
        raise NotImplementedError

    def _raise_if_logged_out(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ reading

    def read_timeline(self, not_before: datetime | None = None) -> TimelineRead:
        """The account's own posts, replies included, read back far enough to judge absence.

        Posts come from the `UserTweetsAndReplies` responses the page loads; the page is scrolled for older
        pages until the oldest post predates `not_before` (less clock slack) or the timeline ends. Only when
        no response arrives is the text rebuilt from the DOM. Raises TimelineUnreadable when nothing was read.
        """
        bodies: list[Any] = []

        def on_response(response: Any) -> None:
            if TIMELINE.search(response.url) and response.request.method == "GET":
                bodies.append(response)

        self.page.on("response", on_response)
        try:
            return self._read_timeline(bodies, not_before)
        finally:
            self.page.remove_listener("response", on_response)

    def _read_timeline(self, responses: list[Any], not_before: datetime | None) -> TimelineRead:
        self._goto(f"/{self.handle}/with_replies", timeout_ms=self.reconcile_timeout_ms)
        limit = not_before - CLOCK_SLACK if not_before else None
        deadline = time.monotonic() + self.reconcile_timeout_ms / 1000
        if not self._wait_for(lambda: bool(responses) or self._article_count() > 0, deadline):
            self._raise_if_logged_out()
            raise TimelineUnreadable(f"@{self.handle}'s timeline showed no posts and loaded no timeline data")
        if not responses:  # posts on the page before its data (a cache): give the data a moment to arrive
            self._wait_for(lambda: bool(responses), min(deadline, time.monotonic() + DATA_GRACE_S))
        if not responses:
            return self._read_dom_timeline(limit, deadline)
        posts: dict[str, TimelinePost] = {}
        parsed = 0
        ended = False
        readable = False
        oldest: datetime | None = None
        while True:
            while parsed < len(responses):
                page = parse_timeline(_json(responses[parsed]), self.handle)
                parsed += 1
                if not page.readable:
                    continue
                readable = True
                for post in page.posts:
                    posts.setdefault(post.tweet_id, post)
                ended = ended or page.bottom_cursor is None or not page.tweet_entries
                if page.oldest_entry_at is not None:
                    oldest = page.oldest_entry_at if oldest is None else min(oldest, page.oldest_entry_at)
            reached = limit is None or (oldest is not None and oldest < limit)
            if reached or ended or parsed >= MAX_TIMELINE_PAGES:
                break
            seen = len(responses)
            self._scroll_down()
            if not self._wait_for(lambda seen=seen: len(responses) > seen, min(deadline, time.monotonic() + 10)):
                break
        if not readable:
            raise TimelineUnreadable(f"@{self.handle}'s timeline responses held no timeline")
        if not posts and not ended:
            raise TimelineUnreadable(f"@{self.handle}'s timeline data held none of its posts")
        # Zero posts counts as evidence only when X's own data says the timeline ends there.
        complete = ended or limit is None or (oldest is not None and oldest < limit)
        return TimelineRead(list(posts.values()), complete=complete, exact=True, pages=parsed)

    def _read_dom_timeline(self, limit: datetime | None, deadline: float) -> TimelineRead:
        """Fallback: the posts on the page, text rebuilt from the DOM, scrolled until old enough."""
        posts: dict[str, TimelinePost] = {}
        oldest: datetime | None = None
        rounds, stale, ended = 0, 0, False
        while rounds < MAX_TIMELINE_PAGES * 3 and time.monotonic() < deadline:
            rounds += 1
            try:
                rows = self.page.evaluate(_READ_DOM_TIMELINE_JS, self.handle)
            except PlaywrightError as exc:
                raise TimelineUnreadable(f"could not read @{self.handle}'s timeline: {first_line(exc)}") from exc
            before = len(posts)
            for row in rows:
                match = re.search(r"/([^/]+)/status/(\d+)", row.get("href") or "")
                if not match or match.group(1).casefold() != self.handle.casefold():
                    continue
                created = parse_created_at(row.get("time"))
                posts.setdefault(match.group(2), TimelinePost(match.group(2), row.get("text") or "", created, exact=False,
                                                                 media=None))
                if created is not None and not row.get("pinned"):
                    oldest = created if oldest is None else min(oldest, created)
            if limit is None or (oldest is not None and oldest < limit):
                break
            stale = stale + 1 if len(posts) == before else 0
            if stale >= 3:  # three scrolls with nothing new: the timeline's end
                ended = True
                break
            self._scroll_down()
            self.page.wait_for_timeout(400)
        if not posts:
            raise TimelineUnreadable(f"@{self.handle}'s timeline showed none of its posts")
        complete = ended or limit is None or (oldest is not None and oldest < limit)
        return TimelineRead(list(posts.values()), complete=complete, exact=False, pages=rounds)

    def _article_count(self) -> int:
        try:
            return int(self.page.locator(TWEET_SELECTOR).count())
        except PlaywrightError:
            return 0

    def _scroll_down(self) -> None:
        try:
            self.page.mouse.wheel(0, 4000)
            self.page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
        except PlaywrightError as exc:
            raise TimelineUnreadable(f"could not scroll @{self.handle}'s timeline: {first_line(exc)}") from exc

    def _wait_for(self, condition: Any, deadline: float) -> bool:
        """Let the page work (its events are delivered while we wait) until `condition()` or the deadline."""
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            try:
                self.page.wait_for_timeout(100)
            except PlaywrightError as exc:
                raise TimelineUnreadable(f"the page failed while reading @{self.handle}: {first_line(exc)}") from exc

    def engagement(self, tweet_id: str) -> Engagement:
        """Counts of the focal post (the article whose permalink is `tweet_id`) from its action bar's
        `role="group"` label. A deleted post is recognised by the page saying so, not by an HTTP status."""
        self._goto(f"/{self.handle}/status/{tweet_id}")
        deadline = time.monotonic() + self.nav_timeout_ms / 1000
        state: dict[str, Any] = {}

        def settled() -> bool:
            state.update(self.page.evaluate(_READ_COUNTS_JS, tweet_id) or {})
            return bool(state.get("found") and state.get("label") is not None) or bool(state.get("gone")) or bool(
                _GONE.search(state.get("text") or ""))

        try:
            self._wait_for(settled, deadline)
        except (PlaywrightError, TimelineUnreadable) as exc:
            raise NothingSent(f"could not read the status page of {tweet_id}: {exc}") from exc
        if not state.get("found"):
            if state.get("gone") or _GONE.search(state.get("text") or ""):
                raise PostRejected(f"tweet {tweet_id} does not exist (deleted, or never posted here)", code=144)
            self._raise_if_logged_out()
            raise UiChanged(f"no post {tweet_id} on its status page", selector=TWEET_SELECTOR)
        if state.get("label") is None:  # an empty label is a post with no engagement yet (X leaves zeros out)
            raise UiChanged(f"post {tweet_id} has no action bar", selector='[role="group"]')
        counts = parse_group_label(state["label"])
        return Engagement(likes=counts.get("likes", 0), retweets=counts.get("retweets", 0),
                          replies=counts.get("replies", 0), bookmarks=counts.get("bookmarks", 0),
                          views=counts.get("views", 0), quotes=counts.get("quotes", 0))



def _json(response: Any) -> Any:
    try:
        return response.json()
    except Exception:  # noqa: BLE001 - an unreadable page of the timeline is a page without posts
        return None


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


