"""The ONE posting path for singles, threads and replies (DESIGN.md section 3).

    replay journal -> expire leases -> reconcile unknown items -> for each due item:
        claim -> intent committed -> publish -> confirm (DB retried alone, else journal)

After the click an item can only become `posted` or `unknown`. Unknown items are looked for on the
account's own timeline before anything is posted again: found -> posted with its tweet id; absent on two
checks a settle window apart, once the newest attempt is older than the visibility horizon (X can show a
stored post late) -> queued again; still unclear -> needs_review and an alert. "Absent" needs
evidence: a timeline read that returned posts and reached back past the item's first attempt (or the end
of the timeline); zero posts or a read that stopped short is "unreadable", never "absent". Every retry and
breaker decision reads the error's class from `pipeline.failures`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import dispatch, queue
from pipeline import schema as s
from pipeline.alerts import tell_forced_open
from pipeline.breaker import Breaker
from pipeline.browser import BrowserSession
from pipeline.db import DatabaseError, db_now, worker_id
from pipeline.failures import (
    POLICY,
    ErrorClass,
    OutcomeUnknown,
    PostRejected,
    RateLimited,
    TextMismatch,
    XError,
    backoff_seconds,
    classify,
)
from pipeline.journal import Journal
from pipeline.logs import log_event
from pipeline.media import MediaRef, media_path
from pipeline.settings import Settings
from pipeline.xtimeline import find_post
from pipeline.xweb import XWebClient

log = logging.getLogger("pipeline.posting")
DB_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0)
MAX_UNCLEAR_CHECKS = 6  # timeline unreadable this many times: a human must look


class AlertSender(Protocol):
    def send(self, key: str, title: str, body: str, severity: str = "error") -> bool: ...


class ConfirmationJournalled(RuntimeError):
    """A post went out but the database stayed down: its id is in the journal; the run must fail loudly."""


@dataclass
class PostingReport:
    posted: int = 0
    reconciled: int = 0
    requeued: int = 0
    unknown: int = 0
    needs_review: int = 0
    failed: int = 0
    failed_by_class: dict[str, int] = field(default_factory=dict)
    breaker_states: dict[str, str] = field(default_factory=dict)
    journal_replayed: int = 0
    tweet_ids: list[str] = field(default_factory=list)
    text_mismatches: int = 0
    posted_by_account: dict[str, list[str]] = field(default_factory=dict)  # account -> tweet ids, for the UI
    skipped_busy: list[str] = field(default_factory=list)  # accounts another run was posting for

    def progress(self) -> tuple[int, ...]:
        """Changes whenever a pass did something with an item (a lingering run's guard against busy loops)."""
        return (self.posted, self.reconciled, self.requeued, self.unknown, self.needs_review, self.failed)

    def count_failure(self, error_class: str) -> None:
        self.failed_by_class[error_class] = self.failed_by_class.get(error_class, 0) + 1

    def merge(self, other: PostingReport) -> None:
        """Add another account's report (accounts posting in parallel each keep their own)."""
        for name in ("posted", "reconciled", "requeued", "unknown", "needs_review", "failed", "journal_replayed",
                     "text_mismatches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for error_class, n in other.failed_by_class.items():
            self.failed_by_class[error_class] = self.failed_by_class.get(error_class, 0) + n
        self.breaker_states.update(other.breaker_states)
        self.tweet_ids.extend(other.tweet_ids)
        for account, ids in other.posted_by_account.items():
            self.posted_by_account.setdefault(account, []).extend(ids)
        self.skipped_busy.extend(other.skipped_busy)


def journal_for(settings: Settings) -> Journal:
    return Journal(settings.state_path / "journal.jsonl")


def run_posting(engine: Engine, settings: Settings, browser: BrowserSession, accounts: list[str] | None = None,
                alerts: AlertSender | None = None, breaker: Breaker | None = None,
                wait_s: float = 0.0, sleep: Callable[[float], None] = time.sleep,
                linger_s: float = 0.0, run_max_s: float = math.inf,
                browser_per_account: Callable[[], BrowserSession] | None = None) -> PostingReport:
    """One posting run: reconcile, then post what is due per account until nothing is due, the breaker
    is open or the run's budget is spent. Each account is posted only while this run holds its lease
    (pipeline.dispatch): an account another run is posting for is skipped. With `wait_s` (a dispatched
    run) the run also waits for items due within that many seconds and posts them at their minute; with
    `linger_s` it keeps its browser and polls the account's queue until nothing was due for that long (or
    the run is `run_max_s` old), so posts due meanwhile need no new run. With `browser_per_account` and
    several accounts (a dispatched run packing accounts due together), each account posts on its own
    thread with its own browser, so one account's stall never waits on another's; otherwise the accounts
    take turns on `browser`. Raises ConfirmationJournalled if a confirmation had to be journalled (the run
    must show as failed; the next run replays it)."""
    report = PostingReport()
    clock = _RunClock(engine)
    report.journal_replayed = journal_for(settings).replay(engine)  # before ANY post
    queue.expire_leases(engine)
    breaker = breaker or Breaker(engine)
    handles = accounts or [a["handle"] for a in queue.list_accounts(engine)]
    linger = _Linger(clock, wait_s, linger_s, run_max_s)

    def turn(handle: str, session: BrowserSession, into: PostingReport) -> None:
        _account_turn(engine, settings, session, handle, breaker, alerts, into, linger, sleep)

    if browser_per_account is not None and len(handles) > 1:
        _in_parallel(handles, browser_per_account, turn, report)
    else:
        for handle in handles:
            turn(handle, browser, report)
    for row in breaker.status():
        report.breaker_states[row["account"]] = row["state"]
    return report


def _account_turn(engine: Engine, settings: Settings, browser: BrowserSession, handle: str, breaker: Breaker,
                  alerts: AlertSender | None, report: PostingReport, linger: _Linger,
                  sleep: Callable[[float], None]) -> None:
    """Take the account's lease, post (and linger) for it, release the lease."""
    lease = dispatch.AccountLease(engine, handle, worker_id(), ttl_s=dispatch.account_lease_s(settings.lease_s))
    if not lease.acquire():
        report.skipped_busy.append(handle)
        log_event(log, "account_busy", logging.INFO, account=handle, holder=lease.holder())
        return
    try:
        # A ConfirmationJournalled propagates: the database is down, so nothing more may be posted anywhere.
        _post_account(engine, settings, browser, handle, breaker, alerts, report, lease, linger, sleep)
    except dispatch.AccountBusy as exc:
        log_event(log, "account_lease_lost", logging.WARNING, account=handle, error=str(exc))
    finally:
        try:
            lease.release()
        except (DatabaseError, sa.exc.SQLAlchemyError):  # the database is down: the lease expires by itself
            log_event(log, "account_lease_release_failed", logging.WARNING, account=handle)


def _in_parallel(handles: list[str], browser_per_account: Callable[[], BrowserSession],
                 turn: Callable[[str, BrowserSession, PostingReport], None], report: PostingReport) -> None:
    """One thread and one browser per account (Playwright's sync API is bound to its thread). Every thread
    runs to its end; then the reports merge and the first error (a journalled confirmation first) is raised."""
    reports = {handle: PostingReport() for handle in handles}

    def one(handle: str) -> None:
        with browser_per_account() as session:
            turn(handle, session, reports[handle])

    with ThreadPoolExecutor(max_workers=len(handles), thread_name_prefix="post") as pool:
        futures = [pool.submit(one, handle) for handle in handles]
    for part in reports.values():
        report.merge(part)
    errors = [exc for f in futures if (exc := f.exception()) is not None]
    if errors:
        raise next((e for e in errors if isinstance(e, ConfirmationJournalled)), errors[0])


class _RunClock:
    """The run's start on the database clock (every due time and lease is on that clock, not this host's)."""

    def __init__(self, engine: Engine) -> None:
        with engine.connect() as conn:
            self.started = db_now(conn)


@dataclass(frozen=True)
class _Linger:
    clock: _RunClock
    horizon_s: float  # wait for an item due within this many seconds (the run was started early for it)
    linger_s: float  # after the last due item, keep polling this long
    run_max_s: float  # never run longer than this

    @property
    def active(self) -> bool:
        return self.horizon_s > 0 or self.linger_s > 0


LEASE_RENEW_EVERY_S = 15.0  # while lingering idle: well inside the account lease's lifetime (120 s at most)


def _post_account(engine: Engine, settings: Settings, browser: BrowserSession, handle: str, breaker: Breaker,
                  alerts: AlertSender | None, report: PostingReport, lease: dispatch.AccountLease,
                  linger: _Linger, sleep: Callable[[float], None]) -> None:
    """Post the account's due items; then wait for what falls due within the horizon and linger for new work
    (dispatch.linger_step). An unknown outcome, a breaker that holds the account or a spent budget ends the
    account's turn: the next run reconciles before posting more."""
    poster = AccountPoster(engine, settings, browser, queue.get_account(engine, handle), breaker, alerts, report,
                           keepalive=lease.renew)
    last_active = linger.clock.started
    renewed = time.monotonic()
    idle_pass = False
    while True:
        unknown_before, progress = report.unknown, report.progress()
        poster.run()
        renewed = time.monotonic()  # run() renews the lease before every claim
        if not linger.active or report.unknown > unknown_before or not poster.may_continue:
            return
        if idle_pass and report.progress() == progress:
            sleep(dispatch.LINGER_POLL_S)  # due, but not claimable yet (locked by a claim in flight): no busy loop
        idle_pass = report.progress() == progress
        while True:
            due = dispatch.next_due(engine, handle)
            if due.seconds == 0.0:
                last_active = due.now  # linger counts from the last due item
            step = dispatch.linger_step(
                elapsed_s=(due.now - linger.clock.started).total_seconds(),
                idle_s=(due.now - last_active).total_seconds(), due=due, horizon_s=linger.horizon_s,
                linger_s=linger.linger_s, run_max_s=linger.run_max_s)
            if step.action == "stop":
                log_event(log, "dispatch_run_ends", logging.INFO, account=handle, reason=step.reason)
                return
            if step.action == "post":
                break
            if due.seconds is not None and due.seconds <= linger.horizon_s:
                poster.warm()  # start Chromium and load the session while waiting, not when the item is due
            if time.monotonic() - renewed >= LEASE_RENEW_EVERY_S:
                lease.renew()
                renewed = time.monotonic()
            sleep(step.seconds)
        lease.renew()


class AccountPoster:
    """The protocol for one account within one run."""

    def __init__(self, engine: Engine, settings: Settings, browser: BrowserSession, account: dict[str, Any],
                 breaker: Breaker, alerts: AlertSender | None, report: PostingReport,
                 sleep: Callable[[float], None] = time.sleep, keepalive: Callable[[], None] | None = None) -> None:
        self.engine, self.settings, self.browser = engine, settings, browser
        self.keepalive = keepalive or (lambda: None)
        self.may_continue = True  # False once the breaker holds the account or the run's budget is spent
        self.handle: str = account["handle"]
        self.session_path: str = account["storage_state_path"]
        self.breaker, self.alerts, self.report = breaker, alerts, report
        self.worker = worker_id()
        self.sleep = sleep
        self._client: XWebClient | None = None

    # ------------------------------------------------------------------ plumbing

    def warm(self) -> None:
        """Open the account's page ahead of its next post; a failure here is left to the post to report."""
        if self._client is not None:
            return
        try:
            self.client  # noqa: B018 - the property opens the browser and the account's page
        except Exception as exc:  # noqa: BLE001 - the post itself retries the page and classifies the error
            self.event("browser_warm_failed", logging.WARNING, error=str(exc))

    @property
    def client(self) -> XWebClient:
        if self._client is None:
            page = self.browser.page(self.handle, self.session_path)
            st = self.settings
            self._client = XWebClient(page, st.x_base_url, self.handle, st.nav_timeout_s, st.post_timeout_s,
                                      st.reconcile_timeout_s, st.media_timeout_s)
        return self._client

    def event(self, name: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(log, name, level, account=self.handle, **fields)

    def alert(self, key: str, title: str, body: str) -> None:
        if self.alerts is not None:
            try:
                self.alerts.send(key, title, body)
            except Exception:  # noqa: BLE001 - an alert channel failure must not stop posting
                log.exception("alert delivery failed")

    def tell_forced_open(self) -> None:
        """One alert per forced-open episode of this account (pipeline.alerts.tell_forced_open)."""
        if self.alerts is None:
            return
        try:
            tell_forced_open(self.alerts, self.breaker.status(self.handle))
        except Exception:  # noqa: BLE001 - an alert channel failure must not stop posting
            log.exception("alert delivery failed")

    def _breaker_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Breaker bookkeeping must never turn a post's outcome into a failure."""
        try:
            return fn(*args, **kwargs)
        except (DatabaseError, sa.exc.SQLAlchemyError):
            log.warning("breaker update failed for @%s (database); continuing", self.handle)
            return None

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        status = self.breaker.status(self.handle)  # read only: allow() would take the half-open probe
        if status and status[0]["state"] == "forced_open" and not self._session_recovered(status[0]):
            self.event("breaker_forced_open", logging.WARNING, reason=status[0]["reason"])
            self.tell_forced_open()  # forced open elsewhere (metrics run, `breaker isolate`): told once too
            self.may_continue = False
            return
        self.reconcile_all()
        budget = self.settings.run_budget
        while budget > 0:
            self.keepalive()
            decision = self.breaker.allow(self.handle)
            if not decision.allowed:
                self.event("breaker_holds", reason=decision.reason, retry_at=decision.retry_at)
                self.may_continue = False
                break
            item = queue.claim(self.engine, self.handle, self.settings.lease_s, self.worker)
            if item is None:
                self._breaker_call(self.breaker.release_probe, self.handle, decision)
                break
            budget -= 1
            if not self.post_item(item):
                self.may_continue = False
                break
        else:
            self.may_continue = False  # the run's budget is spent
        self.reconcile_all()  # items that went unknown in this run: the post may be visible already

    def _session_recovered(self, status: dict[str, Any]) -> bool:
        """A breaker forced open by an auth error closes once the session works again (operator re-login)."""
        if not (status.get("reason") or "").startswith("auth"):
            return False
        self.browser.reset_account(self.handle)  # load the (possibly renewed) session file
        self._client = None
        try:
            ok = self.client.check_session()
        except (XError, FileNotFoundError, ValueError):
            ok = False
        if ok:
            self.breaker.reset(self.handle, reason="session check succeeded")
            self.event("breaker_closed_by_session_check")
        return ok

    # ------------------------------------------------------------------ posting one item

    def post_item(self, item: queue.Item) -> bool:
        """Post the item's remaining parts. Returns False when the account must stop for this run."""
        for part in range(item.next_part, len(item.parts)):
            try:
                attempt_id = queue.start_attempt(self.engine, item.id, part, self.worker, self.settings.lease_s)
            except queue.LeaseLost:
                self.event("lease_lost", logging.WARNING, item_id=item.id)
                return True
            fields = {"item_id": item.id, "attempt_id": attempt_id, "part": part}
            self.event("posting", **fields)
            try:
                tweet_id = self.client.post(item.parts[part], in_reply_to=item.reply_target(part),
                                            media=self._part_media(item, part))
            except TextMismatch as exc:
                return self.on_mismatch(item, part, attempt_id, exc)
            except XError as exc:
                return self.on_error(item, part, attempt_id, exc)
            except Exception as exc:  # noqa: BLE001 - unknown timing: treat as maybe-sent, never re-post blindly
                return self.on_error(item, part, attempt_id, OutcomeUnknown(f"unexpected: {exc!r}"))
            item = self.confirm(item, part, tweet_id, attempt_id)
            self._breaker_call(self.breaker.record_success, self.handle)
            self.event("posted", tweet_id=tweet_id, **fields)
        self.report.posted += 1
        return True

    def confirm(self, item: queue.Item, part: int, tweet_id: str, attempt_id: str) -> queue.Item:
        """Record the tweet id, retrying ONLY the database write; if the database stays down, journal it."""
        last: Exception | None = None
        for delay in (0.0, *DB_RETRY_DELAYS_S):
            if delay:
                self.sleep(delay)
            try:
                confirmed = queue.confirm_part(self.engine, item.id, part, tweet_id, attempt_id)
                self.report.tweet_ids.append(tweet_id)
                self.report.posted_by_account.setdefault(self.handle, []).append(tweet_id)
                return confirmed
            except (DatabaseError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                last = exc
                self.event("confirm_retry", logging.WARNING, item_id=item.id, tweet_id=tweet_id, error_class="storage")
        journal_for(self.settings).append({
            "item_id": item.id, "part_index": part, "tweet_id": tweet_id, "attempt_id": attempt_id,
            "account": self.handle, "at": datetime.now(UTC).isoformat(),
        })
        self.event("confirm_journalled", logging.ERROR, item_id=item.id, tweet_id=tweet_id, error_class="storage")
        raise ConfirmationJournalled(
            f"tweet {tweet_id} of item {item.id} is live but the database is unreachable ({last}); "
            "its id is in the journal and the next run records it before posting anything"
        )

    def on_mismatch(self, item: queue.Item, part: int, attempt_id: str, exc: TextMismatch) -> bool:
        """The composer sent other text and X made a post of it: record that live post (it exists; posting
        the part again would be a second post), count it against the account, tell a human, stop the account."""
        fields = {"item_id": item.id, "attempt_id": attempt_id, "part": part, "error_class": str(exc.error_class)}
        self.report.count_failure(str(exc.error_class))
        self.report.text_mismatches += 1
        self.event("post_text_mismatch", logging.ERROR, error=str(exc), tweet_id=exc.tweet_id, **fields)
        if exc.tweet_id:
            item = self.confirm(item, part, exc.tweet_id, attempt_id)
            if item.state == s.POSTED:
                self.report.posted += 1
            else:  # a thread: later parts resume on a later run, replying to the recorded part
                queue.requeue(self.engine, item.id, None, str(exc.error_class), str(exc), penalise=False)
        self._breaker_call(self.breaker.record_failure, self.handle, exc.error_class, detail=str(exc))
        self.alert(f"{exc.error_class}:{self.handle}", f"@{self.handle}: the composer changed a post's text",
                   f"{exc}. Check the post on X and the composer typing, then "
                   f"`pipeline breaker reset --account {self.handle}` if it opened.")
        return False

    def on_error(self, item: queue.Item, part: int, attempt_id: str, exc: XError) -> bool:
        cls = classify(exc, after_click=isinstance(exc, OutcomeUnknown))
        fields = {"item_id": item.id, "attempt_id": attempt_id, "part": part, "error_class": str(cls)}
        self.report.count_failure(str(cls))
        self.event("post_error", logging.WARNING, error=str(exc), **fields)
        policy = POLICY[cls]
        if cls == ErrorClass.UNKNOWN or (isinstance(exc, PostRejected) and exc.is_duplicate):
            queue.mark_unknown(self.engine, item.id, attempt_id, str(cls), str(exc))
            self.report.unknown += 1
            if isinstance(exc, PostRejected):  # 187: our earlier attempt may be the original; look now
                self.reconcile_one(queue.get_item(self.engine, item.id), duplicate_reported=True,
                                   duplicate_reported_by=attempt_id)
                return True
            # The platform just stalled and will likely stall again: stop posting for this account now and
            # reconcile first (the end of this run, then the start of the next).
            return False
        if cls == ErrorClass.REJECTED:
            queue.fail(self.engine, item.id, attempt_id, str(cls), f"X rejected part {part + 1}: {exc}")
            self.report.failed += 1
            return True
        reset_at = exc.reset_at if isinstance(exc, RateLimited) else None
        self._breaker_call(self.breaker.record_failure, self.handle, cls, reset_at=reset_at, detail=str(exc))
        if policy.item_action == "retry":
            failures = item.failures + 1
            state = queue.requeue(self.engine, item.id, attempt_id, str(cls), str(exc),
                                  delay_s=backoff_seconds(failures), penalise=True,
                                  max_failures=self.settings.max_attempts)
            if state == s.NEEDS_REVIEW:
                self.report.needs_review += 1
                self.alert(f"needs_review:{item.id}", f"Item {item.id} for @{self.handle} needs review",
                           f"{failures} transient failures; last: {exc}")
            else:
                self.report.requeued += 1
        else:  # rate limit, auth, automation block, UI change: the account's problem, not the item's
            # Due again at once: the breaker (on the database clock) holds the account until X's reset. A delay
            # computed here from this process's clock would be off by its skew (300 s late for a clock 5 min slow).
            queue.requeue(self.engine, item.id, attempt_id, str(cls), str(exc), delay_s=0.0, penalise=False)
            self.report.requeued += 1
        if policy.breaker_effect == "force_open":
            self.tell_forced_open()
        elif policy.alert:
            self.alert(f"{cls}:{self.handle}", f"@{self.handle}: {cls}, posting paused",
                       f"{exc}. To resume: fix it, then `pipeline breaker reset --account {self.handle}`.")
        # Stop this account for the run unless the error was the item's own transient trouble.
        return cls == ErrorClass.TRANSIENT

    # ------------------------------------------------------------------ reconciliation

    def reconcile_all(self) -> None:
        seen: set[int] = set()
        while True:
            self.keepalive()  # before the claim: a lost account lease leaves nothing claimed behind
            item = queue.claim(self.engine, self.handle, self.settings.lease_s, self.worker,
                               states=(s.UNKNOWN,), due_only=False)
            if item is None or item.id in seen:
                if item is not None:
                    queue.release(self.engine, item.id, self.worker)
                return
            seen.add(item.id)
            self.reconcile_one(item)

    def reconcile_one(self, item: queue.Item, duplicate_reported: bool = False,
                      duplicate_reported_by: str | None = None) -> None:
        """Look for the item's next parts on the timeline; decide posted, queued again or needs_review."""
        fields = {"item_id": item.id}
        not_before = self._first_attempt_at(item.id, item.next_part)
        try:
            read = self.client.read_timeline(not_before=not_before)
        except XError as exc:
            self._unreadable(item, str(exc))
            return
        posts = read.posts
        known = self._recorded_ids({p.tweet_id for p in posts})
        found_any = False
        for part in range(item.next_part, len(item.parts)):
            match = find_post(posts, item.parts[part], known, not_before=self._first_attempt_at(item.id, part),
                              media=item.part_media(part))
            if match is None:
                break
            item = queue.confirm_part(self.engine, item.id, part, match.tweet_id, None, via="reconcile")
            known.add(match.tweet_id)
            found_any = True
            self.report.tweet_ids.append(match.tweet_id)
            self.report.posted_by_account.setdefault(self.handle, []).append(match.tweet_id)
            self.event("reconciled", tweet_id=match.tweet_id, part=part, **fields)
        if item.state == s.POSTED:
            self.report.reconciled += 1
            return
        if found_any:
            # Earlier parts were live; the rest were never sent. Resume the thread from the next part.
            queue.requeue(self.engine, item.id, None, "unknown", "resuming after reconciled parts", penalise=False)
            return
        if not read.complete:
            self._unreadable(item, f"the timeline read ({read.pages} pages) did not reach back to the first attempt")
            return
        if duplicate_reported:
            if self._may_still_show(item, exclude_attempt=duplicate_reported_by):
                # X says our text is already there and an earlier attempt is young enough to be that post, not yet
                # on the timeline: wait for it (a later reconciliation finds it or counts it absent), never fail.
                queue.release(self.engine, item.id, self.worker)
                self.event("reconcile_duplicate_waits", item_id=item.id)
                return
            queue.fail(self.engine, item.id, None, "rejected",
                       "X reports a duplicate (187) and the timeline shows no post from this item")
            self.report.failed += 1
            return
        self._absent(item)

    def _unreadable(self, item: queue.Item, why: str) -> None:
        """No evidence either way: count an unclear check; after MAX_UNCLEAR_CHECKS a human must look."""
        checks = queue.note_absent(self.engine, item.id, self.worker).checks if item.lease_owner == self.worker else 0
        self.event("reconcile_unreadable", logging.WARNING, error=why, item_id=item.id)
        if checks >= MAX_UNCLEAR_CHECKS:
            queue.needs_review(self.engine, item.id, None, "unknown", f"timeline unreadable: {why}")
            self.report.needs_review += 1
            self.alert(f"needs_review:{item.id}", f"Item {item.id} for @{self.handle} needs review",
                       f"its outcome stayed unknown and the timeline could not be read: {why}")
        else:
            queue.release(self.engine, item.id, self.worker)

    def _absent(self, item: queue.Item) -> None:
        """Not on the timeline. Re-queue only after two checks a settle window apart (late commits), and only once
        the part's newest attempt is older than the visibility horizon: X can store a post and show it on the
        timeline much later, and a re-post inside that window would be a second live post."""
        settle = timedelta(seconds=self.settings.reconcile_settle_s)
        check = queue.note_absent(self.engine, item.id, self.worker)
        checks = check.checks
        if (checks >= 2 and check.since_previous is not None and check.since_previous >= settle
                and not self._may_still_show(item)):
            queue.requeue(self.engine, item.id, None, "unknown", "absent from the timeline on two checks",
                          penalise=True, max_failures=self.settings.max_attempts)
            self.report.requeued += 1
            self.event("reconcile_absent_requeued", item_id=item.id)
        else:
            queue.release(self.engine, item.id, self.worker)
            self.event("reconcile_absent_once", item_id=item.id, checks=checks)

    def _recorded_ids(self, candidates: set[str]) -> set[str]:
        """Which of the timeline's ids already belong to some item (never claim one twice)."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(s.tweets.c.tweet_id).where(s.tweets.c.tweet_id.in_(candidates))).scalars())

    def _part_media(self, item: queue.Item, part: int) -> list[tuple[Path, MediaRef]]:
        """The part's media as (file in the content-addressed store, reference)."""
        return [(media_path(self.settings.state_dir, ref.sha256), ref) for ref in item.part_media(part)]

    def _may_still_show(self, item: queue.Item, exclude_attempt: str | None = None) -> bool:
        """Whether an attempt at the item's next part is younger than the visibility horizon (database clock),
        so a post it made may not be on the timeline yet."""
        horizon = timedelta(seconds=self.settings.reconcile_visibility_s)
        a = s.post_attempts.c
        query = sa.select(sa.func.max(a.started_at)).where(a.item_id == item.id, a.part_index == item.next_part)
        if exclude_attempt is not None:
            query = query.where(a.id != exclude_attempt)
        with self.engine.connect() as conn:
            newest = conn.execute(query).scalar()
            return newest is not None and db_now(conn) - newest < horizon

    def _first_attempt_at(self, item_id: int, part: int) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(s.post_attempts.c.started_at))
                .where(s.post_attempts.c.item_id == item_id, s.post_attempts.c.part_index == part)
            ).scalar()

