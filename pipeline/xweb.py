"""The X web client: drives one Playwright page of one logged-in account. Knows nothing of the database.

- Text is typed as key events (Draft.js ignores text that did not arrive as input), and the CreateTweet
  request's `variables.tweet_text` is compared with the intended text before the response is trusted.
- The tweet id comes from the `CreateTweet` network response, never from polling the DOM.
- The account's own posts are read from the timeline's GraphQL responses the page loads (`pipeline.xtimeline`
  parses them); only when none arrives is the text rebuilt from the DOM (marked inexact).
- Every failure leaves as a typed error from `pipeline.failures`, with the one distinction that matters:
  did the request leave the browser? Before it did, the error is `NothingSent` (safe to retry); after, a
  timeout or crash is `OutcomeUnknown` (reconcile, never re-post).
- Selectors live in one table with the fallbacks X uses. The same client runs against x.com and the
  sandbox: only the base URL differs.
"""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from pipeline.failures import (
    AuthFailed,
    NothingSent,
    OutcomeUnknown,
    TextMismatch,
    UiChanged,
    XError,
    created_rest_id,
    graphql_error,
)
from pipeline.media import MediaRef
from pipeline.xread import (
    Engagement,
    TimelineRead,
    TimelineUnreadable,
    XReader,
    first_line,
    parse_count,
    parse_group_label,
)
from pipeline.xtimeline import TimelinePost

SELECTORS: dict[str, tuple[str, ...]] = {
    "compose_box": ('[data-testid="tweetTextarea_0"]', 'div[role="textbox"][contenteditable="true"]'),
    "post_button": ('[data-testid="tweetButtonInline"]', '[data-testid="tweetButton"]'),
    "logged_in": ('[data-testid="primaryColumn"]', '[data-testid="SideNav_AccountSwitcher_Button"]'),
    "logged_out": ('[data-testid="loginButton"]', 'a[href="/i/flow/login"]'),
    "overlay_close": ('[data-testid="app-bar-close"]', '[data-testid="confirmationSheetCancel"]', '[data-testid="mask"]'),
    "tweet": ('article[data-testid="tweet"]',),
    "error_region": ('[aria-live="assertive"]',),
    "typeahead": ('[data-testid="typeaheadDropdownWrapped"]', '[role="listbox"]'),
    "file_input": ('input[data-testid="fileInput"]',),
    "attachment": ('[data-testid="attachments"] [data-media-state]',),
    "alt_button": ('[data-testid="altTextLabel"]',),
    "alt_input": ('[data-testid="altTextInput"]', 'textarea[name="altText"]'),
    "alt_save": ('[data-testid="endEditingButton"]',),
}
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif",
              "video/mp4": ".mp4", "video/quicktime": ".mov"}  # fmt: skip
LOGIN_PATH = "/i/flow/login"
CREATE_TWEET = re.compile(r"/i/api/graphql/[^/]+/CreateTweet")
def either(name: str) -> str:
    """One CSS selector matching any of the fallbacks for `name`."""
    return ", ".join(SELECTORS[name])


class XWebClient(XReader):
    """Posts, reads its own timeline and reads engagement for ONE account on ONE reused page."""

    def __init__(self, page: Any, base_url: str, handle: str, nav_timeout_s: float = 30.0,
                 post_timeout_s: float = 20.0, reconcile_timeout_s: float = 30.0,
                 media_timeout_s: float = 180.0) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.handle = handle
        self.nav_timeout_ms = nav_timeout_s * 1000
        self.post_timeout_ms = post_timeout_s * 1000
        self.reconcile_timeout_ms = reconcile_timeout_s * 1000
        self.media_timeout_ms = media_timeout_s * 1000

    # ------------------------------------------------------------------ navigation

    def _goto(self, path: str, timeout_ms: float | None = None) -> Any:
        """Navigate, and turn a login redirect into AuthFailed. Nothing has been sent at this point."""
        try:
            response = self.page.goto(self.base_url + path, wait_until="domcontentloaded",
                                      timeout=timeout_ms or self.nav_timeout_ms)
        except PlaywrightTimeout as exc:
            raise NothingSent(f"page {path} did not load in time: {first_line(exc)}") from exc
        except PlaywrightError as exc:
            raise NothingSent(f"navigation to {path} failed: {first_line(exc)}") from exc
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
            raise NothingSent(f"page failed while looking for {name}: {first_line(exc)}") from exc
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

    def post(self, text: str, in_reply_to: str | None = None,
             media: Sequence[tuple[Path, MediaRef]] = ()) -> str:
        """Publish one post (a reply when `in_reply_to` is set) with its media and return its tweet id.

        Media are attached first (X uploads them while the text is typed), then their alt text is set, and the
        Post click waits until every upload is processed: a failed or endless upload is NothingSent.
        Raises TextMismatch (with the id of any post X made) when the request carried other text or another
        number of media than intended."""
        # X redirects /i/status/<id> to the canonical /<author>/status/<id>, whose reply box we use.
        self._goto(f"/i/status/{in_reply_to}" if in_reply_to else "/home")
        self._dismiss_overlays()
        box = self._find("compose_box", self.nav_timeout_ms)
        button = self._find("post_button", min(self.nav_timeout_ms, 10_000))
        intended = unicodedata.normalize("NFC", text)
        # The store names files by hash alone and the browser takes a file's type from its name's extension, so
        # the files are handed over as named links, kept until the browser has read them (the upload is done).
        with tempfile.TemporaryDirectory(prefix="pipeline-media-") as folder:
            if media:
                self._attach(media, Path(folder))
            self._type(box, intended)
            if media:
                self._describe(media)
                self._wait_uploaded(len(media))

        sent: list[Any] = []

        def on_request(request: Any) -> None:
            if request.method == "POST" and CREATE_TWEET.search(request.url):
                sent.append(request)

        self.page.on("request", on_request)
        try:
            response = self._click_and_wait(button, sent)
        finally:
            self.page.remove_listener("request", on_request)
        typed = _tweet_text(sent[-1]) if sent else None
        if typed is not None and unicodedata.normalize("NFC", typed) != intended:
            self._raise_mismatch(response, intended, typed)
        carried = _media_count(sent[-1]) if sent else None
        if carried is not None and carried != len(media):
            self._raise_mismatch(response, f"{intended} [+{len(media)} media]", f"{typed} [+{carried} media]")
        return self._read_created(response)

    # ------------------------------------------------------------------ media

    def _attach(self, media: Sequence[tuple[Path, MediaRef]], folder: Path) -> None:
        """Hand the files to the composer's file input at once (as a person picks several in the dialog)."""
        missing = [str(path) for path, _ in media if not Path(path).is_file()]
        if missing:
            raise NothingSent(f"media file(s) missing from the store: {', '.join(missing)}")
        try:
            file_input = self.page.locator(either("file_input")).first
            file_input.wait_for(state="attached", timeout=min(self.nav_timeout_ms, 10_000))
            named = []
            for number, (path, ref) in enumerate(media):
                link = folder / f"{number}-{ref.sha256[:12]}{EXTENSIONS.get(ref.mime, '')}"
                link.symlink_to(Path(path).resolve())
                named.append(str(link))
            file_input.set_input_files(named, timeout=self.media_timeout_ms)
        except PlaywrightTimeout as exc:
            raise UiChanged("no media file input in the composer", selector=either("file_input")) from exc
        except PlaywrightError as exc:
            raise NothingSent(f"could not attach media: {first_line(exc)}") from exc

    def _describe(self, media: Sequence[tuple[Path, MediaRef]]) -> None:
        """Alt text through each attachment's description editor (a plain textarea, so `fill` is taken)."""
        try:
            for number, (_, ref) in enumerate(media):
                if not ref.alt:
                    continue
                self.page.locator(either("attachment")).nth(number).locator(either("alt_button")).click(timeout=5000)
                editor = self.page.locator(either("alt_input")).first
                editor.fill(ref.alt, timeout=5000)
                self.page.locator(either("alt_save")).first.click(timeout=5000)
        except PlaywrightError as exc:
            raise NothingSent(f"could not set the media description: {first_line(exc)}") from exc

    def _wait_uploaded(self, count: int) -> None:
        """Until X has uploaded and processed every attachment (the composer's state, fed by FINALIZE/STATUS)."""
        selector = either("attachment")
        try:
            self.page.wait_for_function(
                """([sel, n]) => {
                    const atts = Array.from(document.querySelectorAll(sel));
                    return atts.some(a => a.getAttribute('data-media-state') === 'failed')
                        || (atts.length === n && atts.every(a => a.getAttribute('data-media-state') === 'ready'));
                }""",
                arg=[selector, count], timeout=self.media_timeout_ms, polling=100,
            )
            seen = self.page.eval_on_selector_all(
                selector, "els => els.map(e => [e.getAttribute('data-media-state'), e.getAttribute('data-media-error')])")
            states = [state for state, _ in seen]
        except PlaywrightTimeout as exc:
            raise NothingSent(
                f"X did not finish uploading and processing the media within {self.media_timeout_ms / 1000:g}s"
            ) from exc
        except PlaywrightError as exc:
            raise NothingSent(f"browser failed while the media uploaded: {first_line(exc)}") from exc
        if "failed" in states:
            detail = "; ".join(error for state, error in seen if state == "failed" and error)
            raise NothingSent(f"X failed to upload or process the media: {self._error_text()} ({detail})")
        if len(states) != count:
            raise NothingSent(f"the composer holds {len(states)} media instead of {count}")

    def _type(self, box: Any, text: str) -> None:
        """Type as a person does: key events per line, Enter between lines (Draft.js ignores `fill`)."""
        try:
            box.click(timeout=5000)
            for number, line in enumerate(text.split("\n")):
                if number:
                    self._close_typeahead()  # Enter in an open @mention list would pick a suggestion
                    self.page.keyboard.press("Enter")
                if line:
                    self.page.keyboard.type(line)
        except PlaywrightError as exc:
            raise NothingSent(f"could not type into the composer: {first_line(exc)}") from exc

    def _close_typeahead(self) -> None:
        if self.page.locator(either("typeahead")).count():
            self.page.keyboard.press("Escape")

    def _raise_mismatch(self, response: Any, intended: str, typed: str) -> None:
        """The request carried other text: never a success. A post X made is reported with its id."""
        try:
            tweet_id = created_rest_id(response.json())
        except Exception:  # noqa: BLE001 - no readable id: the outcome is unknown, reconciliation decides
            tweet_id = None
        detail = f"the composer sent {typed[:80]!r} instead of {intended[:80]!r}"
        if tweet_id is None:
            raise OutcomeUnknown(f"{detail}; no post id came back")
        raise TextMismatch(f"{detail}; X made post {tweet_id}", sent_text=typed, tweet_id=tweet_id)

    def _click_and_wait(self, button: Any, sent: list[Any]) -> Any:
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
                raise OutcomeUnknown(f"browser failed after the post was sent: {first_line(exc)}") from exc
            raise NothingSent(f"browser failed before the post was sent: {first_line(exc)}") from exc

    def _read_created(self, response: Any) -> str:
        """The request has left: anything but a clear id or a clear typed error is an unknown outcome."""
        try:
            body = response.json()
        except Exception as exc:  # noqa: BLE001 - any unreadable body after a sent request is an unknown outcome
            error = graphql_error(response.status, None, response.headers)
            if isinstance(error, AuthFailed):
                raise error from exc
            raise OutcomeUnknown(f"CreateTweet answered HTTP {response.status} without JSON; the post may be live") from exc
        error = graphql_error(response.status, body, response.headers)
        if error is not None:
            raise error
        tweet_id = created_rest_id(body)
        if tweet_id is None:
            raise OutcomeUnknown("CreateTweet answered without a rest_id (empty tweet_results); the post may be live")
        return tweet_id

    def _error_text(self) -> str:
        try:
            region = self.page.locator(either("error_region"))
            return region.first.inner_text(timeout=500).strip() if region.count() else ""
        except PlaywrightError:
            return ""


def _media_count(request: Any) -> int | None:
    """How many media a CreateTweet request carried (None when the body is not the JSON we know)."""
    try:
        entities = json.loads(request.post_data or "")["variables"]["media"]["media_entities"]
    except (ValueError, KeyError, TypeError):
        return None
    return len(entities) if isinstance(entities, list) else None


def _tweet_text(request: Any) -> str | None:
    """`variables.tweet_text` of a CreateTweet request (None when the body is not the JSON we know)."""
    try:
        body = json.loads(request.post_data or "")
        value = body["variables"]["tweet_text"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


__all__ = ["SELECTORS", "Engagement", "TimelinePost", "TimelineRead", "TimelineUnreadable", "XError", "XWebClient",
           "parse_count", "parse_group_label"]
