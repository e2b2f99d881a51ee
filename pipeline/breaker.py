"""A circuit breaker per account, persisted in the database so every process sees the same state.

The predecessor's breaker (pybreaker defaults: any 5 failures, 60 s) opened on timeouts and content
rejections and then blocked everything. This one follows resilience4j / Polly, with the lessons of both:

- Only the classes `pipeline.failures.POLICY` marks "count" are recorded, each with its weight, over a
  sliding time window with a minimum number of calls. Ignored classes (unknown, rejected, storage) count as
  neither failure nor success, like resilience4j's ignored exceptions.
- The failure rate is `weighted failures / (successes + weighted failures)`: in [0, 1], so a stream of
  nothing but failures always reaches any threshold, whatever the class weights.
- Open -> half-open after the break; half-open lets ONE probe through (claimed under a row lock with a
  compare-and-set update, so two processes never both probe). A probe has its own deadline: a probe that
  never reports back frees the slot when it passes (the resilience4j hung-probe trap).
- A failed probe re-opens with a break that grows by `growth` per consecutive trip, capped (Polly's
  break-duration generator). A success closes and clears the window.
- Rate limits open until the platform's reset without counting as "broken"; auth failures force it open
  until an operator (or a successful session check) calls `reset`; automation blocks open for hours.
- Every transition is written to `breaker_transitions` with its reason and logged on `pipeline.breaker`
  (WARNING for opens), after the transaction commits so the log never reports a rolled-back change.

Times come from `clock` (tests inject a fake one); without it, from the database clock, so processes on
different hosts agree on when a break is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.db import db_now, transaction
from pipeline.failures import POLICY, ErrorClass
from pipeline.schema import accounts, breaker_events, breaker_state, breaker_transitions

log = logging.getLogger("pipeline.breaker")

CLOSED, OPEN, HALF_OPEN, FORCED_OPEN = "closed", "open", "half_open", "forced_open"
STATES = (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN)


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds and breaks, in seconds. Defaults suit a handful of posts per hour per account."""

    window_s: float = 600.0  # sliding window the failure rate is computed over
    min_calls: int = 4  # fewer recorded calls than this in the window never open the breaker
    failure_threshold: float = 0.5  # weighted failure rate that opens it
    open_s: float = 60.0  # first break
    max_open_s: float = 3600.0  # the growing break never exceeds this
    growth: float = 2.0  # break multiplier per consecutive trip (a failed probe makes the next break longer)
    probe_deadline_s: float = 120.0  # a half-open probe silent for this long frees the slot
    long_open_s: float = 6 * 3600.0  # break after an automation block (226)
    rate_limit_default_s: float = 900.0  # break after a rate limit that did not say when it resets
    rate_limit_max_s: float = 24 * 3600.0  # never trust a reset time further away than this

    def __post_init__(self) -> None:
        for name in ("window_s", "open_s", "max_open_s", "probe_deadline_s", "long_open_s",
                     "rate_limit_default_s", "rate_limit_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"BreakerConfig.{name} must be positive")
        if self.min_calls < 1:
            raise ValueError("BreakerConfig.min_calls must be at least 1")
        if not 0 < self.failure_threshold <= 1:
            raise ValueError("BreakerConfig.failure_threshold must be in (0, 1]")
        if self.growth < 1:
            raise ValueError("BreakerConfig.growth must be >= 1")

    def break_s(self, trips: int) -> float:
        """Length of the break for the `trips`-th consecutive trip (1 = first)."""
        exponent = min(max(trips - 1, 0), 60)
        return min(self.max_open_s, self.open_s * self.growth**exponent)


@dataclass(frozen=True)
class Decision:
    """Whether a call may go ahead now and, if not, when asking again makes sense (None: not by itself)."""

    allowed: bool
    state: str
    reason: str
    retry_at: datetime | None = None
    probe: datetime | None = None  # set when this caller holds the half-open probe: its deadline, its key


@dataclass(frozen=True)
class _Row:
    account: str
    state: str
    reason: str | None
    opened_at: datetime | None
    open_until: datetime | None
    trips: int
    probe_deadline: datetime | None
    updated_at: datetime | None


@dataclass
class _Tx:
    conn: Connection
    now: datetime
    logs: list[tuple[int, str]] = field(default_factory=list)


def _eq_or_null(column: sa.ColumnElement[Any], value: Any) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


class Breaker:
    """The per-account breaker. Cheap to construct; all state lives in the database."""

    def __init__(
        self, engine: Engine, config: BreakerConfig | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.engine = engine
        self.config = config or BreakerConfig()
        self._clock = clock

    # ------------------------------------------------------------------------------------------ plumbing

    def _now(self, conn: Connection) -> datetime:
        if self._clock is None:
            return db_now(conn)
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the breaker clock must return timezone-aware UTC datetimes")
        return now

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        """A short write transaction; transition logs are emitted only once it has committed."""
        with transaction(self.engine) as conn:
            tx = _Tx(conn, self._now(conn))
            yield tx
        for level, message in tx.logs:
            log.log(level, message)

    @staticmethod
    def _load(conn: Connection, account: str) -> _Row | None:
        # FOR UPDATE serialises writers per account on PostgreSQL; SQLite ignores it (BEGIN IMMEDIATE).
        stmt = sa.select(breaker_state).where(breaker_state.c.account == account).with_for_update()
        m = conn.execute(stmt).mappings().first()
        if m is None:
            return None
        return _Row(m["account"], m["state"], m["reason"], m["opened_at"], m["open_until"], int(m["trips"] or 0),
                    m["probe_deadline"], m["updated_at"])

    def _load_or_create(self, tx: _Tx, account: str) -> _Row:
        """A missing row is a closed breaker; create it race-free (two processes may do this at once)."""
        row = self._load(tx.conn, account)
        if row is not None:
            return row
        values = {"account": account, "state": CLOSED, "trips": 0, "updated_at": tx.now}
        dialect = tx.conn.dialect.name
        if dialect in ("postgresql", "sqlite"):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            tx.conn.execute(insert(breaker_state).values(**values).on_conflict_do_nothing(index_elements=["account"]))
        else:  # pragma: no cover - only PostgreSQL and SQLite are supported
            try:
                with tx.conn.begin_nested():
                    tx.conn.execute(breaker_state.insert().values(**values))
            except sa.exc.IntegrityError:
                pass
        row = self._load(tx.conn, account)
        assert row is not None
        return row

    def _move(self, tx: _Tx, row: _Row, to_state: str, reason: str, **values: Any) -> bool:
        """Compare-and-set the row from what we read to `to_state`, and record the transition.

        The WHERE clause repeats what we read, so even without the row lock a concurrent writer's change
        makes this a no-op (returns False) instead of being overwritten.
        """
        c = breaker_state.c
        stmt = (
            breaker_state.update()
            .where(c.account == row.account, c.state == row.state, _eq_or_null(c.open_until, row.open_until),
                   _eq_or_null(c.probe_deadline, row.probe_deadline), c.trips == row.trips)
            .values(state=to_state, reason=reason, updated_at=tx.now, **values)
        )
        if tx.conn.execute(stmt).rowcount != 1:
            return False
        tx.conn.execute(breaker_transitions.insert().values(
            account=row.account, at=tx.now, from_state=row.state, to_state=to_state, reason=reason))
        hung_probe = to_state == row.state == HALF_OPEN
        level = logging.WARNING if to_state in (OPEN, FORCED_OPEN) or hung_probe else logging.INFO
        tx.logs.append((level, f"breaker {row.account}: {row.state} -> {to_state}: {reason}"))
        return True

    def _open(self, tx: _Tx, row: _Row, until: datetime, reason: str, trips: int) -> None:
        self._move(tx, row, OPEN, reason, opened_at=tx.now, open_until=until, trips=trips, probe_deadline=None)

    def _record_event(self, tx: _Tx, account: str, error_class: str | None, weight: float) -> None:
        tx.conn.execute(breaker_events.insert().values(account=account, at=tx.now, error_class=error_class,
                                                       weight=weight))
        # Prune on write: events older than the window never matter again.
        horizon = tx.now - timedelta(seconds=self.config.window_s)
        tx.conn.execute(breaker_events.delete().where(breaker_events.c.account == account,
                                                      breaker_events.c.at <= horizon))

    def _window(self, conn: Connection, now: datetime, account: str | None = None) -> dict[str, dict[str, Any]]:
        """Calls, successes, weighted failures and failures per class in the window, per account."""
        e = breaker_events.c
        horizon = now - timedelta(seconds=self.config.window_s)
        stmt = sa.select(e.account, e.error_class, sa.func.count(), sa.func.coalesce(sa.func.sum(e.weight), 0.0)) \
            .where(e.at > horizon).group_by(e.account, e.error_class)
        if account is not None:
            stmt = stmt.where(e.account == account)
        out: dict[str, dict[str, Any]] = {}
        for acct, cls, n, weight in conn.execute(stmt):
            s = out.setdefault(acct, {"calls": 0, "successes": 0, "failures": 0, "weighted": 0.0, "by_class": {}})
            s["calls"] += int(n)
            if cls is None:
                s["successes"] += int(n)
            else:
                s["failures"] += int(n)
                s["weighted"] += float(weight)
                s["by_class"][cls] = int(n)
        for s in out.values():
            denominator = s["successes"] + s["weighted"]
            s["rate"] = s["weighted"] / denominator if denominator > 0 else 0.0
        return out

    # ---------------------------------------------------------------------------------------------- API

    def allow(self, account: str) -> Decision:
        """May this account post now? In half-open, exactly one caller across all processes gets the probe."""
        with self._tx() as tx:
            row = self._load(tx.conn, account)
            if row is None or row.state == CLOSED:
                return Decision(True, CLOSED, "closed")
            if row.state == FORCED_OPEN:
                return Decision(False, FORCED_OPEN, row.reason or "forced open", None)
            deadline = tx.now + timedelta(seconds=self.config.probe_deadline_s)
            if row.state == OPEN:
                if row.open_until is not None and tx.now < row.open_until:
                    return Decision(False, OPEN, row.reason or "open", row.open_until)
                reason = f"break over; one probe allowed until {deadline.isoformat()}"
                if self._move(tx, row, HALF_OPEN, reason, probe_deadline=deadline):
                    return Decision(True, HALF_OPEN, "half-open probe", probe=deadline)
                return Decision(False, OPEN, "another process is taking the probe", deadline)
            if row.state == HALF_OPEN:
                if row.probe_deadline is not None and tx.now < row.probe_deadline:
                    return Decision(False, HALF_OPEN, "a half-open probe is in flight", row.probe_deadline)
                if row.probe_deadline is not None:
                    # The resilience4j trap: a probe that never reports must not hold the breaker forever.
                    reason = (f"probe deadline {row.probe_deadline.isoformat()} passed without an outcome; "
                              "new probe allowed")
                    ok = self._move(tx, row, HALF_OPEN, reason, probe_deadline=deadline)
                else:
                    ok = self._claim_probe(tx, row, deadline)
                if ok:
                    return Decision(True, HALF_OPEN, "half-open probe", probe=deadline)
                return Decision(False, HALF_OPEN, "another process took the probe", deadline)
            return Decision(False, row.state, f"unrecognised breaker state {row.state!r}; reset it", None)

    def _claim_probe(self, tx: _Tx, row: _Row, deadline: datetime) -> bool:
        """Take a free probe slot (released by an ignored outcome) without a new transition row."""
        c = breaker_state.c
        stmt = (breaker_state.update()
                .where(c.account == row.account, c.state == HALF_OPEN, c.probe_deadline.is_(None))
                .values(probe_deadline=deadline, updated_at=tx.now))
        return tx.conn.execute(stmt).rowcount == 1

    def record_success(self, account: str) -> str:
        """Count a success; a success in half-open closes the breaker and starts a fresh window."""
        with self._tx() as tx:
            row = self._load(tx.conn, account)
            state = row.state if row is not None else CLOSED
            if row is not None and row.state == HALF_OPEN:
                if self._move(tx, row, CLOSED, "half-open probe succeeded", trips=0, opened_at=None,
                              open_until=None, probe_deadline=None):
                    tx.conn.execute(breaker_events.delete().where(breaker_events.c.account == account))
                    state = CLOSED
            self._record_event(tx, account, None, 0.0)
            return state

    def record_failure(
        self, account: str, error_class: ErrorClass | str, reset_at: datetime | None = None,
        detail: str | None = None,
    ) -> str:
        """Apply the class's breaker policy; returns the breaker state afterwards.

        `reset_at` is the platform's rate-limit reset (RateLimited.reset_at); `detail` goes into the reason.
        """
        cls = ErrorClass(error_class)
        policy = POLICY[cls]
        suffix = f": {detail}" if detail else ""
        with self._tx() as tx:
            if policy.breaker_effect == "ignore":
                return self._ignore(tx, account, cls)
            row = self._load_or_create(tx, account)
            if policy.breaker_effect == "force_open":
                if row.state != FORCED_OPEN:
                    self._move(tx, row, FORCED_OPEN, f"{cls.value}{suffix}; needs a human: "
                               f"`pipeline breaker reset --account {account}` after fixing the session",
                               opened_at=tx.now, open_until=None, probe_deadline=None)
                return FORCED_OPEN
            if row.state == FORCED_OPEN:
                return FORCED_OPEN  # only a reset leaves forced-open; nothing may shorten it
            if policy.breaker_effect == "open_long":
                until = tx.now + timedelta(seconds=self.config.long_open_s)
                return self._open_at_least(tx, row, until, f"{cls.value}{suffix}; long break until {until.isoformat()}")
            if policy.breaker_effect == "open_until_reset":
                until = self._rate_limit_until(tx.now, reset_at)
                return self._open_at_least(tx, row, until, f"rate limited{suffix}; until {until.isoformat()}")
            # "count": the platform or our client looks broken.
            self._record_event(tx, account, cls.value, policy.breaker_weight)
            if row.state == HALF_OPEN:
                trips = row.trips + 1
                until = tx.now + timedelta(seconds=self.config.break_s(trips))
                self._open(tx, row, until, f"half-open probe failed ({cls.value}{suffix}); trip {trips}, "
                           f"break {self.config.break_s(trips):g}s", trips)
                return OPEN
            if row.state == CLOSED:
                stats = self._window(tx.conn, tx.now, account).get(account)
                if stats and stats["calls"] >= self.config.min_calls and stats["rate"] >= self.config.failure_threshold:
                    trips = row.trips + 1
                    until = tx.now + timedelta(seconds=self.config.break_s(trips))
                    self._open(tx, row, until, (
                        f"weighted failure rate {stats['rate']:.0%} over {stats['calls']} calls in "
                        f"{self.config.window_s:g}s >= {self.config.failure_threshold:.0%} (last: {cls.value}{suffix}); "
                        f"break {self.config.break_s(trips):g}s"), trips)
                    return OPEN
            return row.state  # open already: a late report from a call that started before it opened

    def _ignore(self, tx: _Tx, account: str, cls: ErrorClass) -> str:
        """Ignored classes are not recorded; a half-open probe ending this way gives its slot back."""
        row = self._load(tx.conn, account)
        if row is None:
            return CLOSED
        if row.state == HALF_OPEN and row.probe_deadline is not None:
            self._free_probe(tx, account, row.probe_deadline, f"probe ended {cls.value} (not counted)")
        return row.state

    def release_probe(self, account: str, decision: Decision) -> bool:
        """Give back a probe that was never used (nothing was due). Without this the slot stays taken until
        its deadline, and the account posts nothing for minutes. Only the holder's own probe is freed."""
        if decision.probe is None:
            return False
        with self._tx() as tx:
            return self._free_probe(tx, account, decision.probe, "probe unused (nothing to post)")

    def _free_probe(self, tx: _Tx, account: str, deadline: datetime, why: str) -> bool:
        c = breaker_state.c
        freed = tx.conn.execute(breaker_state.update()
                                .where(c.account == account, c.state == HALF_OPEN, c.probe_deadline == deadline)
                                .values(probe_deadline=None, updated_at=tx.now)).rowcount == 1
        if freed:
            tx.logs.append((logging.INFO, f"breaker {account}: {why}; probe slot released"))
        return freed

    def _rate_limit_until(self, now: datetime, reset_at: datetime | None) -> datetime:
        if reset_at is None:
            return now + timedelta(seconds=self.config.rate_limit_default_s)
        if reset_at.tzinfo is None:
            raise ValueError("reset_at must be timezone-aware")
        if reset_at <= now:  # already past (clock skew): a short base break, then a probe
            return now + timedelta(seconds=self.config.open_s)
        return min(reset_at, now + timedelta(seconds=self.config.rate_limit_max_s))

    def _open_at_least(self, tx: _Tx, row: _Row, until: datetime, reason: str) -> str:
        """Open until `until` without counting a trip; never shortens a longer break already in place."""
        if row.state == OPEN and row.open_until is not None and row.open_until >= until:
            return OPEN
        self._move(tx, row, OPEN, reason, opened_at=row.opened_at if row.state == OPEN else tx.now,
                   open_until=until, probe_deadline=None)
        return OPEN

    def reset(self, account: str, reason: str = "operator reset") -> None:
        """Close the breaker whatever its state (operator, or a successful session check after auth)."""
        with self._tx() as tx:
            row = self._load_or_create(tx, account)
            self._move(tx, row, CLOSED, reason, trips=0, opened_at=None, open_until=None, probe_deadline=None)
            tx.conn.execute(breaker_events.delete().where(breaker_events.c.account == account))

    def isolate(self, account: str, reason: str = "operator isolate") -> None:
        """Force the breaker open by hand (Polly's isolate): nothing posts until `reset`."""
        with self._tx() as tx:
            row = self._load_or_create(tx, account)
            if row.state != FORCED_OPEN:
                self._move(tx, row, FORCED_OPEN, reason, opened_at=tx.now, open_until=None, probe_deadline=None)

    def status(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every breaker (registered accounts without a row are closed), with its window's numbers."""
        with transaction(self.engine) as conn:
            now = self._now(conn)
            stmt = sa.select(breaker_state)
            if account is not None:
                stmt = stmt.where(breaker_state.c.account == account)
            rows = {m["account"]: m for m in conn.execute(stmt).mappings()}
            if account is not None:
                names = {account}
            else:
                names = set(rows) | set(conn.execute(sa.select(accounts.c.handle)).scalars())
            window = self._window(conn, now, account)
        out: list[dict[str, Any]] = []
        for name in sorted(names):
            m = rows.get(name)
            state = m["state"] if m is not None else CLOSED
            stats = window.get(name, {"calls": 0, "failures": 0, "rate": 0.0, "by_class": {}})
            open_until = m["open_until"] if m is not None else None
            probe_deadline = m["probe_deadline"] if m is not None else None
            if state == OPEN:
                allowed_now = open_until is None or now >= open_until
            elif state == HALF_OPEN:
                allowed_now = probe_deadline is None or now >= probe_deadline
            else:
                allowed_now = state == CLOSED
            out.append({
                "account": name,
                "state": state,
                "reason": m["reason"] if m is not None else None,
                "opened_at": m["opened_at"] if m is not None else None,
                "open_until": open_until,
                "probe_deadline": probe_deadline,
                "trips": int(m["trips"]) if m is not None else 0,
                "updated_at": m["updated_at"] if m is not None else None,
                "allowed_now": allowed_now,
                "recent_calls": stats["calls"],
                "recent_failures": stats["failures"],
                "failure_rate": round(stats["rate"], 4),
                "failures_by_class": dict(stats["by_class"]),
            })
        return out

    def transitions(self, account: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The account's transitions, oldest first (the latest `limit` if given)."""
        t = breaker_transitions.c
        stmt = sa.select(t.account, t.at, t.from_state, t.to_state, t.reason).where(t.account == account) \
            .order_by(t.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with transaction(self.engine) as conn:
            rows = [dict(m) for m in conn.execute(stmt).mappings()]
        return list(reversed(rows))
