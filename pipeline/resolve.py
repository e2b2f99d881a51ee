"""The human loop: what an operator decides about an item the pipeline could not settle on its own.

    needs_review | unknown | queued | failed --tweet-id--> posted   (the post is live: record its ids)
    needs_review | unknown               --requeue--->  queued   (it is not live: post it again)
    queued | needs_review | failed | pending_approval | unknown --cancel--> cancelled
    pending_approval                     --approve--->  queued

Every decision is one transaction that also writes a `resolutions` row (what, from which state, when, why,
who). A decision the item's state does not allow is refused with `ResolveError`, nothing written. When a
post may be live (an attempt's outcome is unknown or pending, or the item is `unknown`), requeue and cancel
need `checked=True`: the operator says they looked at the account and the post is not there; the refusal
lists the evidence so they know what to look for.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline import queue
from pipeline import schema as s
from pipeline.db import db_now, transaction
from pipeline.media import media_key

items = s.content_items
TWEET_ID = re.compile(r"^[0-9]{1,19}$")  # X's snowflake ids: up to 19 decimal digits
RECORDABLE = (s.NEEDS_REVIEW, s.UNKNOWN, s.QUEUED, s.FAILED)
REQUEUEABLE = (s.NEEDS_REVIEW, s.UNKNOWN)
CANCELLABLE = (s.QUEUED, s.NEEDS_REVIEW, s.FAILED, s.PENDING_APPROVAL, s.UNKNOWN)
MAYBE_LIVE_OUTCOMES = ("unknown", "pending")


class ResolveError(ValueError):
    """A decision the item's state does not allow, or bad input; nothing was written."""


@dataclass
class Evidence:
    """What the pipeline knows about whether an item's post is live."""

    item: queue.Item
    attempts: list[dict[str, Any]] = field(default_factory=list)
    resolutions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def maybe_live(self) -> bool:
        return self.item.state == s.UNKNOWN or any(a["outcome"] in MAYBE_LIVE_OUTCOMES for a in self.attempts)

    def lines(self) -> list[str]:
        """Human-readable evidence, one fact a line (queue listing and refusals)."""
        i = self.item
        out = [f"state {i.state}; {i.attempts} attempt(s) started, {i.failures} failure(s) since the last posted part; "
               f"parts posted {len(i.tweet_ids)}/{len(i.parts)}"
               + (f" (tweet ids {', '.join(i.tweet_ids)})" if i.tweet_ids else "")]
        if i.last_error:
            out.append(f"last error [{i.error_class}]: {i.last_error[:200]}")
        out.append(f"reconciliation: {i.unknown_checks} timeline check(s) did not find it; "
                   f"last at {queue.iso(i.last_checked_at) or 'never'}")
        for a in self.attempts:
            out.append(f"attempt part {a['part_index']} at {queue.iso(a['started_at'])} by {a['worker']}: "
                       f"{a['outcome']}" + (f" [{a['error_class']}] {(a['error'] or '')[:160]}" if a["error_class"] else "")
                       + (f" -> tweet {a['tweet_id']}" if a["tweet_id"] else ""))
        for r in self.resolutions:
            out.append(f"resolved {queue.iso(r['at'])} by {r['by']}: {r['action']} {r['from_state']}->{r['to_state']}"
                       + (f" ({r['reason']})" if r["reason"] else ""))
        return out

    def as_json(self) -> dict[str, Any]:
        def clean(row: dict[str, Any]) -> dict[str, Any]:
            return {k: queue.iso(v) if isinstance(v, datetime) else v for k, v in row.items()}

        return {"unknown_checks": self.item.unknown_checks, "last_checked_at": queue.iso(self.item.last_checked_at),
                "maybe_live": self.maybe_live, "attempts": [clean(a) for a in self.attempts],
                "resolutions": [clean(r) for r in self.resolutions]}


def _evidence(conn: Connection, item: queue.Item) -> Evidence:
    attempts = conn.execute(
        sa.select(s.post_attempts).where(s.post_attempts.c.item_id == item.id)
        .order_by(s.post_attempts.c.started_at, s.post_attempts.c.part_index)
    ).mappings().all()
    done = conn.execute(
        sa.select(s.resolutions).where(s.resolutions.c.item_id == item.id).order_by(s.resolutions.c.at)
    ).mappings().all()
    return Evidence(item, [dict(a) for a in attempts], [dict(r) for r in done])


def evidence(engine: Engine, item_id: int) -> Evidence:
    with engine.connect() as conn:
        return _evidence(conn, _load(conn, item_id))


def evidence_for(engine: Engine, item_list: list[queue.Item]) -> dict[int, Evidence]:
    with engine.connect() as conn:
        return {i.id: _evidence(conn, i) for i in item_list}


def operator() -> str:
    return f"{os.environ.get('USER') or 'operator'}@{socket.gethostname()}"


def _load(conn: Connection, item_id: int) -> queue.Item:
    if conn.execute(sa.select(items.c.id).where(items.c.id == item_id)).first() is None:
        raise ResolveError(f"item {item_id} does not exist; list items with `pipeline queue`")
    return queue._load(conn, item_id)


def _locked_item(conn: Connection, item_id: int) -> queue.Item:
    """The item, row-locked on PostgreSQL (SQLite's write transaction already excludes other writers)."""
    if conn.dialect.name != "sqlite":
        conn.execute(sa.select(items.c.id).where(items.c.id == item_id).with_for_update())
    item = _load(conn, item_id)
    if item.lease_expires_at is not None and item.lease_expires_at > db_now(conn):
        raise ResolveError(f"item {item_id} ({item.state}) is held by worker {item.lease_owner} until "
                           f"{queue.iso(item.lease_expires_at)}; wait for it to finish and look again")
    return item


def _record(conn: Connection, item: queue.Item, action: str, to_state: str, reason: str | None,
            by: str | None, tweet_ids: list[str] | None = None) -> None:
    conn.execute(s.resolutions.insert().values(
        item_id=item.id, action=action, from_state=item.state, to_state=to_state, tweet_ids=tweet_ids,
        reason=reason, by=by or operator(), at=db_now(conn)))


def _refuse(item: queue.Item, wanted: str, allowed: tuple[str, ...], hint: str = "") -> ResolveError:
    return ResolveError(f"item {item.id} is {item.state}: {wanted} is allowed only from "
                        f"{', '.join(allowed)}{'; ' + hint if hint else ''}; nothing was changed")


def record_live(engine: Engine, item_id: int, tweet_ids: list[str], reason: str | None = None,
                by: str | None = None) -> queue.Item:
    """The post is live: record the tweet ids of the parts not yet recorded (in order) and mark it posted."""
    bad = [t for t in tweet_ids if not TWEET_ID.match(t)]
    if not tweet_ids or bad:
        raise ResolveError(f"tweet id {bad[0] if bad else '(none)'!r} is not a tweet id: give the digits at the end "
                           "of the post's address, x.com/ACCOUNT/status/DIGITS")
    if len(set(tweet_ids)) != len(tweet_ids):
        raise ResolveError("the same tweet id is given twice; give one id per part, in order")
    with transaction(engine) as conn:
        item = _locked_item(conn, item_id)
        if item.state == s.POSTED:
            raise ResolveError(f"item {item_id} is already posted with tweet id(s) {', '.join(item.tweet_ids)}; "
                               "nothing was changed")
        if item.state not in RECORDABLE:
            raise _refuse(item, "recording a live post", RECORDABLE)
        missing = len(item.parts) - len(item.tweet_ids)
        if len(tweet_ids) != missing:
            have = f" (parts 1-{len(item.tweet_ids)} are recorded)" if item.tweet_ids else ""
            raise ResolveError(f"item {item_id} has {len(item.parts)} part(s){have}: give {missing} --tweet-id, one "
                               f"per remaining part in order; got {len(tweet_ids)}; nothing was changed")
        taken = conn.execute(sa.select(s.tweets.c.tweet_id, s.tweets.c.item_id)
                             .where(s.tweets.c.tweet_id.in_(tweet_ids))).first()
        if taken:
            raise ResolveError(f"tweet {taken.tweet_id} is already recorded for item {taken.item_id}; nothing was changed")
        now = db_now(conn)
        first_try = conn.execute(sa.select(sa.func.min(s.post_attempts.c.started_at))
                                 .where(s.post_attempts.c.item_id == item_id)).scalar()
        for offset, tweet_id in enumerate(tweet_ids):
            part = len(item.tweet_ids) + offset
            # When it went live is unknown; the first click is the best estimate (metrics ages count from it).
            queue.record_tweet(conn, item_id, part, tweet_id, item.parts[part], item.account, first_try or now,
                               via="operator", media_hashes=media_key(item.part_media(part)))
        conn.execute(s.post_attempts.update().where(s.post_attempts.c.item_id == item_id,
                                                    s.post_attempts.c.outcome.in_(MAYBE_LIVE_OUTCOMES))
                     .values(outcome="reconciled", finished_at=now))
        _record(conn, item, "tweet_id", s.POSTED, reason, by, tweet_ids)
        conn.execute(items.update().where(items.c.id == item_id).values(
            state=s.POSTED, posted_at=first_try or now, error_class=None, last_error=None, lease_owner=None,
            lease_expires_at=None, unknown_checks=0, updated_at=now))
        return queue._load(conn, item_id)


def _require_checked(conn: Connection, item: queue.Item, action: str, checked: bool) -> None:
    ev = _evidence(conn, item)
    if ev.maybe_live and not checked:
        facts = "\n  ".join(ev.lines())
        raise ResolveError(
            f"item {item.id}'s post may be live, so {action} is refused. Evidence:\n  {facts}\n"
            f"Look at x.com/{item.account} for: {item.parts[len(item.tweet_ids)][:80]!r}. If it is there, run "
            f"`pipeline resolve {item.id} {tweet_id_args(item)}`; if it is not, repeat with --checked")


def tweet_id_args(item: queue.Item) -> str:
    """The `--tweet-id` flags an item still needs: one per unrecorded part, in order."""
    return " ".join("--tweet-id ID" for _ in range(len(item.parts) - len(item.tweet_ids)))


def requeue(engine: Engine, item_id: int, reason: str | None = None, by: str | None = None,
            checked: bool = False) -> queue.Item:
    """It is not live: queue it again now (a thread resumes at its first unrecorded part), failures reset."""
    with transaction(engine) as conn:
        item = _locked_item(conn, item_id)
        if item.state not in REQUEUEABLE:
            hint = "it is already queued" if item.state == s.QUEUED else (
                "approve it with `pipeline approve`" if item.state == s.PENDING_APPROVAL else "")
            raise _refuse(item, "requeue", REQUEUEABLE, hint)
        _require_checked(conn, item, "requeue", checked)
        now = db_now(conn)
        conn.execute(s.post_attempts.update().where(s.post_attempts.c.item_id == item_id,
                                                    s.post_attempts.c.outcome.in_(MAYBE_LIVE_OUTCOMES))
                     .values(outcome="retry", error="operator: not live", finished_at=now))
        _record(conn, item, "requeue", s.QUEUED, reason, by)
        conn.execute(items.update().where(items.c.id == item_id).values(
            state=s.QUEUED, scheduled_at=now, failures=0, unknown_checks=0, last_checked_at=None,
            lease_owner=None, lease_expires_at=None, updated_at=now))
        return queue._load(conn, item_id)


def cancel(engine: Engine, item_id: int, reason: str | None = None, by: str | None = None,
           checked: bool = False) -> queue.Item:
    """Never post it. An item that may be live needs `checked` (else its post would be lost to metrics)."""
    with transaction(engine) as conn:
        item = _locked_item(conn, item_id)
        if item.state not in CANCELLABLE:
            raise _refuse(item, "cancel", CANCELLABLE)
        _require_checked(conn, item, "cancel", checked)
        _record(conn, item, "cancel", s.CANCELLED, reason, by)
        conn.execute(items.update().where(items.c.id == item_id).values(
            state=s.CANCELLED, lease_owner=None, lease_expires_at=None, updated_at=db_now(conn)))
        return queue._load(conn, item_id)


def approve(engine: Engine, item_ids: list[int] | None, reason: str | None = None, by: str | None = None) -> list[int]:
    """pending_approval -> queued, all or nothing. `None` approves every pending item."""
    with transaction(engine) as conn:
        if item_ids is None:
            item_ids = list(conn.execute(sa.select(items.c.id).where(items.c.state == s.PENDING_APPROVAL)
                                         .order_by(items.c.id)).scalars())
        for item_id in item_ids:
            item = _load(conn, item_id)
            if item.state != s.PENDING_APPROVAL:
                raise _refuse(item, "approve", (s.PENDING_APPROVAL,))
            _record(conn, item, "approve", s.QUEUED, reason, by)
        if item_ids:
            conn.execute(items.update().where(items.c.id.in_(item_ids), items.c.state == s.PENDING_APPROVAL)
                         .values(state=s.QUEUED, updated_at=db_now(conn)))
        return item_ids


def pending_approvals(engine: Engine) -> dict[str, int]:
    """Items waiting for `pipeline approve`, per account (the empty-queue alerts mention them)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(items.c.account, sa.func.count()).where(items.c.state == s.PENDING_APPROVAL)
                            .group_by(items.c.account))
        return {account: n for account, n in rows}


def approval_hint(engine: Engine, accounts: list[str] | None = None) -> str:
    """A sentence for alerts about quiet accounts: unapproved items are the likely cause."""
    waiting = {a: n for a, n in pending_approvals(engine).items() if accounts is None or a in accounts}
    if not waiting:
        return ""
    detail = ", ".join(f"@{a} {n}" for a, n in sorted(waiting.items()))
    return (f" {sum(waiting.values())} planned item(s) wait for approval ({detail}): review them with "
            "`pipeline queue --state pending_approval`, then `pipeline approve ID` or `pipeline approve --all`.")
