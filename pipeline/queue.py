"""The content queue: enqueue, claim and every state transition of DESIGN.md section 3.

    queued -> claimed -> posting -> posted
                         posting -> unknown -> posted | queued | needs_review
    terminal: failed (with reason), cancelled, needs_review (a human must look)
    pending_approval -> queued (`pipeline approve`); a human's decisions live in pipeline/resolve.py

Rules that make the predecessor's failures impossible:
- Due-ness is decided in SQL against the database clock, inclusive: `scheduled_at <= now()`.
- Claiming takes one row with `FOR UPDATE SKIP LOCKED` (PostgreSQL) or inside a `BEGIN IMMEDIATE`
  single-writer transaction (SQLite), and gives it a lease.
- An attempt row is committed *before* the browser acts (`start_attempt`). After that the item can only
  become posted or unknown: an expired lease on an item whose attempt had started becomes `unknown`,
  never `queued`, and unknown items are reconciled against the timeline before anything is re-posted.
- Every function opens its own short transaction; no connection is held while the browser works.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline import schema as s
from pipeline.content import Draft
from pipeline.db import DatabaseError, db_now, is_sqlite, now_sql, transaction, worker_id
from pipeline.handles import canonical_handle
from pipeline.media import MediaRef, column_value, from_column, media_key

items = s.content_items


class EnqueueError(ValueError):
    """Input that must not be enqueued; nothing was written. The message names the field and the fix."""


@dataclass
class Item:
    id: int
    account: str
    kind: str
    parts: list[str]
    reply_to: str | None
    topic: str | None
    format: str | None
    fingerprint: str
    state: str
    scheduled_at: datetime
    attempts: int
    failures: int
    unknown_checks: int
    last_checked_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    error_class: str | None
    last_error: str | None
    posted_at: datetime | None
    tweet_ids: list[str] = field(default_factory=list)
    media: list[list[MediaRef]] = field(default_factory=list)  # per part; files in the media store

    def part_media(self, part_index: int) -> list[MediaRef]:
        return self.media[part_index] if part_index < len(self.media) else []

    @property
    def next_part(self) -> int:
        """Parts are posted in order; a half-posted thread resumes at the first part without a tweet."""
        return len(self.tweet_ids)

    def reply_target(self, part_index: int) -> str | None:
        return self.tweet_ids[part_index - 1] if part_index > 0 else self.reply_to

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "kind": self.kind,
            **({"text": self.parts[0]} if len(self.parts) == 1 else {"parts": self.parts}),
            "reply_to": self.reply_to,
            "topic": self.topic,
            "format": self.format,
            "state": self.state,
            "scheduled_at": iso(self.scheduled_at),
            "attempts": self.attempts,
            "tweet_id": self.tweet_ids[0] if self.tweet_ids else None,
            "tweet_ids": self.tweet_ids,
            "error_class": self.error_class,
            "last_error": self.last_error,
            "posted_at": iso(self.posted_at),
            "media": [[ref.as_json() for ref in part] for part in self.media],
        }


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _row_to_item(row: Any, tweet_ids: list[str]) -> Item:
    m = row._mapping
    return Item(
        id=m["id"], account=m["account"], kind=m["kind"], parts=list(m["parts"]), reply_to=m["reply_to"],
        topic=m["topic"], format=m["format"], fingerprint=m["fingerprint"], state=m["state"],
        scheduled_at=m["scheduled_at"], attempts=m["attempts"], failures=m["failures"],
        unknown_checks=m["unknown_checks"], last_checked_at=m["last_checked_at"], lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"], error_class=m["error_class"], last_error=m["last_error"],
        posted_at=m["posted_at"], tweet_ids=tweet_ids, media=from_column(m["media"], len(m["parts"])),
    )


def _tweet_ids(conn: Connection, item_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in item_ids}
    if not item_ids:
        return out
    rows = conn.execute(
        sa.select(s.tweets.c.item_id, s.tweets.c.tweet_id)
        .where(s.tweets.c.item_id.in_(list(item_ids)))
        .order_by(s.tweets.c.item_id, s.tweets.c.part_index)
    )
    for item_id, tweet_id in rows:
        out[item_id].append(tweet_id)
    return out


def _load(conn: Connection, item_id: int) -> Item:
    row = conn.execute(sa.select(items).where(items.c.id == item_id)).one()
    return _row_to_item(row, _tweet_ids(conn, [item_id])[item_id])


def get_item(engine: Engine, item_id: int) -> Item:
    with engine.connect() as conn:
        return _load(conn, item_id)


# --------------------------------------------------------------------------- accounts


def add_account(engine: Engine, handle: str, storage_state_path: str, timezone: str = "UTC") -> None:
    """Register an account (or point an existing one at a new session file)."""
    handle = canonical_handle(handle)
    with transaction(engine) as conn:
        exists = conn.execute(sa.select(s.accounts.c.handle).where(s.accounts.c.handle == handle)).first()
        if exists:
            conn.execute(
                s.accounts.update().where(s.accounts.c.handle == handle)
                .values(storage_state_path=storage_state_path, timezone=timezone)
            )
        else:
            conn.execute(s.accounts.insert().values(
                handle=handle, storage_state_path=storage_state_path, timezone=timezone, created_at=db_now(conn)
            ))


def list_accounts(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(s.accounts).order_by(s.accounts.c.handle))]


def get_account(engine: Engine, handle: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(s.accounts).where(s.accounts.c.handle == canonical_handle(handle))).first()
    if row is None:
        raise EnqueueError(
            f"account {handle!r} is not registered; add it with `pipeline accounts add {handle} --storage-state FILE`"
        )
    return dict(row._mapping)


# --------------------------------------------------------------------------- enqueue


ENQUEUE_CHUNK = 50  # rows per write transaction: the write lock held well under 100 ms at 1M rows (SQLite and PostgreSQL)
DUPLICATE_BATCH = 1000  # fingerprints per duplicate lookup (read only, no lock)


def enqueue(engine: Engine, entries: Iterable[tuple[Draft, datetime | None]], source: str = "operator",
            labels: Sequence[str] | None = None, approved: bool = True) -> list[int]:
    """Insert items, all or nothing. `None` as time means now (database clock). Unapproved items wait as
    `pending_approval` (never due) until `pipeline approve`; enqueueing by hand is the approval.

    Everything is checked before the first write, without holding the write lock: unknown accounts, times
    without a zone, the same text twice in the input, and content already live for the account (queued,
    posting, posted...; looked up through the unique live-fingerprint index, so 1M rows cost nothing).
    Rows are then written ENQUEUE_CHUNK at a time, each chunk its own short transaction, so a 50,000-line
    file never makes a post's confirmation wait. Should a chunk fail (a concurrent enqueue won a race on the
    unique index, the database went away), the chunks already written are cancelled again before the error
    is raised. `labels` name the entries in errors (the file's line numbers).
    """
    entries = list(entries)
    where = list(labels) if labels else [f"item {n}" if len(entries) > 1 else "item" for n in range(1, len(entries) + 1)]
    with engine.connect() as conn:
        now = db_now(conn)
        known = {r[0] for r in conn.execute(sa.select(s.accounts.c.handle))}
        _check_entries(conn, entries, where, known)
    ids: list[int] = []
    try:
        for start in range(0, len(entries), ENQUEUE_CHUNK):
            rows = [{
                "account": draft.account, "kind": draft.kind, "parts": draft.parts, "part_count": len(draft.parts),
                "reply_to": draft.reply_to, "topic": draft.topic, "format": draft.format,
                "media": column_value(draft.media_per_part), "fingerprint": draft.fingerprint, "state": s.QUEUED if approved else s.PENDING_APPROVAL, "scheduled_at": (at or now).astimezone(UTC),
                "source": source, "created_at": now, "updated_at": now,
            } for draft, at in entries[start:start + ENQUEUE_CHUNK]]
            with transaction(engine) as conn:
                result = conn.execute(items.insert().returning(items.c.id, sort_by_parameter_order=True), rows)
                ids.extend(r[0] for r in result)
    except (sa.exc.IntegrityError, DatabaseError) as exc:
        _cancel_partial(engine, ids)
        if isinstance(exc, DatabaseError):
            raise
        raise EnqueueError("the same text was enqueued for this account at the same moment by another command; "
                           "nothing was written") from None
    return ids


def _check_entries(conn: Connection, entries: list[tuple[Draft, datetime | None]], where: list[str],
                   known: set[str]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for label, (draft, at) in zip(where, entries, strict=True):
        if draft.account not in known:
            raise EnqueueError(f"{label}: account {draft.account!r} is not registered; "
                               f"add it with `pipeline accounts add {draft.account} --storage-state FILE`")
        if at is not None and at.tzinfo is None:
            raise EnqueueError(f"{label}: time {at.isoformat()} has no time zone; add Z or an offset like +02:00")
        key = (draft.account, draft.fingerprint)
        if key in seen:
            raise EnqueueError(f"{label}: the same text appears twice for @{draft.account} in this batch "
                               f"(first at {seen[key]})")
        seen[key] = label
    by_account: dict[str, list[str]] = {}
    for account, fp in seen:
        by_account.setdefault(account, []).append(fp)
    for account, fps in by_account.items():
        for start in range(0, len(fps), DUPLICATE_BATCH):
            live = conn.execute(live_duplicates(account, fps[start:start + DUPLICATE_BATCH])).first()
            if live:
                raise EnqueueError(
                    f"{seen[(account, live.fingerprint)]}: @{account} already has this text as item {live.id} "
                    f"({live.state}); X would reject it as a duplicate (187). Change the text or cancel the other item"
                )


def live_duplicates(account: str, fingerprints: Sequence[str]) -> sa.Select:
    """Live items of `account` with any of these fingerprints, through the unique live-fingerprint index."""
    return sa.select(items.c.id, items.c.state, items.c.fingerprint).where(
        items.c.account == account, items.c.fingerprint.in_(list(fingerprints)), sa.text(s.LIVE_PREDICATE))


def _cancel_partial(engine: Engine, ids: list[int]) -> None:
    """Undo the chunks of a failed enqueue: its items go to cancelled (unless a worker already took one)."""
    for start in range(0, len(ids), ENQUEUE_CHUNK):
        with transaction(engine) as conn:
            conn.execute(items.update().where(items.c.id.in_(ids[start:start + ENQUEUE_CHUNK]),
                                              items.c.state == s.QUEUED)
                         .values(state=s.CANCELLED, last_error="enqueue aborted: a later chunk failed",
                                 updated_at=now_sql(conn)))


# --------------------------------------------------------------------------- claim and leases


def expire_leases(engine: Engine) -> dict[str, int]:
    """Leases run out when a worker dies. Claimed-but-not-started items go back to `queued`; items whose
    attempt had started (`posting`) become `unknown`: the post may be live, so only reconciliation decides."""
    with transaction(engine) as conn:
        now = now_sql(conn)
        requeued = conn.execute(
            items.update()
            .where(items.c.state == s.CLAIMED, items.c.lease_expires_at < now)
            .values(state=s.QUEUED, lease_owner=None, lease_expires_at=None, updated_at=now)
        ).rowcount
        unknown = conn.execute(
            items.update()
            .where(items.c.state == s.POSTING, items.c.lease_expires_at < now)
            .values(state=s.UNKNOWN, lease_owner=None, lease_expires_at=None, error_class="unknown",
                    last_error="lease expired while posting: the worker died or hung after the intent", updated_at=now)
        ).rowcount
        conn.execute(
            s.post_attempts.update()
            .where(s.post_attempts.c.outcome == "pending",
                   s.post_attempts.c.item_id.in_(sa.select(items.c.id).where(items.c.state == s.UNKNOWN)))
            .values(outcome="unknown", error_class="unknown", error="lease expired")
        )
    return {"requeued": requeued, "unknown": unknown}


def claim(engine: Engine, account: str | None = None, lease_s: float = 300, worker: str | None = None,
          states: Sequence[str] = (s.QUEUED,), due_only: bool = True) -> Item | None:
    """Take the earliest due item (inclusive of exactly now) and lease it to `worker`.

    With `states=("unknown",)` this claims an item for reconciliation instead (the state is kept; only
    the lease changes), so two workers never reconcile or re-post the same item. On PostgreSQL the claim
    is one statement (UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING), so a claim
    costs one round trip whatever the queue's size.
    """
    worker = worker or worker_id()
    reconciling = tuple(states) != (s.QUEUED,)
    with transaction(engine) as conn:
        now = now_sql(conn)
        query = sa.select(items.c.id).where(items.c.state.in_(list(states)))
        if due_only:
            query = query.where(items.c.scheduled_at <= now)
        if account is not None:
            query = query.where(items.c.account == account)
        if reconciling:  # skip items another worker holds
            query = query.where(sa.or_(items.c.lease_expires_at.is_(None), items.c.lease_expires_at < now))
        query = query.order_by(items.c.scheduled_at, items.c.id).limit(1)
        values = {"state": items.c.state if reconciling else s.CLAIMED, "lease_owner": worker}
        if is_sqlite(conn):  # BEGIN IMMEDIATE already made this transaction the only writer
            item_id = conn.execute(query).scalar()
            if item_id is None:
                return None
            at = db_now(conn)
            conn.execute(items.update().where(items.c.id == item_id).values(
                **values, lease_expires_at=at + timedelta(seconds=lease_s), updated_at=at))
            row = conn.execute(sa.select(items).where(items.c.id == item_id)).one()
        else:
            # A claim lost in a server crash is harmless (nothing started; the item is simply queued), so
            # it need not wait for the WAL flush. start_attempt, the write that matters, commits durably.
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            row = conn.execute(
                items.update()
                .where(items.c.id == query.with_for_update(skip_locked=True).scalar_subquery())
                .values(**values, lease_expires_at=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, lease_s),
                        updated_at=sa.func.now())
                .returning(*items.c)
            ).first()
            if row is None:
                return None
        # An item that never started an attempt has no tweets yet: skip that read on the hot path.
        tweet_ids = _tweet_ids(conn, [row.id])[row.id] if row.attempts else []
        return _row_to_item(row, tweet_ids)


def release(engine: Engine, item_id: int, worker: str) -> None:
    """Give a claimed item back untouched (breaker opened, budget spent)."""
    with transaction(engine) as conn:
        conn.execute(
            items.update().where(items.c.id == item_id, items.c.lease_owner == worker)
            .values(state=sa.case((items.c.state == s.CLAIMED, s.QUEUED), else_=items.c.state),
                    lease_owner=None, lease_expires_at=None, updated_at=now_sql(conn))
        )


# --------------------------------------------------------------------------- the posting protocol's writes


class LeaseLost(RuntimeError):
    """Another worker owns the item now; this worker must not touch the browser for it."""


def start_attempt(engine: Engine, item_id: int, part_index: int, worker: str, lease_s: float = 300) -> str:
    """Write-ahead intent: commit an attempt row and `posting` BEFORE the browser clicks Post."""
    attempt_id = str(uuid.uuid4())
    with transaction(engine) as conn:
        now = db_now(conn)
        owned = conn.execute(
            items.update()
            .where(items.c.id == item_id, items.c.lease_owner == worker,
                   items.c.state.in_([s.CLAIMED, s.POSTING]))
            .values(state=s.POSTING, attempts=items.c.attempts + 1, lease_expires_at=now + timedelta(seconds=lease_s),
                    updated_at=now)
        ).rowcount
        if not owned:
            raise LeaseLost(f"item {item_id} is no longer leased to {worker}")
        account = conn.execute(sa.select(items.c.account).where(items.c.id == item_id)).scalar_one()
        conn.execute(s.post_attempts.insert().values(
            id=attempt_id, item_id=item_id, part_index=part_index, account=account, worker=worker,
            started_at=now, outcome="pending",
        ))
    return attempt_id


def record_tweet(conn: Connection, item_id: int, part_index: int, tweet_id: str, text: str, account: str,
                 posted_at: datetime, via: str, media_hashes: str = "") -> None:
    """Insert the tweet row unless it is already there (confirm, journal replay and reconciliation are
    idempotent). A *different* tweet id for the same part violates the unique constraint: that would be a
    duplicate post and must surface, not be hidden. `media_hashes`: the part's `media_key` (the duplicate
    summary's key with the text)."""
    existing = conn.execute(sa.select(s.tweets.c.tweet_id).where(s.tweets.c.tweet_id == tweet_id)).first()
    if existing is None:
        conn.execute(s.tweets.insert().values(
            tweet_id=tweet_id, item_id=item_id, part_index=part_index, account=account, text=text,
            posted_at=posted_at, recorded_via=via, media_hashes=media_hashes,
        ))


def confirm_part(engine: Engine, item_id: int, part_index: int, tweet_id: str, attempt_id: str | None,
                 via: str = "response") -> Item:
    """Record a posted part in ONE transaction: tweet row, attempt outcome, and `posted` when it was the
    last part. Works even if the lease was lost meanwhile: a post that happened is a fact."""
    with transaction(engine) as conn:
        now = db_now(conn)
        item = _load(conn, item_id)
        record_tweet(conn, item_id, part_index, tweet_id, item.parts[part_index], item.account, now, via,
                     media_key(item.part_media(part_index)))
        if attempt_id:
            conn.execute(s.post_attempts.update().where(s.post_attempts.c.id == attempt_id)
                         .values(outcome="posted", tweet_id=tweet_id, finished_at=now))
        posted_parts = conn.execute(
            sa.select(sa.func.count()).select_from(s.tweets).where(s.tweets.c.item_id == item_id)
        ).scalar_one()
        done = posted_parts >= len(item.parts)
        # Progress resets the failure count: a thread must not go to review for failures spread over its parts.
        values: dict[str, Any] = {"updated_at": now, "unknown_checks": 0, "failures": 0}
        if done:
            values.update(state=s.POSTED, posted_at=now, lease_owner=None, lease_expires_at=None,
                          error_class=None, last_error=None)
        elif item.state == s.UNKNOWN:
            values.update(state=s.POSTING if item.lease_owner else s.UNKNOWN)
        conn.execute(items.update().where(items.c.id == item_id).values(**values))
        return _load(conn, item_id)


def mark_unknown(engine: Engine, item_id: int, attempt_id: str, error_class: str, error: str) -> None:
    """The click may have posted: keep the item out of the queue until reconciliation decides."""
    with transaction(engine) as conn:
        now = db_now(conn)
        conn.execute(s.post_attempts.update().where(s.post_attempts.c.id == attempt_id)
                     .values(outcome="unknown", error_class=error_class, error=error[:2000], finished_at=now))
        conn.execute(items.update().where(items.c.id == item_id, items.c.state != s.POSTED).values(
            state=s.UNKNOWN, error_class=error_class, last_error=error[:2000], lease_owner=None,
            lease_expires_at=None, unknown_checks=0, last_checked_at=None, updated_at=now,
        ))


def requeue(engine: Engine, item_id: int, attempt_id: str | None, error_class: str, error: str,
            delay_s: float = 0.0, penalise: bool = True, max_failures: int | None = None) -> str:
    """Nothing was sent: put the item back (with a delay). Returns the new state.

    `penalise` counts the failure toward `max_failures` (transient errors do; rate limits and auth
    problems do not: they are the platform's state, not the item's). Past the limit the item goes to
    `needs_review` instead of retrying forever.
    """
    with transaction(engine) as conn:
        now = db_now(conn)
        if attempt_id:
            conn.execute(s.post_attempts.update().where(s.post_attempts.c.id == attempt_id)
                         .values(outcome="retry", error_class=error_class, error=error[:2000], finished_at=now))
        failures = conn.execute(sa.select(items.c.failures).where(items.c.id == item_id)).scalar_one()
        failures += 1 if penalise else 0
        state = s.NEEDS_REVIEW if max_failures is not None and failures >= max_failures else s.QUEUED
        conn.execute(items.update().where(items.c.id == item_id, items.c.state != s.POSTED).values(
            state=state, failures=failures, error_class=error_class, last_error=error[:2000],
            scheduled_at=now + timedelta(seconds=delay_s) if state == s.QUEUED else items.c.scheduled_at,
            lease_owner=None, lease_expires_at=None, unknown_checks=0, last_checked_at=None, updated_at=now,
        ))
    return state


def fail(engine: Engine, item_id: int, attempt_id: str | None, error_class: str, reason: str) -> None:
    """Terminal: the platform rejected the content (too long, policy...). Never retried; reason kept."""
    _terminal(engine, item_id, attempt_id, s.FAILED, error_class, reason)


def needs_review(engine: Engine, item_id: int, attempt_id: str | None, error_class: str, reason: str) -> None:
    """A human must look (the outcome stayed unclear, or retries ran out)."""
    _terminal(engine, item_id, attempt_id, s.NEEDS_REVIEW, error_class, reason)


def _terminal(engine: Engine, item_id: int, attempt_id: str | None, state: str, error_class: str, reason: str) -> None:
    with transaction(engine) as conn:
        now = db_now(conn)
        if attempt_id:
            conn.execute(s.post_attempts.update().where(s.post_attempts.c.id == attempt_id)
                         .values(outcome="failed", error_class=error_class, error=reason[:2000], finished_at=now))
        conn.execute(items.update().where(items.c.id == item_id, items.c.state != s.POSTED).values(
            state=state, error_class=error_class, last_error=reason[:2000], lease_owner=None,
            lease_expires_at=None, updated_at=now,
        ))


@dataclass(frozen=True)
class AbsentCheck:
    """One missed reconciliation check: how many have missed, and how long since the previous one (DB clock)."""

    checks: int
    since_previous: timedelta | None


def note_absent(engine: Engine, item_id: int, worker: str) -> AbsentCheck:
    """Reconciliation looked and did not find the post. The gap since the previous check is measured on the
    database clock, never this process's: a worker whose clock runs fast must not skip the settle window."""
    with transaction(engine) as conn:
        previous = conn.execute(sa.select(items.c.last_checked_at).where(items.c.id == item_id)).scalar()
        now = db_now(conn)
        conn.execute(items.update().where(items.c.id == item_id, items.c.lease_owner == worker).values(
            unknown_checks=items.c.unknown_checks + 1, last_checked_at=now, updated_at=now_sql(conn),
        ))
        checks = conn.execute(sa.select(items.c.unknown_checks).where(items.c.id == item_id)).scalar_one()
        return AbsentCheck(checks, None if previous is None else now - previous)


# --------------------------------------------------------------------------- reading


def list_items(engine: Engine, account: str | None = None, states: Sequence[str] | None = None,
               limit: int = 1000) -> list[Item]:
    with engine.connect() as conn:
        query = sa.select(items)
        if account:
            query = query.where(items.c.account == account)
        if states:
            query = query.where(items.c.state.in_(list(states)))
        rows = conn.execute(query.order_by(items.c.scheduled_at, items.c.id).limit(limit)).all()
        tweet_ids = _tweet_ids(conn, [r.id for r in rows])
        return [_row_to_item(r, tweet_ids[r.id]) for r in rows]


def count_by_state(engine: Engine, account: str | None = None) -> dict[str, int]:
    with engine.connect() as conn:
        query = sa.select(items.c.state, sa.func.count()).group_by(items.c.state)
        if account:
            query = query.where(items.c.account == account)
        return {state: n for state, n in conn.execute(query)}


def due_within(engine: Engine, minutes: float) -> dict[str, int]:
    """Queued items per account due before now + minutes (planning and the empty-queue sensor)."""
    with engine.connect() as conn:
        horizon = db_now(conn) + timedelta(minutes=minutes)
        rows = conn.execute(
            sa.select(s.accounts.c.handle, sa.func.count(items.c.id))
            .select_from(s.accounts.outerjoin(
                items, sa.and_(items.c.account == s.accounts.c.handle, items.c.state == s.QUEUED,
                               items.c.scheduled_at <= horizon)))
            .group_by(s.accounts.c.handle)
        )
        return {handle: n for handle, n in rows}
