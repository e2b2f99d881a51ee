"""Planning: keep every account's queue topped up with items placed into slots the cadence allows.

Two layers, so the hard part is testable without a database:

- `plan_slots` is pure: given the times an account already uses, the clock and the rules, it places new
  times that respect posts per hour (any rolling 60 minutes), posts per day (per *account-local* calendar
  day), a minimum spacing from every other item, quiet hours in the account's time zone, and jitter. All
  arithmetic is on integer microseconds since the epoch in UTC, so there is no float drift and no wall-clock
  arithmetic across DST changes; the zone is only consulted (via zoneinfo) to read an instant's local hour
  and date.
- `plan` reads each account's queue, asks a generator for drafts (topic and format by Thompson sampling
  from the learning loop's weights, thread or single by `thread_ratio`), validates them, drops duplicates
  with a recorded reason, and enqueues through `queue.enqueue`.

The buffer an account must hold is `plan_min_items` queued items due within `plan_window_min`. Caps and
quiet hours can make that impossible (2 posts an hour cannot put 3 items in the next 60 minutes; at 23:00
with quiet hours 23-7 nothing fits before morning), so queued items the *planner* placed count wherever
they landed: the planner only puts them as early as the rules allow, and without this every run would add
more. A second run with nothing posted in between therefore adds nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.bandit import DEFAULT_FLOOR, thompson_choice
from pipeline.content import ContentError, Draft, make_draft
from pipeline.db import DatabaseError, db_now
from pipeline.generators import ShingleIndex, recent_texts
from pipeline.media import MediaError, storing
from pipeline.queue import EnqueueError, enqueue

log = logging.getLogger(__name__)

_US = 1_000_000
_HOUR_US = 3600 * _US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# States whose item still occupies a slot (it will be posted, or may just have been).
_PENDING = (s.QUEUED, s.CLAIMED, s.POSTING, s.UNKNOWN, s.PENDING_APPROVAL)


# --------------------------------------------------------------------------- rules


def parse_quiet_hours(spec: str) -> frozenset[int]:
    """`"23-7"` -> hours 23, 0..6 (end exclusive); `"23-7,12-13"` and single hours `"3"` also work.

    Hours are local to the account, so "23-7" means the same night in London and New York.
    """
    hours: set[int] = set()
    for chunk in (spec or "").replace(" ", "").split(","):
        if not chunk:
            continue
        try:
            if "-" in chunk:
                start_s, end_s = chunk.split("-", 1)
                start, end = int(start_s), int(end_s)
            else:
                start = int(chunk)
                end = start + 1
        except ValueError:
            raise ValueError(f"quiet hours {spec!r}: {chunk!r} is not an hour range like 23-7") from None
        if not (0 <= start <= 23 and 0 <= end <= 24) or start == end:
            raise ValueError(f"quiet hours {spec!r}: {chunk!r} must be START-END with hours 0-24 and START != END")
        length = end - start if end > start else end + 24 - start  # "23-7" wraps past midnight
        hours.update((start + i) % 24 for i in range(length))
    if len(hours) >= 24:
        raise ValueError(f"quiet hours {spec!r} cover the whole day; nothing could ever be posted")
    return frozenset(hours)


@dataclass(frozen=True)
class SlotRules:
    """The cadence one account's posts must keep. Times in minutes; caps per rolling hour / local day."""

    posts_per_hour: int = 2
    posts_per_day: int = 24
    min_spacing_min: float = 20.0
    quiet_hours: frozenset[int] = frozenset()
    jitter_min: float = 10.0  # each slot moves later by up to this much, so posts do not land on :00 and :30
    lead_min: float = 1.0  # never closer to now than this: an item is not due before the plan run has written it

    def __post_init__(self) -> None:
        if self.posts_per_hour < 1 or self.posts_per_day < 1:
            raise ValueError("posts_per_hour and posts_per_day must be at least 1")
        if self.min_spacing_min < 0 or self.jitter_min < 0 or self.lead_min < 0:
            raise ValueError("min_spacing_min, jitter_min and lead_min must not be negative")
        if len(self.quiet_hours) >= 24 or any(not 0 <= h <= 23 for h in self.quiet_hours):
            raise ValueError("quiet_hours must be hours 0-23 and leave at least one hour free")

    @classmethod
    def from_settings(cls, settings: Any) -> SlotRules:
        """Build from `Settings` (PIPELINE_POSTS_PER_HOUR, ..._PER_DAY, MIN_SPACING_MIN, QUIET_HOURS)."""
        values = getattr(settings, "values", {}) or {}
        spacing = float(settings.min_spacing_min)
        return cls(
            posts_per_hour=int(settings.posts_per_hour),
            posts_per_day=int(settings.posts_per_day),
            min_spacing_min=spacing,
            quiet_hours=parse_quiet_hours(settings.quiet_hours),
            # Optional settings; the defaults keep jitter below the spacing so it never costs a slot.
            jitter_min=float(values.get("plan_jitter_min", min(10.0, spacing / 2 if spacing else 10.0))),
            lead_min=float(values.get("plan_lead_min", 1.0)),
        )


# --------------------------------------------------------------------------- pure slot placement


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: planning needs timezone-aware times")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class _Clock:
    """Local hour and date of UTC instants, cached per UTC quarter hour.

    Every real zone's offset and every DST change is a multiple of 15 minutes, so an instant's local hour and
    date are constant within a UTC quarter hour; the cache makes 10k slots cheap.
    """

    _Q = 15 * 60 * _US

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._cache: dict[int, datetime] = {}

    def local(self, us: int) -> datetime:
        bucket = us // self._Q
        start = self._cache.get(bucket)
        if start is None:
            start = _from_us(bucket * self._Q).astimezone(self.zone)
            self._cache[bucket] = start
        return start + timedelta(microseconds=us - bucket * self._Q)  # wall time inside the bucket: same offset

    def next_hour(self, us: int, local: datetime) -> int:
        """The next instant the local hour may change (re-checked by the caller, so a DST change is harmless)."""
        into_hour = (local.minute * 60 + local.second) * _US + local.microsecond
        return us + _HOUR_US - into_hour

    def next_midnight(self, us: int, day: date) -> int:
        """Start of the next local day. A midnight DST gap resolves to the first instant of that day."""
        nxt = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        target = _to_us(nxt.astimezone(UTC))
        return target if target > us else us + _HOUR_US


def plan_slots(
    existing: Sequence[datetime],
    now: datetime,
    count: int,
    rules: SlotRules,
    tz: str,
    rng: random.Random,
) -> list[datetime]:
    """Place `count` new aware-UTC times after `now` (pure; sorted).

    Every new time t satisfies, counting `existing` and the other new times:
    - t >= now + lead; the local hour of t (zone `tz`) is not quiet;
    - no other item closer than `min_spacing_min`;
    - at most `posts_per_hour` items in any half-open 60-minute window that contains t;
    - at most `posts_per_day` items on t's local calendar day.
    Existing items that already break a rule are respected, never moved. Raises ValueError for an unknown zone.
    """
    if count <= 0:
        return []
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as Europe/London") from None
    clock = _Clock(zone)
    spacing = round(rules.min_spacing_min * 60 * _US)
    jitter = round(rules.jitter_min * 60 * _US)
    cap_h, cap_d, quiet = rules.posts_per_hour, rules.posts_per_day, rules.quiet_hours

    times = sorted(_to_us(t) for t in existing)
    per_day: dict[date, int] = {}
    for us in times:
        d = clock.local(us).date()
        per_day[d] = per_day.get(d, 0) + 1

    def earliest(t: int) -> int:
        """The first feasible instant >= t. Every jump skips only infeasible instants (see the module tests)."""
        for _ in range(1_000_000):
            local = clock.local(t)
            if local.hour in quiet:
                t = clock.next_hour(t, local)
                continue
            day = local.date()
            if per_day.get(day, 0) >= cap_d:
                t = clock.next_midnight(t, day)
                continue
            if spacing:
                lo = bisect.bisect_right(times, t - spacing)
                hi = bisect.bisect_left(times, t + spacing)
                if lo < hi:  # someone within (t - spacing, t + spacing): the first free instant is after the last one
                    t = times[hi - 1] + spacing
                    continue
            lo = bisect.bisect_right(times, t - _HOUR_US)
            hi = bisect.bisect_left(times, t + _HOUR_US)
            if hi - lo >= cap_h:
                # t plus cap_h consecutive neighbours inside one 60-minute window breaks the cap; every instant
                # before (first of those neighbours + 1 h) would too, so jump there.
                jump = 0
                for j in range(lo, hi - cap_h + 1):
                    first, last = times[j], times[j + cap_h - 1]
                    if max(last, t) - min(first, t) < _HOUR_US:
                        jump = max(jump, first + _HOUR_US)
                if jump:
                    t = jump
                    continue
            return t
        raise RuntimeError("plan_slots found no feasible time; the rules leave no room")  # pragma: no cover

    out: list[int] = []
    cursor = _to_us(now) + round(rules.lead_min * 60 * _US)
    for _ in range(count):
        base = earliest(cursor)
        t = base
        if jitter:
            shifted = earliest(base + rng.randint(0, jitter))
            # Jitter must not push a slot past quiet hours or into tomorrow: then keep the unjittered slot.
            t = shifted if shifted <= base + jitter else base
        bisect.insort(times, t)
        d = clock.local(t).date()
        per_day[d] = per_day.get(d, 0) + 1
        out.append(t)
        cursor = t
    return [_from_us(t) for t in out]


# --------------------------------------------------------------------------- planning against the database


@dataclass
class PlanReport:
    """What one plan run did: counts per account, every dropped draft with its reason."""

    per_account: dict[str, int] = field(default_factory=dict)
    enqueued: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)
    accounts: int = 0
    item_ids: list[int] = field(default_factory=list)
    now: datetime | None = None

    def drop(self, reason: str, detail: str) -> None:
        log.info("plan dropped a draft: %s: %s", reason, detail)
        self.dropped.append((reason, detail))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (Dagster metadata, `pipeline` CLI output)."""
        return {
            "now": self.now.isoformat() if self.now else None,
            "accounts": self.accounts,
            "enqueued": self.enqueued,
            "per_account": dict(self.per_account),
            "item_ids": list(self.item_ids),
            "dropped": [{"reason": r, "detail": d} for r, d in self.dropped],
        }


@dataclass
class _AccountState:
    buffer: int  # queued items that count toward plan_min_items
    occupied: list[datetime]  # times already taken (pending items, recent posts)
    live_fingerprints: set[str]


def _account_state(engine: Engine, handle: str, now: datetime, window_min: float) -> _AccountState:
    items = s.content_items
    horizon = now + timedelta(minutes=window_min)
    with engine.connect() as conn:
        buffer = conn.execute(
            sa.select(sa.func.count()).select_from(items).where(
                items.c.account == handle,
                # Planned items awaiting approval fill the buffer too: planning must not pile up more of them.
                items.c.state.in_([s.QUEUED, s.PENDING_APPROVAL]),
                sa.or_(items.c.scheduled_at <= horizon, items.c.source == "planner"),
            )
        ).scalar_one()
        rows = conn.execute(
            sa.select(items.c.state, items.c.scheduled_at, items.c.posted_at).where(
                items.c.account == handle,
                sa.or_(
                    items.c.state.in_(_PENDING),
                    # Two days back covers any account-local calendar day that is still "today".
                    sa.and_(items.c.state == s.POSTED, items.c.posted_at >= now - timedelta(days=2)),
                ),
            )
        ).all()
        live = {
            fp for (fp,) in conn.execute(
                sa.select(items.c.fingerprint).where(items.c.account == handle, items.c.state.not_in(s.DEAD_STATES))
            )
        }
    occupied: list[datetime] = []
    for state, scheduled_at, posted_at in rows:
        if state == s.POSTED:
            occupied.append(posted_at)
        else:  # an overdue item will go out about now, so it takes a slot now
            occupied.append(max(scheduled_at, now))
    return _AccountState(buffer=buffer, occupied=occupied, live_fingerprints=live)


def buffer_counts(engine: Engine, settings: Any, now: datetime | None = None) -> dict[str, int]:
    """Per account, the queued items that count toward `plan_min_items` (the planner's own measure).

    A sensor that asks "does any account need planning?" should use this rather than a bare due-within count,
    or it will request plan runs all night while the planner (correctly) waits for quiet hours to end.
    """
    with engine.connect() as conn:
        now = now or db_now(conn)
        handles = [h for (h,) in conn.execute(sa.select(s.accounts.c.handle).order_by(s.accounts.c.handle))]
    return {h: _account_state(engine, h, now, settings.plan_window_min).buffer for h in handles}


@contextmanager
def _account_lock(engine: Engine, handle: str) -> Iterator[bool]:
    """On PostgreSQL, one planner per account at a time (a session advisory lock): two overlapping plan runs
    (schedule + empty-queue sensor) would otherwise both see the same shortfall and both fill it.
    SQLite deployments are single-host; there the lock is a no-op."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"pipeline.plan:{handle}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as conn:
        got = bool(conn.exec_driver_sql("SELECT pg_try_advisory_lock(%(k)s)", {"k": key}).scalar_one())
        conn.commit()  # the lock is session-level: do not sit idle in a transaction while generating
        try:
            yield got
        finally:
            if got:
                try:
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(%(k)s)", {"k": key})
                    conn.commit()
                except sa.exc.SQLAlchemyError:
                    conn.invalidate()  # closing the session is what frees a session lock for sure


def _choose(options: list[str], dimension: str, weights: dict | None, rng: random.Random) -> str | None:
    """Thompson sampling over the generator's options; options the learning loop has not seen get the prior."""
    if not options:
        return None
    if not weights or not weights.get(dimension):
        return rng.choice(sorted(options))
    known = weights.get(dimension, {})
    prior = weights.get("prior", {"alpha": 1.0, "beta": 1.0})
    arms = {o: known.get(o, prior) for o in options}
    return thompson_choice(arms, rng, float(weights.get("floor", DEFAULT_FLOOR)))


def plan(
    engine: Engine,
    settings: Any,
    generator: Any,
    now: datetime | None = None,
    rng: random.Random | None = None,
    weights: dict | None = None,
) -> PlanReport:
    """Top up every registered account to `plan_min_items` queued items; see the module docstring.

    `generator` follows `pipeline.generators.Generator`; `weights` is `learning.topic_weights(...)` output
    (None: uniform). `now` defaults to the database clock. Drafts that fail validation or duplicate a live or
    recent post are never enqueued; each is recorded in `report.dropped` with its reason.
    """
    rng = rng or random.Random()
    rules = SlotRules.from_settings(settings)
    with engine.connect() as conn:
        now = now or db_now(conn)
        accounts = conn.execute(sa.select(s.accounts.c.handle, s.accounts.c.timezone).order_by(s.accounts.c.handle)).all()
    report = PlanReport(accounts=len(accounts), now=now)
    exhausted = False

    for handle, tz in accounts:
        report.per_account[handle] = 0
        if exhausted:
            continue
        with _account_lock(engine, handle) as locked:
            if not locked:
                report.drop("locked", f"@{handle}: another plan run is filling this account")
                continue
            state = _account_state(engine, handle, now, settings.plan_window_min)
            need = int(settings.plan_min_items) - state.buffer
            if need <= 0:
                continue
            try:
                ZoneInfo(tz or "UTC")
            except (ZoneInfoNotFoundError, ValueError):
                report.drop("bad_timezone", f"@{handle}: time zone {tz!r} is unknown; planning in UTC")
                tz = "UTC"
            slots = plan_slots(state.occupied, now, need, rules, tz or "UTC", rng)
            recent = ShingleIndex(recent_texts(engine, handle, days=getattr(generator, "recent_days", 14), now=now))
            for slot in slots:
                draft, raw = _draft_for_slot(generator, handle, settings, weights, rng, state, recent, report)
                if draft is None:
                    if raw == "exhausted":
                        exhausted = True
                        break
                    continue
                try:
                    with storing(settings.state_path, [m for part in getattr(raw, "media", ()) for m in part]):
                        ids = enqueue(engine, [(draft, slot)], source="planner",
                                      approved=not getattr(settings, "require_approval", False))
                except (EnqueueError, MediaError) as exc:
                    _release(generator, raw)
                    report.drop("enqueue_refused", f"@{handle}: {exc}")
                    continue
                except (DatabaseError, sa.exc.SQLAlchemyError):
                    _release(generator, raw)
                    raise
                state.live_fingerprints.add(draft.fingerprint)
                recent.add(" ".join(draft.parts))
                report.item_ids.extend(ids)
                report.per_account[handle] += 1
                report.enqueued += 1
    return report


def _release(generator: Any, generated: Any) -> None:
    release = getattr(generator, "release", None)
    if release is not None and generated is not None and not isinstance(generated, str):
        release(generated)


def _draft_for_slot(
    generator: Any,
    handle: str,
    settings: Any,
    weights: dict | None,
    rng: random.Random,
    state: _AccountState,
    recent: ShingleIndex,
    report: PlanReport,
    tries: int = 4,
) -> tuple[Draft | None, Any]:
    """One valid, non-duplicate draft for a slot, or (None, reason). Returns the generator's object too so a
    draft that could not be enqueued can be released."""
    for attempt in range(tries):
        kind = "thread" if rng.random() < float(settings.thread_ratio) else "single"
        # After a miss, let the generator pick freely: a dry topic must not leave the slot empty.
        topic = _choose(list(generator.topics()), "topic", weights, rng) if attempt == 0 else None
        fmt = _choose(list(generator.formats()), "format", weights, rng) if attempt == 0 else None
        generated = generator.generate(handle, topic, fmt, kind)
        for reason, detail in _drain(generator):
            report.drop(reason, f"@{handle}: {detail}")
        if generated is None:
            why = getattr(generator, "last_reason", None) or "the generator returned nothing"
            if getattr(generator, "exhausted", False):
                report.drop("generator_exhausted", f"@{handle}: {why}")
                return None, "exhausted"
            report.drop("generator_empty", f"@{handle}: {why}")
            continue
        try:
            media = [[m.ref for m in part] for part in getattr(generated, "media", ())]
            draft = make_draft(handle, list(generated.parts), topic=generated.topic, format=generated.format,
                               media=media or None)
        except ContentError as exc:
            report.drop("invalid", f"@{handle} {generated.key}: {exc}")
            continue
        if draft.fingerprint in state.live_fingerprints:
            report.drop("duplicate", f"@{handle} {generated.key}: the same text is already live for this account")
            continue
        similar = recent.most_similar(" ".join(draft.parts))
        if similar >= recent.threshold:
            report.drop("near_duplicate", f"@{handle} {generated.key}: Jaccard {similar:.2f} with a recent post")
            continue
        return draft, generated
    return None, "no_valid_draft"


def _drain(generator: Any) -> list[tuple[str, str]]:
    """Rejections the generator recorded itself (an LLM output it regenerated, for example)."""
    rejected = getattr(generator, "rejected", None)
    if not rejected:
        return []
    out = list(rejected)
    rejected.clear()
    return out
