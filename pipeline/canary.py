"""The canary: load what posting and metrics read from x.com, without posting, and check every selector.

X changes its page without notice; the first sign used to be a failed post. Hourly (and on demand with
`pipeline canary`) each account's composer, own timeline and one status page are loaded and every selector and
response shape the X client relies on is checked. A miss raises the `ui_changed` alert naming the selector, before
any post fails. The canary reads the page through the client's own selector table (`pipeline.xweb.SELECTORS`)
and its reading methods, behind the small `CanaryClient` protocol: when the client's API changes, adapt it here.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from pipeline import queue
from pipeline.browser import BrowserSession
from pipeline.failures import AuthFailed, UiChanged
from pipeline.logs import log_event
from pipeline.settings import Settings
from pipeline.xread import TimelineRead
from pipeline.xweb import SELECTORS, Engagement, TimelinePost, XWebClient, either

log = logging.getLogger("pipeline.canary")

# Where each selector must be found (page path template -> selector names). overlay_close and logged_out are
# optional by nature (present only sometimes) and error_region appears only after a failure: not checked.
COMPOSER_SELECTORS = ("logged_in", "compose_box", "post_button")


class CanaryClient(Protocol):
    """What the canary needs from the X client: its page, and its two reading methods."""

    page: Any
    base_url: str
    handle: str

    def read_timeline(self, not_before: datetime | None = None) -> TimelineRead: ...

    def engagement(self, tweet_id: str) -> Engagement: ...


def read_timeline(client: CanaryClient) -> TimelineRead:
    """The one place the canary calls the timeline reader (adapt here when the client's API changes)."""
    return client.read_timeline()


class AlertSender(Protocol):
    def send(self, key: str, title: str, body: str, severity: str = "error") -> bool: ...


@dataclass
class Miss:
    """One check that failed: `selector` is the CSS the client uses, `page` where it was looked for."""

    check: str
    selector: str
    page: str
    detail: str


@dataclass
class AccountCanary:
    account: str
    checked: list[str] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    error: str | None = None  # not a page change: logged out, page did not load

    @property
    def ok(self) -> bool:
        return not self.misses


@dataclass
class CanaryReport:
    accounts: list[AccountCanary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.accounts)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "accounts": [asdict(a) for a in self.accounts]}

    def render(self) -> str:
        lines = []
        for a in self.accounts:
            state = "ok" if a.ok and not a.error else ("UI CHANGED" if a.misses else "not checked")
            lines.append(f"@{a.account}: {state} ({len(a.checked)} checks)" + (f"; {a.error}" if a.error else ""))
            lines += [f"  miss {m.check} on {m.page}: {m.selector} ({m.detail})" for m in a.misses]
        return "\n".join(lines) or "no accounts registered"


def check_account(client: CanaryClient, timeout_s: float) -> AccountCanary:
    """Composer, timeline and one status page of one account; never posts."""
    result = AccountCanary(client.handle)
    timeout_ms = timeout_s * 1000
    try:
        _composer(client, result, timeout_ms)
        posts = _timeline(client, result, timeout_ms)
        if posts:
            _status_page(client, result, posts[0])
    except AuthFailed as exc:
        result.error = f"logged out, nothing checked: {exc}"
    except UiChanged as exc:
        result.misses.append(Miss("page", exc.selector or "", client.page.url, str(exc)))
    except Exception as exc:  # noqa: BLE001 - a page that did not load is not a page change: reported, not alerted
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    return result


def _visible(client: CanaryClient, name: str, timeout_ms: float) -> bool:
    try:
        client.page.locator(either(name)).first.wait_for(state="attached", timeout=timeout_ms)
        return True
    except Exception:  # noqa: BLE001 - Playwright's timeout: the selector matched nothing
        return False


def _composer(client: CanaryClient, result: AccountCanary, timeout_ms: float) -> None:
    page_path = "/home"
    client.page.goto(client.base_url + page_path, wait_until="domcontentloaded", timeout=timeout_ms * 3)
    if "/i/flow/login" in client.page.url:
        raise AuthFailed(f"@{client.handle}'s session is not logged in")
    for name in COMPOSER_SELECTORS:
        result.checked.append(f"composer:{name}")
        if not _visible(client, name, timeout_ms):
            result.misses.append(Miss(f"composer:{name}", either(name), page_path, f"no {name.replace('_', ' ')}"))


def _timeline(client: CanaryClient, result: AccountCanary, timeout_ms: float) -> list[TimelinePost]:
    result.checked.append("timeline:read")
    read = read_timeline(client)
    posts = read.posts
    result.checked.append("timeline:json")
    if not read.exact:  # the page showed posts but no timeline response the client could parse
        result.misses.append(Miss("timeline:json", "UserTweetsAndReplies GraphQL response", client.page.url,
                                  "no timeline JSON the client can read; it fell back to the page's text"))
    # Every post row needs the permalink the DOM reader takes its id from (other accounts' parents included:
    # the JSON keeps only this account's posts, so the two counts are not compared).
    permalink = ':has(a[href*="/status/"] time)'
    shown = client.page.locator(either("tweet")).count()
    linked = client.page.locator(either("tweet") + permalink).count()
    result.checked.append("timeline:tweet_ids")
    if shown and linked < shown:
        result.misses.append(Miss("timeline:tweet_ids", either("tweet") + ' a[href*="/status/"] time', client.page.url,
                                  f"{shown} tweets shown, {linked} with a status link the client can read"))
    return posts


def _status_page(client: CanaryClient, result: AccountCanary, post: TimelinePost) -> None:
    result.checked.append("status:engagement")
    counts = client.engagement(post.tweet_id)  # raises UiChanged when the tweet article is missing
    has_like = client.page.locator(either("tweet") + ' [data-testid="like"]').count() > 0
    result.checked.append("status:like_label")
    if not has_like:
        result.misses.append(Miss("status:like_label", either("tweet") + ' [data-testid="like"]', client.page.url,
                                  f"no like button with an aria-label (read {counts.likes} likes)"))


def alert_misses(alerts: AlertSender, result: AccountCanary) -> int:
    """One `ui_changed` alert per account and selector (de-duplicated by the alert key's cool-down)."""
    sent = 0
    for miss in result.misses:
        sent += bool(alerts.send(
            key=f"ui_changed:{result.account}:{miss.check}",
            title=f"X page changed: {miss.check} not found for @{result.account}",
            body=(f"The canary found no `{miss.selector}` on {miss.page} ({miss.detail}). Posting or metrics for "
                  f"@{result.account} will fail with ui_changed until the client matches the page: update SELECTORS "
                  "in pipeline/xweb.py, then run `pipeline canary` to confirm."),
            severity="error"))
    return sent


def run_canary(engine: Engine, settings: Settings, browser: BrowserSession, alerts: AlertSender | None = None,
               accounts: list[str] | None = None) -> CanaryReport:
    """Check every (or the named) registered account; alert each miss."""
    report = CanaryReport()
    rows = {a["handle"]: a for a in queue.list_accounts(engine)}
    for handle in accounts or sorted(rows):
        if handle not in rows:
            raise ValueError(f"no account @{handle}; see `pipeline accounts list`")
        page = browser.page(handle, rows[handle]["storage_state_path"])
        client = XWebClient(page, settings.x_base_url, handle, settings.canary_timeout_s, settings.post_timeout_s,
                            settings.canary_timeout_s)
        result = check_account(client, settings.canary_timeout_s)
        report.accounts.append(result)
        log_event(log, "canary", logging.WARNING if result.misses else logging.INFO, account=handle,
                  checks=len(result.checked), misses=[m.check for m in result.misses], error=result.error)
        if alerts is not None and result.misses:
            alert_misses(alerts, result)
    return report


__all__ = ["SELECTORS", "CanaryClient", "CanaryReport", "check_account", "run_canary"]
