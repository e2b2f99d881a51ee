"""The one error taxonomy (DESIGN.md section 4): every exception is classified once, here.

The predecessor let each posting class invent its own errors and retries, and its breaker opened on any
five failures. Here the X web client raises typed `XError`s, `classify` maps every other exception (browser,
database, unexpected) onto an `ErrorClass`, and `POLICY` says what the item and the breaker do about it.
Nothing outside this module decides whether an error means "retry", "reconcile" or "give up".
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

import sqlalchemy.exc as sa_exc

from pipeline.db import DatabaseError

try:  # Playwright is a hard dependency, but classification must not fail where it is absent.
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover
    PlaywrightError = None  # type: ignore[assignment,misc]


class ErrorClass(StrEnum):
    """What went wrong, in the terms retry and breaker decisions need (stored in `error_class` columns)."""

    TRANSIENT = "transient"  # nothing was sent: safe to retry
    UNKNOWN = "unknown"  # maybe sent: reconcile before anything else
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    AUTOMATION_BLOCK = "automation_block"
    REJECTED = "rejected"  # X refused this content; retrying the same text cannot help
    UI_CHANGED = "ui_changed"  # our client no longer matches the page
    STORAGE = "storage"  # our database, not X
    TEXT_MISMATCH = "text_mismatch"  # the composer sent other text than we meant: never a success


# --------------------------------------------------------------------------------------------- exceptions


class XError(Exception):
    """Base of every error the X web client raises; the subclass fixes the class, so no caller guesses."""

    error_class: ClassVar[ErrorClass] = ErrorClass.TRANSIENT

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        suffix = f" (code {self.code})" if self.code is not None else ""
        return f"{self.message or type(self).__name__}{suffix}"


class NothingSent(XError):
    """The post certainly did not reach X (navigation error, 5xx, crash before the click): retry is safe."""

    error_class = ErrorClass.TRANSIENT


class OutcomeUnknown(XError):
    """Timeout or crash after the click: X may have stored the post, so it must be reconciled, never re-posted."""

    error_class = ErrorClass.UNKNOWN


class RateLimited(XError):
    """HTTP 429, code 88 or a daily cap; `reset_at` is when X says the limit lifts (None if it did not say)."""

    error_class = ErrorClass.RATE_LIMITED

    def __init__(self, message: str = "", code: int | None = None, reset_at: datetime | None = None) -> None:
        super().__init__(message, code)
        self.reset_at = reset_at


class AuthFailed(XError):
    """Session expired, CSRF mismatch, account locked or suspended: a human has to look."""

    error_class = ErrorClass.AUTH


class AutomationBlocked(XError):
    """Code 226, "looks like it might be automated": back off for a long time."""

    error_class = ErrorClass.AUTOMATION_BLOCK


class PostRejected(XError):
    """X refused this content (duplicate, too long, reply target gone, policy); the account itself is fine."""

    error_class = ErrorClass.REJECTED

    def __init__(self, message: str = "", code: int | None = None, is_duplicate: bool | None = None) -> None:
        super().__init__(message, code)
        # 187 may be our own earlier attempt that we never heard back from: reconcile before failing the item.
        self.is_duplicate = (code == DUPLICATE_CODE) if is_duplicate is None else is_duplicate


class TextMismatch(XError):
    """The CreateTweet request carried other text than intended (the composer mangled it). Never a success:
    a post X made from it (`tweet_id`) is recorded like any live post, and a human is told."""

    error_class = ErrorClass.TEXT_MISMATCH

    def __init__(self, message: str = "", sent_text: str | None = None, tweet_id: str | None = None) -> None:
        super().__init__(message)
        self.sent_text = sent_text
        self.tweet_id = tweet_id


class UiChanged(XError):
    """A selector the client relies on is missing after retries: X changed its page, our client must change."""

    error_class = ErrorClass.UI_CHANGED

    def __init__(self, message: str = "", selector: str | None = None, code: int | None = None) -> None:
        super().__init__(message or f"selector not found: {selector}", code)
        self.selector = selector


# --------------------------------------------------------------------------------- X GraphQL error mapping

DUPLICATE_CODE = 187
RATE_LIMIT_CODES = frozenset({88, 185, 344})  # 88 rate limit, 185/344 daily update limit
AUTH_CODES = frozenset({32, 353, 326, 37, 64})  # cannot authenticate, csrf mismatch, locked, suspended
AUTOMATION_CODES = frozenset({226})
# Over capacity, internal error, timeout, load shed: whether the post was stored is not known (reference 3).
UNKNOWN_OUTCOME_CODES = frozenset({130, 131, 29, -1})
# Duplicate, too long, no such status, media, reply target gone or reply restricted: this content's fault.
REJECTED_CODES = frozenset({DUPLICATE_CODE, 144, 170, 186, 324, 385, 433})

_CODE_IN_MESSAGE = re.compile(r"\((\d{2,4})\)\s*$")


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """Header lookup that ignores case (Playwright lower-cases names, other clients do not)."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return None if value is None else str(value)
    return None


def parse_reset_at(headers: Mapping[str, Any] | None, now: datetime | None = None) -> datetime | None:
    """When the rate limit lifts: `x-rate-limit-reset` (epoch seconds), else `retry-after` (seconds)."""
    raw = _header(headers, "x-rate-limit-reset")
    if raw is not None:
        try:
            epoch = float(raw.strip())
        except ValueError:
            epoch = None
        if epoch is not None and epoch > 0:
            if epoch > 1e11:  # milliseconds, not seconds: never read as the year 50000
                epoch /= 1000.0
            try:
                return datetime.fromtimestamp(epoch, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    raw = _header(headers, "retry-after")
    if raw is not None and raw.strip().isdigit():
        return (now or datetime.now(UTC)) + timedelta(seconds=int(raw.strip()))
    return None


def _error_code(err: Mapping[str, Any]) -> int | None:
    """X puts the code in `code`, `extensions.code`, or only in the message ("... (187)")."""
    candidates: list[Any] = [err.get("code")]
    ext = err.get("extensions")
    if isinstance(ext, Mapping):
        candidates.append(ext.get("code"))
    for value in candidates:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    match = _CODE_IN_MESSAGE.search(str(err.get("message") or ""))
    return int(match.group(1)) if match else None


def created_rest_id(body: Any) -> str | None:
    """The created post's id, with `TweetWithVisibilityResults` unwrapped (`result.tweet.rest_id`)."""
    try:
        result = body["data"]["create_tweet"]["tweet_results"]["result"]
        if isinstance(result, Mapping) and "rest_id" not in result and isinstance(result.get("tweet"), Mapping):
            result = result["tweet"]
        rest_id = result["rest_id"]
    except (KeyError, TypeError):
        return None
    return str(rest_id) if rest_id and str(rest_id).isdigit() else None


def graphql_error(
    status: int, body: Mapping[str, Any] | None, headers: Mapping[str, Any] | None, *, now: datetime | None = None
) -> XError | None:
    """Map an X GraphQL response (status, JSON body, headers) to the typed error it means; None on success.

    X reports most errors in the body with HTTP 200, so codes are read first and the status decides only
    when the body says nothing. A body that carries a created tweet's `rest_id` is a success whatever else
    it contains: the post exists, and calling it an error would lose its id. The request has left, so
    anything unclear (5xx, codes 130/131/29/-1, a code we do not know) is `OutcomeUnknown`: reconcile.
    """
    body = body if isinstance(body, Mapping) else None
    if body is not None and created_rest_id(body):
        return None
    raw_errors = body.get("errors") if body is not None else None
    errors = [e for e in raw_errors if isinstance(e, Mapping)] if isinstance(raw_errors, list) else []
    coded = [(_error_code(e), str(e.get("message") or "")) for e in errors]
    codes = {code for code, _ in coded if code is not None}

    def message_for(wanted: frozenset[int] | set[int]) -> tuple[int | None, str]:
        for code, message in coded:
            if code in wanted:
                return code, message
        return None, ""

    if status == 429 or codes & RATE_LIMIT_CODES:
        code, message = message_for(RATE_LIMIT_CODES)
        return RateLimited(message or f"rate limited (HTTP {status})", code or 88, parse_reset_at(headers, now))
    if codes & AUTH_CODES:
        code, message = message_for(AUTH_CODES)
        return AuthFailed(message or "authentication failed", code)
    if codes & AUTOMATION_CODES:
        code, message = message_for(AUTOMATION_CODES)
        return AutomationBlocked(message or "this request looks like it might be automated", code)
    if codes & REJECTED_CODES:
        # 187 first: a duplicate is answered by reconciliation, other rejections fail the item.
        code, message = message_for({DUPLICATE_CODE}) if DUPLICATE_CODE in codes else message_for(REJECTED_CODES)
        return PostRejected(message or "post rejected", code)
    if codes & UNKNOWN_OUTCOME_CODES:
        code, message = message_for(UNKNOWN_OUTCOME_CODES)
        return OutcomeUnknown(f"{message or 'X error'}: the post may have been stored", code)
    if status == 401 or (status == 403 and not codes):
        # A bare 403 is an expired or banned session (twscrape reads it so), not a verdict on the content.
        return AuthFailed(coded[0][1] if coded else f"HTTP {status} without an error code: the session was refused",
                          coded[0][0] if coded else None)
    if 300 <= status < 400:
        location = _header(headers, "location") or ""
        if "login" in location:
            return AuthFailed(f"redirected to {location}")
        return OutcomeUnknown(f"unexpected redirect (HTTP {status}) to {location or '?'} after the post was sent")
    if errors:
        code, message = coded[0]
        return OutcomeUnknown(f"{message or 'X error'} (a code we do not know): the post may have been stored", code)
    if status >= 400:
        return OutcomeUnknown(f"X answered HTTP {status} after the post was sent; it may have been stored")
    return None


# -------------------------------------------------------------------------------------------- classify


def _classify_one(exc: BaseException) -> ErrorClass | None:
    if isinstance(exc, XError):
        return exc.error_class
    if isinstance(exc, DatabaseError | sa_exc.DBAPIError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return ErrorClass.STORAGE
    # A raw driver error that escaped SQLAlchemy's wrapping is still the database's.
    module = type(exc).__module__ or ""
    if module.startswith(("sqlite3", "psycopg2", "psycopg")) and isinstance(exc, Exception):
        return ErrorClass.STORAGE
    return None


def classify(exc: BaseException, after_click: bool = False) -> ErrorClass:
    """The class of any exception, decided once.

    Typed client errors and database errors carry their class regardless of timing. Anything else (an
    unwrapped Playwright timeout, a bug) depends on when it happened: before the click nothing was sent
    (transient); after the click the post may exist (unknown), so it must never be retried blindly.
    Explicit causes (`raise ... from exc`) are followed, so wrapping an error does not change its class.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify_one(current)
        if found is not None:
            return found
        current = current.__cause__
    return ErrorClass.UNKNOWN if after_click else ErrorClass.TRANSIENT


def is_playwright_error(exc: BaseException) -> bool:
    """True for Playwright's Error and TimeoutError (the client wraps post-click ones as OutcomeUnknown)."""
    return PlaywrightError is not None and isinstance(exc, PlaywrightError)


# ---------------------------------------------------------------------------------------------- policy

ItemAction = Literal["retry", "reconcile", "requeue_no_penalty", "fail", "retry_db_only", "record_live"]
BreakerEffect = Literal["count", "ignore", "open_until_reset", "force_open", "open_long"]


@dataclass(frozen=True)
class Policy:
    """What one error class does to the item and to the account's breaker (DESIGN.md section 4)."""

    item_action: ItemAction
    breaker_weight: float
    breaker_effect: BreakerEffect
    alert: bool


POLICY: dict[ErrorClass, Policy] = {
    # Nothing sent: retry with backoff; counts, but lightly (one flaky navigation is not an outage).
    ErrorClass.TRANSIENT: Policy("retry", 0.5, "count", False),
    # Maybe sent: reconcile against the timeline; a slow platform is not a broken one, so it never counts.
    ErrorClass.UNKNOWN: Policy("reconcile", 0.0, "ignore", False),
    # The platform said "later": requeue without spending an attempt; open until X's reset.
    ErrorClass.RATE_LIMITED: Policy("requeue_no_penalty", 0.0, "open_until_reset", False),
    # The session is gone: nothing will work until a human logs in again.
    ErrorClass.AUTH: Policy("requeue_no_penalty", 0.0, "force_open", True),
    # X thinks we are a bot: nothing posts until a human has looked and reset the breaker (issue 4).
    ErrorClass.AUTOMATION_BLOCK: Policy("requeue_no_penalty", 0.0, "force_open", True),
    # The content's fault, not the account's: fail the item with its reason (187: reconcile first).
    ErrorClass.REJECTED: Policy("fail", 0.0, "ignore", False),
    # Our client no longer fits the page: every post will fail the same way, so it counts heavily.
    ErrorClass.UI_CHANGED: Policy("requeue_no_penalty", 2.0, "count", True),
    # Our database, not X: retry the DB operation only, never the post.
    ErrorClass.STORAGE: Policy("retry_db_only", 0.0, "ignore", False),
    # The composer sent other text: a post it made is recorded as live; our typing is broken, so it counts
    # like a changed page and a human is told.
    ErrorClass.TEXT_MISMATCH: Policy("record_live", 2.0, "count", True),
}


def policy_for(exc: BaseException, after_click: bool = False) -> Policy:
    return POLICY[classify(exc, after_click)]


def item_action(exc: BaseException, after_click: bool = False) -> ItemAction:
    """The item's next step; a 187 duplicate is reconciled first, as it may be our own unconfirmed post."""
    if isinstance(exc, PostRejected) and exc.is_duplicate:
        return "reconcile"
    return policy_for(exc, after_click).item_action


# --------------------------------------------------------------------------------------------- backoff


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def backoff_seconds(failures: int, base: float = 5.0, cap: float = 900.0, rng: _Uniform = random) -> float:
    """Delay before retry number `failures` (1 = first retry): uniform in [0, min(cap, base * 2**(failures-1))].

    Full jitter (AWS): spreads retries from many items and processes so they do not hit X in lockstep.
    """
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be non-negative")
    exponent = min(max(failures - 1, 0), 62)  # no float overflow for absurd failure counts
    ceiling = min(cap, base * (2.0**exponent))
    return rng.uniform(0.0, ceiling)
