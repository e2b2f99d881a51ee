"""The X web client: drives one Playwright page of one logged-in account. Knows nothing of the database.

- The tweet id comes from the `CreateTweet` network response, never from polling the DOM.
- Every failure leaves as a typed error from `pipeline.failures`, with the one distinction that matters:
  did the request leave the browser? Before it did, the error is `NothingSent` (safe to retry); after, a
  timeout or crash is `OutcomeUnknown` (reconcile, never re-post).
- Selectors live in one table with the fallbacks X uses. The same client runs against x.com and the
  sandbox: only the base URL differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from pipeline.content import text_fingerprint
from pipeline.failures import (
    AuthFailed,
    NothingSent,
    OutcomeUnknown,
    PostRejected,
    UiChanged,
    XError,
    graphql_error,
)

SELECTORS: dict[str, tuple[str, ...]] = {
    "compose_box": ('[data-testid="tweetTextarea_0"]', 'div[role="textbox"][contenteditable="true"]'),
    "post_button": ('[data-testid="tweetButtonInline"]', '[data-testid="tweetButton"]'),
    "logged_in": ('[data-testid="primaryColumn"]', '[data-testid="SideNav_AccountSwitcher_Button"]'),
    "logged_out": ('[data-testid="loginButton"]', 'a[href="/i/flow/login"]'),
    "overlay_close": ('[data-testid="app-bar-close"]', '[data-testid="confirmationSheetCancel"]', '[data-testid="mask"]'),
    "tweet": ('article[data-testid="tweet"]',),
    "error_region": ('[aria-live="assertive"]',),
}
LOGIN_PATH = "/i/flow/login"
CREATE_TWEET = re.compile(r"/i/api/graphql/[^/]+/CreateTweet")
_COUNT = re.compile(r"(\d[\d,]*(?:\.\d+)?)([KMB])?(?![A-Za-z])")  # "1,234 Likes", "1.2K views"

_READ_TIMELINE_JS = """() => Array.from(document.querySelectorAll('article[data-testid="tweet"]')).map(a => {
  const text = a.querySelector('[data-testid="tweetText"]');
  const link = a.querySelector('a[href*="/status/"]');
  const time = a.querySelector('time');
  return {text: text ? text.innerText : '', href: link ? link.getAttribute('href') : '',
          time: time ? time.getAttribute('datetime') : null};
})"""

_READ_COUNTS_JS = """() => {
  const art = document.querySelector('article[data-testid="tweet"]');
  if (!art) return null;
  const label = (sel) => { const el = art.querySelector(sel); return el ? el.getAttribute('aria-label') : null; };
  return {replies: label('[data-testid="reply"]'), retweets: label('[data-testid="retweet"]'),
          likes: label('[data-testid="like"]'), bookmarks: label('[data-testid="bookmark"]'),
          views: label('a[href$="/analytics"]')};
}"""


def either(name: str) -> str:
    """One CSS selector matching any of the fallbacks for `name`."""
    return ", ".join(SELECTORS[name])


@dataclass(frozen=True)
class TimelinePost:
    tweet_id: str
    text: str
    created_at: datetime | None

    @property
    def fingerprint(self) -> str:
        return text_fingerprint(self.text)


@dataclass(frozen=True)
class Engagement:
    likes: int
    retweets: int
    replies: int
    bookmarks: int
    views: int
    quotes: int = 0


def parse_count(label: str | None) -> int:
    """'1,234 Likes. Like' -> 1234; '1.2K views' -> 1200; missing -> 0."""
    if not label:
        return 0
    match = _COUNT.search(label)
    if not match:
        return 0
    number, suffix = match.group(1).replace(",", ""), match.group(2) or ""
    return int(float(number) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[suffix])


class XWebClient:
    """Posts, reads its own timeline and reads engagement for ONE account on ONE reused page."""

    def __init__(self, page: Any, base_url: str, handle: str, nav_timeout_s: float = 30.0,
                 post_timeout_s: float = 20.0, reconcile_timeout_s: float = 30.0) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.handle = handle
        self.nav_timeout_ms = nav_timeout_s * 1000
        self.post_timeout_ms = post_timeout_s * 1000
        self.reconcile_timeout_ms = reconcile_timeout_s * 1000

    # ------------------------------------------------------------------ navigation

    def _goto(self, path: str, timeout_ms: float | None = None) -> Any:
        """Navigate, and turn a login redirect into AuthFailed. Nothing has been sent at this point."""
        try:
            response = self.page.goto(self.base_url + path, wait_until="domcontentloaded",
                                      timeout=timeout_ms or self.nav_timeout_ms)
        except PlaywrightTimeout as exc:
            raise NothingSent(f"page {path} did not load in time: {_first_line(exc)}") from exc
        except PlaywrightError as exc:
            raise NothingSent(f"navigation to {path} failed: {_first_line(exc)}") from exc
        self._raise_if_logged_out()
        return response

    def _raise_if_logged_out(self) -> None:
        if LOGIN_PATH in self.page.url:
            raise AuthFailed(f"@{self.handle}'s session is not logged in (redirected to the login page)")

    def _dismiss_overlays(self) -> None:
        overlays = self.page.locator(either("overlay_close"))
        try:
            if overlays.count():
                overlays.first.click(timeout=2000)
        except PlaywrightError:
            pass  # an overlay that vanished on its own is fine

    def _find(self, name: str, timeout_ms: float) -> Any:
        locator = self.page.locator(either(name)).first
        try:
            locator.wait_for(state="visible", timeout=timeout_ms)
        except PlaywrightTimeout as exc:
            self._raise_if_logged_out()
            raise UiChanged(f"no {name.replace('_', ' ')} on {self.page.url}", selector=either(name)) from exc
        except PlaywrightError as exc:
            raise NothingSent(f"page failed while looking for {name}: {_first_line(exc)}") from exc
        return locator

    def check_session(self) -> bool:
        """True when the account is logged in (used to close a breaker forced open by an auth error)."""
        self._goto("/home")
        try:
            self.page.locator(either("logged_in")).first.wait_for(state="attached", timeout=self.nav_timeout_ms)
        except PlaywrightError:
            return False
        return LOGIN_PATH not in self.page.url

    # ------------------------------------------------------------------ posting

    def post(self, text: str, in_reply_to: str | None = None) -> str:
        """Publish one post (a reply when `in_reply_to` is set) and return its tweet id (`rest_id`)."""
        # X redirects /i/status/<id> to the canonical /<author>/status/<id>, whose reply box we use.
        self._goto(f"/i/status/{in_reply_to}" if in_reply_to else "/home")
        self._dismiss_overlays()
        box = self._find("compose_box", self.nav_timeout_ms)
        button = self._find("post_button", min(self.nav_timeout_ms, 10_000))
        try:
            box.click(timeout=5000)
            box.fill(text, timeout=5000)
        except PlaywrightError as exc:
            raise NothingSent(f"could not type into the composer: {_first_line(exc)}") from exc

        sent: list[bool] = []

        def on_request(request: Any) -> None:
            if request.method == "POST" and CREATE_TWEET.search(request.url):
                sent.append(True)

        self.page.on("request", on_request)
        try:
            response = self._click_and_wait(button, sent)
        finally:
            self.page.remove_listener("request", on_request)
        return self._read_created(response, text)

    def _click_and_wait(self, button: Any, sent: list[bool]) -> Any:
        try:
            with self.page.expect_response(
                lambda r: r.request.method == "POST" and bool(CREATE_TWEET.search(r.url)),
                timeout=self.post_timeout_ms,
            ) as info:
                button.click(timeout=5000)
            return info.value
        except PlaywrightTimeout as exc:
            if sent:
                raise OutcomeUnknown(
                    f"no CreateTweet response within {self.post_timeout_ms / 1000:g}s; the post may be live"
                ) from exc
            message = self._error_text()
            raise NothingSent(f"the Post click sent no request{': ' + message if message else ''}") from exc
        except PlaywrightError as exc:
            if sent:
                raise OutcomeUnknown(f"browser failed after the post was sent: {_first_line(exc)}") from exc
            raise NothingSent(f"browser failed before the post was sent: {_first_line(exc)}") from exc

    def _read_created(self, response: Any, text: str) -> str:
        try:
            body = response.json()
        except Exception as exc:  # noqa: BLE001 - any unreadable body after a sent request is an unknown outcome
            if response.status >= 500:
                raise NothingSent(f"X answered HTTP {response.status}") from exc
            raise OutcomeUnknown(f"unreadable CreateTweet response (HTTP {response.status})") from exc
        error = graphql_error(response.status, body, response.headers)
        if error is not None:
            raise error
        try:
            return str(body["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"])
        except (KeyError, TypeError) as exc:
            raise OutcomeUnknown("CreateTweet answered without a rest_id") from exc

    def _error_text(self) -> str:
        try:
            region = self.page.locator(either("error_region"))
            return region.first.inner_text(timeout=500).strip() if region.count() else ""
        except PlaywrightError:
            return ""

    # ------------------------------------------------------------------ reading

    def own_posts(self) -> list[TimelinePost]:
        """The account's recent posts, replies included (for reconciliation). Raises on failure to read."""
        self._goto(f"/{self.handle}/with_replies", timeout_ms=self.reconcile_timeout_ms)
        try:
            self.page.locator(either("logged_in")).first.wait_for(state="attached", timeout=self.reconcile_timeout_ms)
            rows = self.page.evaluate(_READ_TIMELINE_JS)
        except PlaywrightError as exc:
            raise NothingSent(f"could not read @{self.handle}'s timeline: {_first_line(exc)}") from exc
        posts = []
        for row in rows:
            match = re.search(r"/status/(\d+)", row.get("href") or "")
            if not match:
                continue
            created = _parse_time(row.get("time"))
            posts.append(TimelinePost(match.group(1), row.get("text") or "", created))
        return posts

    def find_posts(self, fingerprints: set[str]) -> dict[str, list[TimelinePost]]:
        """Timeline posts whose text matches one of the fingerprints (the account's own, newest first)."""
        found: dict[str, list[TimelinePost]] = {}
        for post in self.own_posts():
            if post.fingerprint in fingerprints:
                found.setdefault(post.fingerprint, []).append(post)
        return found

    def engagement(self, tweet_id: str) -> Engagement:
        """Counts from the status page's aria-labels (what X shows, not an API that needs a paid key)."""
        response = self._goto(f"/{self.handle}/status/{tweet_id}")
        if response is not None and response.status == 404:
            raise PostRejected(f"tweet {tweet_id} does not exist (deleted, or never posted here)", code=144)
        try:
            self.page.locator(either("tweet")).first.wait_for(state="attached", timeout=self.nav_timeout_ms)
            labels = self.page.evaluate(_READ_COUNTS_JS)
        except PlaywrightError as exc:
            raise NothingSent(f"could not read the status page of {tweet_id}: {_first_line(exc)}") from exc
        if not labels:
            raise UiChanged(f"no tweet on the status page of {tweet_id}", selector=either("tweet"))
        return Engagement(
            likes=parse_count(labels["likes"]), retweets=parse_count(labels["retweets"]),
            replies=parse_count(labels["replies"]), bookmarks=parse_count(labels["bookmarks"]),
            views=parse_count(labels["views"]),
        )


def _parse_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


__all__ = ["SELECTORS", "Engagement", "TimelinePost", "XError", "XWebClient", "parse_count"]
